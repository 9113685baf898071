import { describe, expect, it } from 'vitest';
import {
  HUGE_PAGES_TUNABLE,
  hasHugePagesTunable,
  hugePagesNotice,
  withHugePagesTunable,
} from '../../server/huge-pages.js';

const MADVISE = 'always [madvise] never\n';

describe('huge pages for the process', () => {
  it('reads the tunable wherever it stands in GLIBC_TUNABLES, any huge-page kind', () => {
    expect(hasHugePagesTunable({})).toBe(false);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' })).toBe(false);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' })).toBe(true);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0:glibc.malloc.hugetlb=2' })).toBe(true);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=2097152' })).toBe(true);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=10:x' })).toBe(true);
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: 'glibc.malloc.hugetlbx=1' })).toBe(false);
  });

  it('adds the tunable after the ones set, once', () => {
    expect(withHugePagesTunable({}).GLIBC_TUNABLES).toBe(HUGE_PAGES_TUNABLE);
    expect(withHugePagesTunable({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }).GLIBC_TUNABLES).toBe(
      `glibc.pthread.rseq=0:${HUGE_PAGES_TUNABLE}`,
    );
    const set = { GLIBC_TUNABLES: `a=1:${HUGE_PAGES_TUNABLE}` };
    expect(withHugePagesTunable(set)).toBe(set);
    // A user who switched huge pages off keeps it off: glibc takes the last value listed.
    const off = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' };
    expect(withHugePagesTunable(off)).toBe(off);
  });

  it('notes 4 KiB pages only where the madvise mode leaves them to the tunable', () => {
    const notice = hugePagesNotice({}, 'linux', () => MADVISE);
    expect(notice).toMatch(/madvise mode/);
    expect(notice).toContain(`GLIBC_TUNABLES=${HUGE_PAGES_TUNABLE}`);
    expect(hugePagesNotice({ GLIBC_TUNABLES: HUGE_PAGES_TUNABLE }, 'linux', () => MADVISE)).toBeNull();
    expect(hugePagesNotice({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, 'linux', () => MADVISE)).toBeNull();
    expect(hugePagesNotice({}, 'linux', () => '[always] madvise never\n')).toBeNull();
    expect(hugePagesNotice({}, 'linux', () => 'always madvise [never]\n')).toBeNull();
    expect(hugePagesNotice({}, 'darwin', () => MADVISE)).toBeNull();
    expect(
      hugePagesNotice({}, 'linux', () => {
        throw new Error('ENOENT');
      }),
    ).toBeNull();
  });
});
