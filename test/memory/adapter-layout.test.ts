import { describe, expect, it } from 'vitest';
import {
  adapterPageCount,
  layoutAdapter,
  pagesForModuleRanks,
  writeAdapterRows,
  writeScaledAdapterRows,
} from '../../memory/adapter-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import type { LoraAdapter, LoraPair } from '../../model/lora-adapter.js';
import { storeAdapter, widenAdapter } from '../../model/stored-adapter.js';

const config = parseLlamaConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 40,
  vocab_size: 50,
});

/** An adapter of `rank` on `modules`, or of rankOf(layer, module) per module (PEFT's rank_pattern). */
function adapter(
  rank: number,
  modules: TargetModule[],
  rankOf: (layer: number, m: TargetModule) => number = () => rank,
): LoraAdapter {
  let counter = 1;
  const layers = [0, 1].map((l) => {
    const layer: Partial<Record<TargetModule, LoraPair>> = {};
    for (const m of modules) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const r = rankOf(l, m);
      layer[m] = {
        a: Float32Array.from({ length: r * inFeatures }, () => counter++),
        b: Float32Array.from({ length: outFeatures * r }, () => counter++),
        rank: r,
        scale: 1 / r,
      };
    }
    return layer;
  });
  return { name: 'x', path: '/x', rank, alpha: rank, targetModules: modules, layers };
}

/** rank_pattern-like ranks: q_proj 1, layer 1's down_proj 4, the rest 2. */
const patternRank = (l: number, m: TargetModule) =>
  m === 'q_proj' ? 1 : l === 1 && m === 'down_proj' ? 4 : 2;

describe('adapter layout', () => {
  it('gives each rank-row ceil(features / pageSize) pages, no padding to a maximum rank', () => {
    const a = adapter(3, ['k_proj', 'down_proj']);
    // k_proj: A rows of 16 (1 page), Bᵀ rows of 8 (1 page); down_proj: A rows of 40 (3 pages), Bᵀ rows of 16 (1 page)
    expect(adapterPageCount(config, a)).toBe(2 * 3 * (1 + 1 + 3 + 1));
  });

  it('counts and places each module at its own rank, with its own scale (rank_pattern)', () => {
    const a = adapter(4, ['q_proj', 'down_proj'], patternRank);
    // q_proj rank 1: (1 + 1) pages per layer; down_proj rank 2 then 4: (3 + 1) pages per rank-row.
    const expected = 2 * 1 * (1 + 1) + (2 + 4) * (3 + 1);
    expect(adapterPageCount(config, a)).toBe(expected);
    expect(
      pagesForModuleRanks(config, [
        { q_proj: 1, down_proj: 2 },
        { q_proj: 1, down_proj: 4 },
      ]),
    ).toBe(expected);
    const pool = new PagePool(200, config.hiddenSize);
    const layout = layoutAdapter(config, a, pool.allocate(expected, 'adapter'));
    expect(layout.rank).toBe(4);
    expect(layout.modules[1].down_proj).toMatchObject({ rank: 4, scale: 0.25 });
    expect(layout.modules[1].down_proj!.aPages).toHaveLength(4 * 3);
    expect(layout.modules[0].q_proj).toMatchObject({ rank: 1, scale: 1 });
  });

  it('stores A rows and Bᵀ rows so that gathering them by page gives the matrices back', () => {
    const a = adapter(4, ['q_proj', 'down_proj'], patternRank);
    const pool = new PagePool(200, config.hiddenSize);
    const pages = pool.allocate(adapterPageCount(config, a), 'adapter');
    const shuffled = Int32Array.from([...pages].sort(() => Math.random() - 0.5));
    const layout = layoutAdapter(config, a, shuffled);
    const storage = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
    writeAdapterRows(storage, pool.pageSize, layout, storeAdapter(a));
    for (const [l, m] of [
      [1, 'down_proj'],
      [0, 'q_proj'],
    ] as const) {
      const placed = layout.modules[l][m]!;
      const pair = a.layers[l][m]!;
      for (let r = 0; r < placed.rank; r++) {
        for (let k = 0; k < placed.inFeatures; k++) {
          const page = placed.aPages[r * placed.pagesPerRowA + Math.floor(k / 16)];
          expect(storage[page * 16 + (k % 16)]).toBe(pair.a[r * placed.inFeatures + k]);
        }
        for (let o = 0; o < placed.outFeatures; o++) {
          const page = placed.bPages[r * placed.pagesPerRowB + Math.floor(o / 16)];
          expect(storage[page * 16 + (o % 16)]).toBe(pair.b[o * placed.rank + r]);
        }
      }
      // the tail of a row's last page is zero, never stale data
      if (placed.inFeatures % 16 !== 0) {
        const lastA = placed.aPages[placed.pagesPerRowA - 1];
        expect(storage[lastA * 16 + 15]).toBe(0);
      }
    }
  });

  for (const dtype of ['F32', 'BF16'] as const)
    it(`writeScaledAdapterRows (${dtype}) writes the same A pages and Bᵀ pages times each layer's own scale`, () => {
      const a = adapter(4, ['q_proj', 'down_proj'], patternRank);
      const stored = storeAdapter(a, dtype);
      const pool = new PagePool(200, config.hiddenSize);
      const layout = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
      const plain = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
      const scaled = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
      writeAdapterRows(plain, pool.pageSize, layout, stored);
      expect([...writeScaledAdapterRows(scaled, pool.pageSize, layout, stored)]).toEqual([]);
      const scales = new Set<number>();
      layout.modules.forEach((placed) => {
        for (const pages of Object.values(placed)) {
          scales.add(pages.scale);
          const page = (p: number) => [...plain.subarray(p * 16, p * 16 + 16)];
          for (const p of pages.aPages) expect([...scaled.subarray(p * 16, p * 16 + 16)]).toEqual(page(p));
          for (const p of pages.bPages)
            expect([...scaled.subarray(p * 16, p * 16 + 16)]).toEqual(
              page(p).map((v) => Math.fround(v * pages.scale)),
            );
        }
      });
      // Modules and layers of different ranks have different scales (1/rank here): not vacuous.
      expect([...scales].sort()).toEqual([0.25, 0.5, 1]);
    });

  for (const dtype of ['F16', 'BF16'] as const)
    it(`writes a ${dtype} host copy into the same pages as its widened f32 form`, () => {
      const f32 = adapter(4, ['q_proj', 'v_proj', 'down_proj'], patternRank);
      // Values that need the low bits and the sign: widening must be exact, element by element.
      for (const layer of f32.layers)
        for (const pair of Object.values(layer))
          for (const m of [pair.a, pair.b])
            for (let i = 0; i < m.length; i++) m[i] = (i % 7) * 0.37 - m[i] / 97;
      const stored = storeAdapter(f32, dtype);
      const widened = widenAdapter(stored);
      const pool = new PagePool(200, config.hiddenSize);
      const layout = layoutAdapter(
        config,
        stored,
        pool.allocate(adapterPageCount(config, stored), 'adapter'),
      );
      const fromHalf = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
      const fromF32 = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
      writeAdapterRows(fromHalf, pool.pageSize, layout, stored);
      writeAdapterRows(fromF32, pool.pageSize, layout, storeAdapter(widened));
      expect(fromHalf).toEqual(fromF32);
      // Rounded to the dtype, so not the f32 values: the test would pass vacuously otherwise.
      expect(widened.layers[1].down_proj!.a).not.toEqual(f32.layers[1].down_proj!.a);
      expect(fromHalf.some((v) => v !== 0 && !Number.isNaN(v))).toBe(true);
    });
});
