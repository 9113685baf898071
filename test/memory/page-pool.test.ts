import { describe, expect, it } from 'vitest';
import { PagePool, PoolExhaustedError, parsePoolSize, ZERO_PAGE } from '../../memory/page-pool.js';

describe('PagePool', () => {
  it('never hands out the zero page and returns every page it lends', () => {
    const pool = new PagePool(9, 16);
    expect(pool.numFree).toBe(8);
    const kv = pool.allocate(5, 'kv');
    const ad = pool.allocate(3, 'adapter');
    expect([...kv, ...ad]).not.toContain(ZERO_PAGE);
    expect(new Set([...kv, ...ad]).size).toBe(8);
    expect(pool.numUsed('kv')).toBe(5);
    expect(pool.numUsed('adapter')).toBe(3);
    expect(pool.numFree).toBe(0);
    pool.free(kv);
    pool.free(ad);
    expect(pool.numFree).toBe(8);
    expect(pool.numUsed()).toBe(0);
  });

  it('is all-or-nothing when short', () => {
    const pool = new PagePool(5, 4);
    pool.allocate(3, 'kv');
    expect(pool.canAllocate(2)).toBe(false);
    expect(() => pool.allocate(2, 'kv')).toThrow(PoolExhaustedError);
    expect(pool.numFree).toBe(1);
  });

  it('refuses double frees and the zero page', () => {
    const pool = new PagePool(4, 4);
    const pages = pool.allocate(2, 'kv');
    pool.free(pages);
    expect(() => pool.free(pages)).toThrow(/freed twice/);
    expect(() => pool.free([ZERO_PAGE])).toThrow();
  });
});

describe('parsePoolSize', () => {
  it.each([
    ['2GiB', 2 * 1024 ** 3],
    ['512MiB', 512 * 1024 ** 2],
    ['1000', 1000],
    ['0.25', 250],
    ['1.0', 1000],
  ])('%s', (spec, bytes) => {
    expect(parsePoolSize(spec, 1000)).toBe(bytes);
  });

  it('rejects nonsense', () => {
    expect(() => parsePoolSize('lots', 1000)).toThrow(/neither bytes/);
    expect(() => parsePoolSize('0', 1000)).toThrow(/positive/);
  });
});

describe('PagePool.allocateContiguous', () => {
  it('takes a run from the top of the free stack, or finds one by scanning, or says there is none', () => {
    const pool = new PagePool(41, 4);
    const first = pool.allocateContiguous(10, 'adapter')!;
    expect(Array.from(first)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Scatter the free stack: free every other KV page of a block.
    const kv = pool.allocate(20, 'kv');
    pool.free(kv.filter((_, i) => i % 2 === 0));
    const run = pool.allocateContiguous(5, 'adapter')!;
    expect(Array.from(run)).toEqual([31, 32, 33, 34, 35]);
    // A freed run comes back whole and in order.
    pool.free(first);
    expect(Array.from(pool.allocateContiguous(10, 'adapter')!)).toEqual(Array.from(first));
    expect(pool.allocateContiguous(6, 'adapter')).toBeNull();
    expect(pool.numUsed('adapter')).toBe(15);
  });
});
