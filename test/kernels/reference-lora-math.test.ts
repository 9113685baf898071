import { describe, expect, it } from 'vitest';
import { denseForward, mergeAdapter } from '../../kernels/reference/merged-forward.js';
import { argmax } from '../../kernels/sample.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness, rowOf } from './reference-harness.js';

const weights = syntheticWeights(TINY_SPEC);
const config = weights.config;
const vocab = config.vocabSize;

/**
 * The paged, per-token LoRA path (shrink/expand through pool pages) must give the logits of a
 * dense forward pass whose weights have the adapter merged in (W + s·B·A).
 */
async function checkAgainstMerged(
  adapter: LoraAdapter | null,
  promptLength: number,
  decodeSteps: number,
): Promise<void> {
  const h = referenceHarness(weights, 256, 3);
  const layout = adapter ? h.load(adapter) : null;
  const reference = adapter ? mergeAdapter(weights, adapter) : weights;
  const tokens = randomTokens(promptLength, vocab, 11);

  const logits = await h.engine.step({ sequences: [h.sequenceStep(1, tokens, 0, layout, 'all')] });
  expect(logits.length).toBe(promptLength * vocab);
  const dense = denseForward(reference, tokens);
  expect(maxAbsDiff(logits, dense)).toBeLessThan(1e-4);
  // The adapter must matter, or agreeing with the merged weights would prove nothing.
  if (adapter) expect(maxAbsDiff(dense, denseForward(weights, tokens))).toBeGreaterThan(0.1);
  let last = rowOf(logits, promptLength - 1, vocab);
  for (let step = 0; step < decodeSteps; step++) {
    const next = argmax(last);
    const startPos = tokens.length;
    tokens.push(next);
    last = await h.engine.step({ sequences: [h.sequenceStep(1, [next], startPos, layout, 'last')] });
    expect(last.length).toBe(vocab);
    const dense = denseForward(reference, tokens);
    expect(maxAbsDiff(last, rowOf(dense, tokens.length - 1, vocab))).toBeLessThan(1e-4);
  }
}

describe('reference engine LoRA math equals merged weights', () => {
  it('base model (no adapter) equals the dense forward pass', async () => {
    await checkAgainstMerged(null, 6, 3);
  });

  it('standard LoRA on every module: prefill and decode steps', async () => {
    const adapter = syntheticAdapter(config, {
      name: 'all-modules',
      rank: 4,
      alpha: 8,
      targetModules: [...TARGET_MODULES],
      seed: 5,
    });
    await checkAgainstMerged(adapter, 7, 4);
  });

  it('rsLoRA (scale alpha/sqrt(r)) on some modules: prefill and decode steps', async () => {
    const adapter = syntheticAdapter(config, {
      name: 'rslora',
      rank: 8,
      alpha: 16,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
      seed: 6,
      useRslora: true,
    });
    expect(adapter.layers[0].q_proj!.scale).toBeCloseTo(16 / Math.sqrt(8), 6);
    await checkAgainstMerged(adapter, 5, 4);
  });
});
