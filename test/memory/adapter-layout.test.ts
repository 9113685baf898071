import { describe, expect, it } from 'vitest';
import { adapterPageCount, layoutAdapter, writeAdapterRows } from '../../memory/adapter-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import type { LoraAdapter, LoraPair } from '../../model/lora-adapter.js';

const config = parseLlamaConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 40,
  vocab_size: 50,
});

function adapter(rank: number, modules: TargetModule[]): LoraAdapter {
  let counter = 1;
  const layers = [0, 1].map(() => {
    const layer: Partial<Record<TargetModule, LoraPair>> = {};
    for (const m of modules) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      layer[m] = {
        a: Float32Array.from({ length: rank * inFeatures }, () => counter++),
        b: Float32Array.from({ length: outFeatures * rank }, () => counter++),
        rank,
        scale: 1,
      };
    }
    return layer;
  });
  return { name: 'x', path: '/x', rank, alpha: rank, targetModules: modules, layers };
}

describe('adapter layout', () => {
  it('gives each rank-row ceil(features / pageSize) pages, no padding to a maximum rank', () => {
    const a = adapter(3, ['k_proj', 'down_proj']);
    // k_proj: A rows of 16 (1 page), Bᵀ rows of 8 (1 page); down_proj: A rows of 40 (3 pages), Bᵀ rows of 16 (1 page)
    expect(adapterPageCount(config, a)).toBe(2 * 3 * (1 + 1 + 3 + 1));
  });

  it('stores A rows and Bᵀ rows so that gathering them by page gives the matrices back', () => {
    const a = adapter(2, ['q_proj', 'down_proj']);
    const pool = new PagePool(200, config.hiddenSize);
    const pages = pool.allocate(adapterPageCount(config, a), 'adapter');
    const shuffled = Int32Array.from([...pages].sort(() => Math.random() - 0.5));
    const layout = layoutAdapter(config, a, shuffled);
    const storage = new Float32Array(pool.numPages * pool.pageSize).fill(Number.NaN);
    writeAdapterRows(storage, pool.pageSize, layout, a);
    for (const [l, m] of [
      [1, 'down_proj'],
      [0, 'q_proj'],
    ] as const) {
      const placed = layout.modules[l][m]!;
      const pair = a.layers[l][m]!;
      for (let r = 0; r < 2; r++) {
        for (let k = 0; k < placed.inFeatures; k++) {
          const page = placed.aPages[r * placed.pagesPerRowA + Math.floor(k / 16)];
          expect(storage[page * 16 + (k % 16)]).toBe(pair.a[r * placed.inFeatures + k]);
        }
        for (let o = 0; o < placed.outFeatures; o++) {
          const page = placed.bPages[r * placed.pagesPerRowB + Math.floor(o / 16)];
          expect(storage[page * 16 + (o % 16)]).toBe(pair.b[o * 2 + r]);
        }
      }
      // the tail of a row's last page is zero, never stale data
      if (placed.inFeatures % 16 !== 0) {
        const lastA = placed.aPages[placed.pagesPerRowA - 1];
        expect(storage[lastA * 16 + 15]).toBe(0);
      }
    }
  });
});
