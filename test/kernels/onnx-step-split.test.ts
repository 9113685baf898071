import { describe, expect, it } from 'vitest';
import type { SequenceStep, StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { splitPlan } from '../../kernels/onnx/step-split.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

function seq(seqId: number, n: number, startPos = 0, logits: SequenceStep['logits'] = 'last'): SequenceStep {
  return {
    seqId,
    tokens: Array.from({ length: n }, (_, i) => i),
    startPos,
    pageTable: new Int32Array(0),
    adapter: null,
    logits,
  };
}

describe('splitPlan', () => {
  it('keeps a decode batch and a batch of similar prompts whole, in order', () => {
    const decode = { sequences: [seq(1, 1, 9), seq(2, 1, 4), seq(3, 1, 30)] };
    const parts = splitPlan(decode, 512);
    expect(parts).toHaveLength(1);
    expect(parts[0].origin).toEqual([0, 1, 2]);
    expect(splitPlan({ sequences: [seq(1, 40), seq(2, 30), seq(3, 35)] }, 512)).toHaveLength(1);
  });

  it('separates a long prompt from many decodes', () => {
    const plan = {
      sequences: [seq(0, 1, 5), seq(1, 300), ...Array.from({ length: 10 }, (_, i) => seq(i + 2, 1, 7))],
    };
    const parts = splitPlan(plan, 512);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      const lengths = p.plan.sequences.map((s) => s.tokens.length);
      expect(lengths.length * Math.max(...lengths)).toBeLessThanOrEqual(
        2 * lengths.reduce((a, b) => a + b, 0),
      );
    }
    expect(parts.flatMap((p) => p.origin).sort((a, b) => a - b)).toEqual(plan.sequences.map((_, i) => i));
  });

  it('keeps a short prompt with many decodes in one run while their padded attention is small', () => {
    const decodes = (startPos: number) => Array.from({ length: 31 }, (_, i) => seq(i + 2, 1, startPos));
    // 24-token prompt beside 31 decodes 40 tokens in: 713 padding rows × 64 slots ≤ PADDING_BUDGET.
    expect(splitPlan({ sequences: [seq(1, 24), ...decodes(40)] }, 512)).toHaveLength(1);
    // The same 4,000 tokens in: 713 rows × 4,024 slots is past it, so the prompt runs apart.
    const long = splitPlan({ sequences: [seq(1, 24), ...decodes(4000)] }, 512);
    expect(long.length).toBeGreaterThan(1);
    expect(long.flatMap((p) => p.origin).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 32 }, (_, i) => i),
    );
  });

  it('chunks a long prompt into rounds, logits only where the plan wants them', () => {
    const parts = splitPlan({ sequences: [seq(1, 7, 2, 'last'), seq(2, 5, 0, 'all')] }, 3);
    const chunks = parts.flatMap((p) =>
      p.plan.sequences.map((s) => [s.seqId, s.startPos, s.tokens.length, s.logits]),
    );
    expect(chunks).toEqual([
      [1, 2, 3, 'none'],
      [2, 0, 3, 'all'],
      [1, 5, 3, 'none'],
      [2, 3, 2, 'all'],
      [1, 8, 1, 'last'],
    ]);
  });
});

describe('onnx engine with plans split into several runs', () => {
  it('matches the reference engine on chunked prompts mixed with decodes', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 21 });
    const config = weights.config;
    const ref = referenceHarness(weights, 1500, 17);
    const onnx = await OnnxEngine.create(weights, ref.pool, { threads: 1, maxChunkTokens: 4 });
    try {
      const adapter = syntheticAdapter(config, {
        name: 'split',
        rank: 8,
        alpha: 8,
        targetModules: ['q_proj', 'up_proj'],
        seed: 4,
      });
      const layout = ref.load(adapter);
      onnx.writeAdapter(layout, storeAdapter(adapter));
      const first: StepPlan = {
        sequences: [
          ref.sequenceStep(1, randomTokens(3, config.vocabSize, 1), 0, layout, 'last'),
          ref.sequenceStep(2, randomTokens(2, config.vocabSize, 2), 0, null, 'last'),
        ],
      };
      expect(maxAbsDiff(await onnx.step(first), await ref.engine.step(first))).toBeLessThan(1e-4);
      const mixed: StepPlan = {
        sequences: [
          ref.sequenceStep(1, [5], 3, layout, 'last'),
          ref.sequenceStep(3, randomTokens(11, config.vocabSize, 3), 0, layout, 'all'),
          ref.sequenceStep(2, [6], 2, null, 'last'),
          ref.sequenceStep(4, randomTokens(9, config.vocabSize, 4), 0, null, 'last'),
        ],
      };
      expect(splitPlan(mixed, 4).length).toBeGreaterThan(2);
      expect(maxAbsDiff(await onnx.step(mixed), await ref.engine.step(mixed))).toBeLessThan(1e-4);
    } finally {
      await onnx.close();
    }
  });
});
