import { describe, expect, it } from 'vitest';
import { KvCache } from '../../memory/kv-cache.js';
import { kvElementOffset, kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { prefixOrigin } from '../../memory/prefix-cache.js';
import { parseLlamaConfig } from '../../model/llama-config.js';

const config = parseLlamaConfig({
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 128,
  vocab_size: 300,
});

describe('KV layout', () => {
  it('packs hidden/kvDim tokens of one layer into a page', () => {
    const layout = kvLayout(config);
    expect(layout.kvDim).toBe(32);
    expect(layout.tokensPerPage).toBe(2);
    expect(layout.pagesPerBlock).toBe(4);
    const table = Int32Array.from([10, 11, 12, 13, 20, 21, 22, 23]);
    expect(kvElementOffset(layout, table, 0, 0, 0)).toBe(10 * 64);
    expect(kvElementOffset(layout, table, 0, 1, 1)).toBe(11 * 64 + 32);
    expect(kvElementOffset(layout, table, 1, 0, 2)).toBe(22 * 64);
    expect(kvElementOffset(layout, table, 1, 1, 3)).toBe(23 * 64 + 32);
  });
});

describe('KvCache', () => {
  it('grows block by block and frees everything', () => {
    const pool = new PagePool(33, 64);
    const cache = new KvCache(pool, kvLayout(config));
    expect(cache.reserve(1, 3)).toBe(true); // 2 blocks
    expect(cache.pageTable(1).length).toBe(8);
    expect(cache.reserve(1, 4)).toBe(true); // still 2 blocks
    expect(cache.pageTable(1).length).toBe(8);
    expect(cache.reserve(1, 5)).toBe(true);
    expect(cache.pageTable(1).length).toBe(12);
    expect(pool.numUsed('kv')).toBe(12);
    cache.free(1);
    expect(pool.numUsed('kv')).toBe(0);
    expect(cache.has(1)).toBe(false);
  });

  it('takes nothing when the pool is short', () => {
    const pool = new PagePool(9, 64);
    const cache = new KvCache(pool, kvLayout(config));
    expect(cache.reserve(1, 4)).toBe(true);
    expect(cache.canReserve(2, 1)).toBe(false);
    expect(cache.reserve(2, 1)).toBe(false);
    expect(cache.has(2)).toBe(false);
    expect(pool.numFree).toBe(0);
  });
});

describe('KvCache with prefix caching', () => {
  // 2 tokens per block, 4 pages per block (2 layers × K, V).
  const keys = ['k0', 'k1', 'k2', 'k3'];
  const BASE = prefixOrigin(null, 0);

  it('hands computed blocks to the cache, shares them with a probed sequence, and keeps them idle after', () => {
    const pool = new PagePool(33, 64);
    const cache = new KvCache(pool, kvLayout(config), { prefixCaching: true });
    expect(cache.reserve(1, 5)).toBe(true); // 3 blocks
    cache.commitBlocks(1, 5, keys, BASE); // 2 full blocks cached
    expect(cache.prefixCache!.numBlocks).toBe(2);
    // A waiting sequence finds both; one block held by sequence 1 costs it nothing, a new one 4 pages.
    expect(cache.probePrefix(2, keys, 3)).toBe(4);
    expect(cache.pagesNeeded(2, 5)).toBe(4);
    expect(cache.reserve(2, 5)).toBe(true);
    expect(Array.from(cache.pageTable(2).subarray(0, 8))).toEqual(
      Array.from(cache.pageTable(1).subarray(0, 8)),
    );
    expect(pool.numUsed('kv')).toBe(16);
    // Preempting 1 gives back only its private block; its cached ones are still held by 2.
    expect(cache.pagesFreedBy(1)).toBe(4);
    cache.free(1);
    expect(pool.numUsed('kv')).toBe(12);
    cache.free(2);
    expect(pool.numUsed('kv')).toBe(8);
    expect(cache.numIdleCachedPages).toBe(8);
    expect(pool.numAvailable).toBe(32);
  });

  it('counts an idle probed block as pages taken, a probe finds nothing once the blocks are reclaimed', () => {
    const pool = new PagePool(13, 64); // 3 blocks
    const cache = new KvCache(pool, kvLayout(config), { prefixCaching: true });
    cache.reserve(1, 4);
    cache.commitBlocks(1, 4, keys, BASE);
    cache.free(1);
    expect(cache.probePrefix(2, keys, 1)).toBe(2);
    expect(cache.pagesNeeded(2, 3)).toBe(8); // the idle block leaves the reclaimable pages, plus one new
    cache.clearProbes();
    // Another sequence needs all 3 blocks: the idle ones are reclaimed, tail first.
    expect(cache.reserve(3, 6)).toBe(true);
    expect(cache.prefixCache!.counters.numEvictedBlocks).toBe(2);
    expect(cache.probePrefix(2, keys, 1)).toBe(0);
  });

  it('keeps a duplicate of a cached block private and frees it as such', () => {
    const pool = new PagePool(33, 64);
    const cache = new KvCache(pool, kvLayout(config), { prefixCaching: true });
    cache.reserve(1, 2);
    cache.reserve(2, 2);
    cache.commitBlocks(1, 2, keys, BASE);
    cache.commitBlocks(2, 2, keys, BASE);
    expect(cache.prefixCache!.numBlocks).toBe(1);
    cache.free(2);
    expect(pool.numUsed('kv')).toBe(4);
    cache.free(1);
    expect(cache.numIdleCachedPages).toBe(4);
    cache.prefixCache!.clearIdle();
    expect(pool.numUsed('kv')).toBe(0);
  });
  it("drops retired weights' blocks: idle ones at once, ones in use when their last sequence lets go", () => {
    const pool = new PagePool(65, 64);
    const cache = new KvCache(pool, kvLayout(config), { prefixCaching: true });
    const v1 = prefixOrigin('policy', 1);
    const other = prefixOrigin('other', 2);
    // Sequence 1 (policy v1) ends: 2 idle blocks. Sequence 2 (v1) still runs on its own block.
    // Sequence 3 (another adapter) ends: 1 idle block.
    cache.reserve(1, 4);
    cache.commitBlocks(1, 4, ['a0', 'a1'], v1);
    cache.free(1);
    cache.reserve(2, 2);
    cache.commitBlocks(2, 2, ['b0'], v1);
    cache.reserve(3, 2);
    cache.commitBlocks(3, 2, ['c0'], other);
    cache.free(3);
    expect(pool.numUsed('kv')).toBe(16);
    const prefix = cache.prefixCache!;
    prefix.retire(v1);
    // The idle v1 blocks are gone, the running one is no longer found, the other adapter's stays.
    expect(pool.numUsed('kv')).toBe(8);
    expect(prefix.numBlocks).toBe(1);
    expect(prefix.lookup(['a0'], 1)).toEqual([]);
    expect(prefix.lookup(['b0'], 1)).toEqual([]);
    expect(prefix.lookup(['c0'], 1).length).toBe(1);
    expect(prefix.counters.numRetiredBlocks).toBe(3);
    // Sequence 2 ends: its retired block's pages go back instead of turning idle.
    cache.free(2);
    expect(pool.numUsed('kv')).toBe(4);
    expect(cache.numIdleCachedPages).toBe(4);
    expect(prefix.counters.numEvictedBlocks).toBe(0);
  });

  it('reset drops every block, whatever computed it; a running sequence keeps its own until it ends', () => {
    const pool = new PagePool(65, 64);
    const cache = new KvCache(pool, kvLayout(config), { prefixCaching: true });
    cache.reserve(1, 4);
    cache.commitBlocks(1, 4, ['a0', 'a1'], BASE);
    cache.free(1);
    cache.reserve(2, 2);
    cache.commitBlocks(2, 2, ['b0'], prefixOrigin('policy', 1));
    const prefix = cache.prefixCache!;
    expect(prefix.reset()).toBe(3);
    expect(prefix.numBlocks).toBe(0);
    expect(prefix.lookup(['a0'], 1)).toEqual([]);
    expect(prefix.lookup(['b0'], 1)).toEqual([]);
    // The idle blocks' pages are back; sequence 2's block is still its own.
    expect(pool.numUsed('kv')).toBe(4);
    cache.free(2);
    expect(pool.numUsed('kv')).toBe(0);
    expect(cache.numIdleCachedPages).toBe(0);
  });
});
