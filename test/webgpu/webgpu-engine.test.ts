import { describe, expect, it } from 'vitest';
import type { SequenceStep, StepPlan } from '../../kernels/engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { sampleToken } from '../../kernels/sample.js';
import { WebGpuEngine, type WebGpuEngineOptions } from '../../kernels/webgpu/webgpu-engine.js';
import { roundTripModel } from '../../kernels/weight-quantization.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import {
  F32_TOLERANCE,
  openSuiteContext,
  randomInt,
  relativeError,
  seededRandom,
  shuffle,
} from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu engine');

const weights = syntheticWeights({ ...TINY_SPEC, seed: 5 });
const config = weights.config;
/** Four adapters of different ranks and target modules, batched beside the base model. */
const adapterSpecs = [
  { name: 'r4', rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] as const },
  { name: 'r8', rank: 8, alpha: 16, targetModules: ['q_proj', 'k_proj', 'o_proj', 'down_proj'] as const },
  {
    name: 'r16',
    rank: 16,
    alpha: 8,
    targetModules: TARGET_MODULES,
  },
  {
    name: 'r64',
    rank: 64,
    alpha: 64,
    targetModules: ['v_proj', 'gate_proj', 'up_proj', 'down_proj'] as const,
  },
];
const DECODE_STEPS = 8;
const adapters: LoraAdapter[] = adapterSpecs.map((s, i) =>
  syntheticAdapter(config, { ...s, targetModules: [...s.targetModules], seed: 10 + i }),
);

/** Both engines over one pool's bookkeeping (shuffled pages), adapters resident in both. */
async function pair(options: WebGpuEngineOptions) {
  const pool = new PagePool(3000, config.hiddenSize);
  pool.free(shuffle(seededRandom(3), Array.from(pool.allocate(pool.numFree, 'kv'))));
  // Stored weights are checked against the f32 model they stand for (f16 against f32, loosely).
  const stored = options.weightDtype ?? 'f32';
  const reference = ReferenceEngine.create(
    stored === 'f16' ? weights : roundTripModel(weights, stored),
    pool,
  );
  const gpu = await WebGpuEngine.create(weights, pool, { ...options, context: ctx! });
  const layouts: AdapterLayout[] = adapters.map((a) => {
    const layout = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
    reference.writeAdapter(layout, storeAdapter(a));
    gpu.writeAdapter(layout, storeAdapter(a));
    return layout;
  });
  return { pool, reference, gpu, layouts, kv: new KvCache(pool, kvLayout(config)) };
}

describe.skipIf(!ctx)('WebGpuEngine against the reference engine', () => {
  for (const [label, options, tolerance] of [
    ['f32 weights', {}, F32_TOLERANCE],
    [
      'f32, weights and pool split across bindings, adapters uploaded 3 pages at a time',
      { maxChunkBytes: 100 * 64 * 4, uploadPieceBytes: 3 * 64 * 4 },
      F32_TOLERANCE,
    ],
    ['f16 weights', { weightDtype: 'f16' }, 2e-2],
    ['int8 weights, split across bindings', { weightDtype: 'int8', maxChunkBytes: 100 * 128 }, F32_TOLERANCE],
    ['int4 weights', { weightDtype: 'int4' }, F32_TOLERANCE],
    [
      'bf16 weights, stored transposed (in-out)',
      { weightDtype: 'bf16', weightLayout: 'in-out' },
      F32_TOLERANCE,
    ],
    [
      'f32 weights stored transposed (in-out), split',
      { weightLayout: 'in-out', maxChunkBytes: 100 * 64 * 4 },
      F32_TOLERANCE,
    ],
  ] as Array<[string, WebGpuEngineOptions, number]>) {
    it(`${label}: ragged prefill, then ${DECODE_STEPS} decode steps, 4 adapters and the base model in one batch`, async () => {
      if (options.weightDtype === 'f16' && !ctx!.hasF16) return;
      const { reference, gpu, layouts, kv } = await pair(options);
      const rand = seededRandom(label.length);
      const owners = [layouts[0], null, layouts[2], layouts[1], layouts[3]];
      const numSeqs = owners.length;
      const lengths = Array.from({ length: numSeqs }, () => randomInt(rand, 1, 9));
      const positions = new Array(numSeqs).fill(0);
      const step = (seq: number, tokens: number[], logits: SequenceStep['logits']): SequenceStep => {
        if (!kv.reserve(seq, positions[seq] + tokens.length)) throw new Error('test pool too small');
        const s = {
          seqId: seq,
          tokens,
          startPos: positions[seq],
          pageTable: kv.pageTable(seq),
          adapter: owners[seq],
          logits,
        };
        positions[seq] += tokens.length;
        return s;
      };
      const token = () => randomInt(rand, 0, config.vocabSize - 1);
      const plans: StepPlan[] = [
        {
          sequences: lengths.map((n, s) =>
            step(s, Array.from({ length: n }, token), s === 1 ? 'all' : s === 3 ? 'none' : 'last'),
          ),
        },
      ];
      for (let d = 0; d < DECODE_STEPS; d++)
        plans.push({ sequences: owners.map((_, s) => step(s, [token()], 'last')) });
      for (const plan of plans) {
        const expected = await reference.step(plan);
        const actual = await gpu.step(plan);
        expect(actual.length).toBe(expected.length);
        expect(relativeError(actual, expected)).toBeLessThan(tolerance);
        if (options.weightDtype === 'f16') continue;
        // Re-running the step rewrites the same K/V, so sampling on the device sees the same logits.
        const vocab = config.vocabSize;
        const sampling = Array.from({ length: expected.length / vocab }, (_, r) => ({
          temperature: r % 3 === 0 ? 0 : 0.8,
          topK: r % 2 === 0 ? 20 : 0,
          topP: 0.9,
          uniform: rand(),
        }));
        const { tokens: ids } = await gpu.sampleStep(plan, sampling);
        const wanted = sampling.map((s, r) =>
          sampleToken(expected.subarray(r * vocab, (r + 1) * vocab), s, s.uniform),
        );
        expect(Array.from(ids)).toEqual(wanted);
      }
      expect(await gpu.step({ sequences: [] })).toHaveLength(0);
      await gpu.close();
      await reference.close();
      await expect(gpu.step(plans[0])).rejects.toThrow(/closed/);
    });
  }

  it('int8 with tied embeddings: lm_head is a quantized copy, the table embed reads stays f32', async () => {
    const tied = syntheticWeights({ ...TINY_SPEC, tieWordEmbeddings: true, seed: 6 });
    expect(tied.lmHead).toBe(tied.embedTokens);
    const pool = new PagePool(64, tied.config.hiddenSize);
    const reference = ReferenceEngine.create(roundTripModel(tied, 'int8'), pool);
    const gpu = await WebGpuEngine.create(tied, pool, { weightDtype: 'int8', context: ctx! });
    const kv = new KvCache(pool, kvLayout(tied.config));
    kv.reserve(0, 7);
    const plan: StepPlan = {
      sequences: [
        {
          seqId: 0,
          tokens: [3, 1, 4, 1, 5, 9, 2],
          startPos: 0,
          pageTable: kv.pageTable(0),
          adapter: null,
          logits: 'all',
        },
      ],
    };
    const expected = await reference.step(plan);
    expect(relativeError(await gpu.step(plan), expected)).toBeLessThan(F32_TOLERANCE);
    // Quantizing lm_head matters here: the f32 model's logits are measurably different.
    expect(relativeError(await ReferenceEngine.create(tied, pool).step(plan), expected)).toBeGreaterThan(
      1e-4,
    );
    await gpu.close();
    await reference.close();
  });
});
