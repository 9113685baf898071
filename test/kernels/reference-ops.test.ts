import { describe, expect, it } from 'vitest';
import { buildAttentionBatch } from '../../kernels/attention-batch.js';
import { buildLoraBatch } from '../../kernels/lora-batch.js';
import { embed } from '../../kernels/reference/embed.js';
import { writeKv } from '../../kernels/reference/kv-write.js';
import { linear } from '../../kernels/reference/linear.js';
import { loraExpand, loraShrink } from '../../kernels/reference/lora.js';
import { pagedAttention } from '../../kernels/reference/paged-attention.js';
import { rmsNorm } from '../../kernels/reference/rmsnorm.js';
import { siluMul } from '../../kernels/reference/silu-mul.js';
import { adapterPageCount, layoutAdapter, writeAdapterRows } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter } from '../../model/synthetic.js';
import { maxAbsDiff, seededUniform, shuffled } from './reference-harness.js';

function randomArray(length: number, seed: number): Float32Array {
  const u = seededUniform(seed);
  return Float32Array.from({ length }, () => 2 * u() - 1);
}

describe('small reference ops, by hand', () => {
  it('linear multiplies by Wᵀ with W as [out, in]', () => {
    const x = new Float32Array([1, 2, 3, 4]); // [2, 2]
    const w = new Float32Array([1, 0, 0, 1, 1, 1]); // [3, 2]
    expect(Array.from(linear(x, 2, w, 2, 3))).toEqual([1, 2, 3, 3, 4, 7]);
  });

  it('rmsNorm divides by the root mean square, then scales by weight', () => {
    const y = rmsNorm(new Float32Array([3, 4]), 1, new Float32Array([1, 2]), 0);
    const rms = Math.sqrt(12.5);
    expect(y[0]).toBeCloseTo(3 / rms, 6);
    expect(y[1]).toBeCloseTo((2 * 4) / rms, 6);
  });

  it('siluMul is g·sigmoid(g)·u', () => {
    const y = siluMul(new Float32Array([0, 1, -2]), new Float32Array([5, 2, 1]));
    expect(y[0]).toBe(0);
    expect(y[1]).toBeCloseTo(2 / (1 + Math.exp(-1)), 6);
    expect(y[2]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);
  });

  it('embed gathers rows and rejects ids outside the vocabulary', () => {
    const table = new Float32Array([0, 1, 10, 11, 20, 21]);
    expect(Array.from(embed(table, 2, [2, 0, 2]))).toEqual([20, 21, 0, 1, 20, 21]);
    expect(() => embed(table, 2, [3])).toThrow();
  });
});

// hidden 16, 4 heads, 2 KV heads (GQA 2:1), headDim 4 → kvDim 8, two tokens per page.
const config = parseLlamaConfig({
  hidden_size: 16,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  intermediate_size: 24,
  vocab_size: 10,
});

describe('writeKv + pagedAttention', () => {
  it('equals dense causal GQA attention per sequence, with ragged lengths and scattered pages', () => {
    const layout = kvLayout(config);
    const pool = new PagePool(64, config.hiddenSize);
    pool.free(shuffled(pool.allocate(pool.numFree, 'kv'), 4));
    const kv = new KvCache(pool, layout);
    const { numHeads, numKvHeads, headDim } = config;
    const qDim = numHeads * headDim;
    const kvDim = layout.kvDim;
    const lengths = [5, 1, 3];
    const layer = 1;
    const storage = new Float32Array(pool.numPages * pool.pageSize);
    // Prefill the first two positions of sequence 0 in one step, everything else in a second one.
    const sequences = lengths.map((n, s) => {
      kv.reserve(s, n);
      return {
        n,
        q: randomArray(n * qDim, 10 + s),
        k: randomArray(n * kvDim, 20 + s),
        v: randomArray(n * kvDim, 30 + s),
      };
    });
    const steps = [
      [{ s: 0, from: 0, to: 2 }],
      [
        { s: 2, from: 0, to: 3 },
        { s: 0, from: 2, to: 5 },
        { s: 1, from: 0, to: 1 },
      ],
    ];
    let output: Float32Array = new Float32Array(0);
    let plan: Array<{ s: number; from: number; to: number }> = [];
    for (const step of steps) {
      plan = step;
      const batch = buildAttentionBatch({
        sequences: step.map(({ s, from, to }) => ({
          seqId: s,
          tokens: new Array(to - from).fill(0),
          startPos: from,
          pageTable: kv.pageTable(s),
          adapter: null,
          logits: 'none' as const,
        })),
      });
      const pick = (key: 'q' | 'k' | 'v', width: number) => {
        const parts = step.map(({ s, from, to }) => sequences[s][key].subarray(from * width, to * width));
        const joined = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
        let off = 0;
        for (const p of parts) {
          joined.set(p, off);
          off += p.length;
        }
        return joined;
      };
      writeKv(storage, layout, batch, layer, pick('k', kvDim), pick('v', kvDim));
      output = pagedAttention(pick('q', qDim), batch, storage, layout, layer, numHeads, numKvHeads, headDim);
    }
    let row = 0;
    for (const { s, from, to } of plan) {
      const { q, k, v } = sequences[s];
      for (let t = from; t < to; t++, row++) {
        for (let h = 0; h < numHeads; h++) {
          const kvHead = Math.floor(h / 2);
          const scores = [];
          for (let p = 0; p <= t; p++) {
            let dot = 0;
            for (let d = 0; d < headDim; d++)
              dot += q[t * qDim + h * headDim + d] * k[p * kvDim + kvHead * headDim + d];
            scores.push(dot / Math.sqrt(headDim));
          }
          const max = Math.max(...scores);
          const e = scores.map((x) => Math.exp(x - max));
          const total = e.reduce((a, b) => a + b, 0);
          for (let d = 0; d < headDim; d++) {
            const expected = e.reduce(
              (acc, w, p) => acc + (w / total) * v[p * kvDim + kvHead * headDim + d],
              0,
            );
            expect(output[row * qDim + h * headDim + d]).toBeCloseTo(expected, 5);
          }
        }
      }
    }
    expect(storage.subarray(0, pool.pageSize).every((x) => x === 0)).toBe(true);
  });

  it('refuses a position beyond the page table', () => {
    const layout = kvLayout(config);
    const storage = new Float32Array(8 * config.hiddenSize);
    const batch = buildAttentionBatch({
      sequences: [
        {
          seqId: 0,
          tokens: [1, 2, 3],
          startPos: 0,
          pageTable: new Int32Array([1, 2, 3, 4]),
          adapter: null,
          logits: 'none',
        },
      ],
    });
    const k = new Float32Array(3 * layout.kvDim);
    expect(() => writeKv(storage, layout, batch, 0, k, k)).toThrow(/beyond/);
  });
});

describe('loraShrink + loraExpand', () => {
  it('equal y + s·(x·Aᵀ)·Bᵀ per token, each with its own adapter and rank', () => {
    const pool = new PagePool(256, config.hiddenSize);
    pool.free(shuffled(pool.allocate(pool.numFree, 'adapter'), 8));
    const storage = new Float32Array(pool.numPages * pool.pageSize);
    const adapters = [
      { name: 'a', rank: 1, alpha: 2, seed: 1 },
      { name: 'b', rank: 3, alpha: 3, seed: 2, useRslora: true },
      { name: 'c', rank: 5, alpha: 20, seed: 3 },
    ].map((spec) => syntheticAdapter(config, { ...spec, targetModules: ['gate_proj', 'down_proj'] }));
    const layouts = adapters.map((a) => {
      const layout = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
      writeAdapterRows(storage, pool.pageSize, layout, storeAdapter(a));
      return layout;
    });
    // down_proj: 24 inputs over two pages per A row, 16 outputs.
    const inFeatures = config.intermediateSize;
    const outFeatures = config.hiddenSize;
    const tokenAdapter = [2, -1, 0, 2, 1, -1, 1];
    const T = tokenAdapter.length;
    const batch = buildLoraBatch(
      tokenAdapter.map((i) => (i < 0 ? null : layouts[i])),
      1,
      'down_proj',
      inFeatures,
      outFeatures,
      pool.pageSize,
    );
    const x = randomArray(T * inFeatures, 50);
    const y = randomArray(T * outFeatures, 51);
    const expected = Float32Array.from(y);
    loraExpand(loraShrink(x, batch, storage, pool.pageSize), batch, storage, pool.pageSize, y);
    for (let t = 0; t < T; t++) {
      if (tokenAdapter[t] < 0) continue;
      const { a, b, rank, scale } = adapters[tokenAdapter[t]].layers[1].down_proj!;
      const shrunk = linear(x.subarray(t * inFeatures, (t + 1) * inFeatures), 1, a, inFeatures, rank);
      const delta = linear(shrunk, 1, b, rank, outFeatures);
      for (let o = 0; o < outFeatures; o++) expected[t * outFeatures + o] += scale * delta[o];
    }
    expect(maxAbsDiff(y, expected)).toBeLessThan(1e-5);
  });
});
