import { describe, expect, it } from 'vitest';
import { KvCache } from '../../memory/kv-cache.js';
import { kvElementOffset, kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
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
