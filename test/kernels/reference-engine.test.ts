import { describe, expect, it } from 'vitest';
import { denseForward, mergeAdapter } from '../../kernels/reference/merged-forward.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { PagePool } from '../../memory/page-pool.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

describe('ReferenceEngine', () => {
  it('handles tied embeddings and llama3 RoPE scaling like the dense forward pass', async () => {
    const weights = syntheticWeights({
      ...TINY_SPEC,
      seed: 3,
      tieWordEmbeddings: true,
      ropeScaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    });
    expect(weights.lmHead).toBe(weights.embedTokens);
    const adapter = syntheticAdapter(weights.config, {
      name: 'tied',
      rank: 3,
      alpha: 6,
      targetModules: ['k_proj', 'up_proj'],
      seed: 4,
    });
    const h = referenceHarness(weights, 256, 2);
    const layout = h.load(adapter);
    const tokens = randomTokens(6, weights.config.vocabSize, 8);
    const logits = await h.engine.step({ sequences: [h.sequenceStep(1, tokens, 0, layout, 'all')] });
    expect(maxAbsDiff(logits, denseForward(mergeAdapter(weights, adapter), tokens))).toBeLessThan(1e-4);
  });

  it('refuses a pool whose page size is not the hidden size, and steps after close', async () => {
    const weights = syntheticWeights(TINY_SPEC);
    expect(() => ReferenceEngine.create(weights, new PagePool(8, weights.config.hiddenSize * 2))).toThrow();
    const h = referenceHarness(weights, 32);
    await h.engine.close();
    await expect(h.engine.step({ sequences: [h.sequenceStep(1, [1], 0, null, 'last')] })).rejects.toThrow(
      /closed/,
    );
  });
});
