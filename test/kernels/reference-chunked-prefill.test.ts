import { describe, expect, it } from 'vitest';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

const weights = syntheticWeights(TINY_SPEC);
const config = weights.config;

describe('reference engine chunked prefill', () => {
  for (const withAdapter of [false, true]) {
    it(`chunks with logits 'none' then 'last' equal one-shot prefill (${withAdapter ? 'adapter' : 'base'})`, async () => {
      const h = referenceHarness(weights, 256, 5);
      const adapter = withAdapter
        ? h.load(
            syntheticAdapter(config, {
              name: 'chunked',
              rank: 4,
              alpha: 8,
              targetModules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'],
              seed: 9,
            }),
          )
        : null;
      const prompt = randomTokens(11, config.vocabSize, 31);
      const oneShot = await h.engine.step({ sequences: [h.sequenceStep(1, prompt, 0, adapter, 'last')] });

      const chunks = [prompt.slice(0, 4), prompt.slice(4, 7), prompt.slice(7)];
      let startPos = 0;
      let last: Float32Array = new Float32Array(0);
      for (const [i, chunk] of chunks.entries()) {
        const isLast = i === chunks.length - 1;
        last = await h.engine.step({
          sequences: [h.sequenceStep(2, chunk, startPos, adapter, isLast ? 'last' : 'none')],
        });
        if (!isLast) expect(last.length).toBe(0);
        startPos += chunk.length;
      }
      expect(last.length).toBe(config.vocabSize);
      expect(maxAbsDiff(last, oneShot)).toBeLessThanOrEqual(1e-5);
    });
  }
});
