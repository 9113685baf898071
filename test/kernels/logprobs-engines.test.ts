import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { sampleOnHost } from '../../kernels/host-sampling.js';
import { splitForLogitRows } from '../../kernels/logprob-rows.js';
import { rowLogprobs, topIndices } from '../../kernels/logprobs.js';
import { MergedLoraEngine } from '../../kernels/merged-lora-engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { runLogprobScenario, scenarioWeights } from './logprobs-scenario.js';

describe('kernels/logprobs.ts', () => {
  it('is the log-softmax of the raw logits, top tokens by logit with ties to the lower id, with vLLM’s rank', () => {
    const row = Float32Array.from([1, 3, 3, Number.NEGATIVE_INFINITY, 2]);
    const norm = Math.log(Math.exp(1) + 2 * Math.exp(3) + Math.exp(2));
    const scored = rowLogprobs(row, 4, 4);
    expect(scored.logprob).toBeCloseTo(2 - norm, 6);
    expect(Array.from(scored.topIds)).toEqual([1, 2, 4, 0]);
    expect(scored.topLogprobs[3]).toBeCloseTo(1 - norm, 6);
    expect(rowLogprobs(row, 3, 0).logprob).toBe(Number.NEGATIVE_INFINITY);
    // vLLM's rank: how many tokens have a logit at least as large (a tie ranks both last).
    expect([0, 1, 2, 3, 4].map((id) => rowLogprobs(row, id, 0).rank)).toEqual([4, 2, 2, 5, 3]);
    expect(rowLogprobs([Number.NaN, 1, 2], 1, 0).rank).toBe(2);
    expect(Array.from(topIndices(row, 9))).toEqual([1, 2, 4, 0, 3]);
    expect(Array.from(topIndices([Number.NaN, -1, Number.NaN, 0], 3))).toEqual([3, 1, 0]);
    expect(topIndices(row, 0)).toHaveLength(0);
  });
});

/**
 * Every host-sampling engine: a mixed batch (two adapters and the base model, some sequences
 * asking for log-probabilities and some not, prompt scoring, a chunk that samples nothing), then
 * decode steps; each value within 1e-4 of the reference engine's log-softmax.
 */
describe('log-probabilities on the engines that sample on the host', () => {
  const host = (
    engine: Parameters<typeof sampleOnHost>[0],
    plan: Parameters<typeof sampleOnHost>[1],
    s: Parameters<typeof sampleOnHost>[2],
  ) => sampleOnHost(engine, plan, s);

  it('reference', async () => {
    const { numChecked } = await runLogprobScenario(
      async (h) => ReferenceEngine.create(scenarioWeights(), h.pool),
      host,
    );
    expect(numChecked).toBeGreaterThan(20);
  });

  it('onnx', async () => {
    const { numChecked } = await runLogprobScenario(
      (h) => OnnxEngine.create(scenarioWeights(), h.pool, { threads: 1 }),
      host,
    );
    expect(numChecked).toBeGreaterThan(20);
  });

  it('merged (one adapter at a time merged into the onnx weights)', async () => {
    const { numChecked } = await runLogprobScenario(async (h) => {
      // Its own copy of the weights: merging writes into them.
      const weights = scenarioWeights();
      const inner = await OnnxEngine.create(weights, h.pool, { threads: 1, weights: 'inputs' });
      return new MergedLoraEngine(inner, weights);
    }, host);
    expect(numChecked).toBeGreaterThan(20);
  });
});

describe('splitForLogitRows', () => {
  it('cuts a scoring sequence into consecutive chunks, the sampled row on the last, order kept', () => {
    const plan: StepPlan = {
      sequences: [
        { seqId: 1, tokens: [5], startPos: 3, pageTable: new Int32Array(1), adapter: null, logits: 'last' },
        {
          seqId: 2,
          tokens: [1, 2, 3, 4, 5, 6],
          startPos: 0,
          pageTable: new Int32Array(1),
          adapter: null,
          logits: 'last',
          logprobs: { topK: 2, sampled: true, promptTargets: Int32Array.from([2, 3, 4, 5, 6]) },
        },
      ],
    };
    const parts = splitForLogitRows(plan, 4);
    expect(parts.map((p) => p.sequences)).toEqual([[0, 1], [1]]);
    const [first, second] = parts.map((p) => p.plan.sequences.at(-1)!);
    expect([
      first.tokens,
      first.startPos,
      first.logits,
      Array.from(first.logprobs?.promptTargets ?? []),
    ]).toEqual([[1, 2, 3], 0, 'none', [2, 3, 4]]);
    expect(first.logprobs?.sampled).toBe(false);
    expect([
      second.tokens,
      second.startPos,
      second.logits,
      Array.from(second.logprobs?.promptTargets ?? []),
    ]).toEqual([[4, 5, 6], 3, 'last', [5, 6]]);
    expect(second.logprobs?.sampled).toBe(true);
  });
});
