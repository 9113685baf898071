import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HUGE_PAGES_TUNABLE, hasHugePagesTunable } from '../../server/huge-pages.js';

const ROOT = join(import.meta.dirname, '../..');

describe('npm configuration', () => {
  it('gives npm no setting it warns about', () => {
    const run = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: ROOT, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr).not.toMatch(/warn/i);
  });

  const startScript = (): string =>
    (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
      .scripts.start;

  it('starts node itself, so a signal sent to npm start reaches the server', () => {
    expect(startScript()).toMatch(/ exec node --import tsx server\/main\.ts$/);
  });

  it("gives node glibc's huge-page tunable, after any tunables already set, unless one says otherwise", () => {
    // The script as npm's shell runs it, with node printing the variable it was given.
    const script = startScript().replace(
      /node --import tsx server\/main\.ts$/,
      'node -e "process.stdout.write(process.env.GLIBC_TUNABLES)"',
    );
    const run = (tunables: string | undefined) => {
      const env = { ...process.env };
      delete env.GLIBC_TUNABLES;
      if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
      const out = spawnSync('sh', ['-c', script], { env, encoding: 'utf8' });
      expect(out.status).toBe(0);
      return out.stdout;
    };
    expect(run(undefined)).toBe(HUGE_PAGES_TUNABLE);
    expect(run('')).toBe(HUGE_PAGES_TUNABLE);
    expect(run('glibc.pthread.rseq=0')).toBe(`glibc.pthread.rseq=0:${HUGE_PAGES_TUNABLE}`);
    // An explicit choice stays as it is, off included (glibc would take an appended value).
    expect(run('glibc.malloc.hugetlb=0')).toBe('glibc.malloc.hugetlb=0');
    expect(run('a=1:glibc.malloc.hugetlb=2')).toBe('a=1:glibc.malloc.hugetlb=2');
    expect(hasHugePagesTunable({ GLIBC_TUNABLES: run('glibc.pthread.rseq=0') })).toBe(true);
  });
});
