import { describe, expect, it } from 'vitest';
import type { RowSampling } from '../../kernels/engine.js';
import { adjustedLogits } from '../../kernels/logit-adjustments.js';
import { logSumExp, processedLogits, rowLogprobs, rowScores } from '../../kernels/logprobs.js';
import { keptTokens, sampleToken } from '../../kernels/sample.js';
import { mulberry32 } from '../../scheduler/prng.js';

/**
 * vLLM's --logprobs-mode on the host: the processed logits are what the sampler draws from (a
 * token outside them is never drawn, one inside is with its softmax probability), and the
 * *_logits modes report logits where the others report log-probabilities.
 */
function randomRow(rand: () => number, vocab: number): Float32Array {
  return Float32Array.from({ length: vocab }, () => Math.fround((rand() - 0.5) * 12));
}

const edits = {
  tokens: Int32Array.of(3, 7),
  bias: Float32Array.of(2.5, -1),
  repetition: Float32Array.of(1, 1.3),
  subtract: Float32Array.of(0, 0.5),
};

describe('processedLogits', () => {
  it('is the edited row for a greedy row, and the raw row without edits', () => {
    const row = randomRow(mulberry32(1), 64);
    const greedy: RowSampling = { temperature: 0, topK: 5, topP: 0.5, uniform: 0.3, adjustments: edits };
    expect(processedLogits(row, greedy)).toEqual(adjustedLogits(row, edits));
    expect(processedLogits(row, { ...greedy, adjustments: null })).toEqual(row);
  });

  it('keeps exactly the tokens sampling can draw, each as likely as sampling draws it', () => {
    const rand = mulberry32(2);
    const settings: RowSampling[] = [
      { temperature: 0.7, topK: 0, topP: 1, uniform: 0 },
      { temperature: 1.3, topK: 6, topP: 1, uniform: 0 },
      { temperature: 0.9, topK: 0, topP: 0.6, uniform: 0, adjustments: edits },
      { temperature: 1, topK: 10, topP: 0.8, minP: 0.05, uniform: 0 },
    ];
    for (const s of settings) {
      const row = randomRow(rand, 48);
      const processed = processedLogits(row, s);
      const kept = new Set(keptTokens(s.adjustments ? adjustedLogits(row, s.adjustments) : row, s));
      const norm = logSumExp(processed);
      // Drawn on a fine grid of uniforms, each token's share is its processed probability.
      const draws = new Map<number, number>();
      const n = 20_000;
      const input = s.adjustments ? adjustedLogits(row, s.adjustments) : row;
      for (let i = 0; i < n; i++) {
        const token = sampleToken(input, s, (i + 0.5) / n);
        draws.set(token, (draws.get(token) ?? 0) + 1);
      }
      for (let t = 0; t < row.length; t++) {
        if (!kept.has(t)) {
          expect(processed[t]).toBe(Number.NEGATIVE_INFINITY);
          expect(draws.get(t)).toBeUndefined();
          continue;
        }
        expect(processed[t]).toBeCloseTo(input[t] / s.temperature, 5);
        expect((draws.get(t) ?? 0) / n).toBeCloseTo(Math.exp(processed[t] - norm), 3);
      }
    }
  });
});

describe('rowScores', () => {
  it('answers log-probabilities as rowLogprobs does, or the logits in their place', () => {
    const row = randomRow(mulberry32(3), 32);
    expect(rowScores(row, 4, 3, false)).toEqual(rowLogprobs(row, 4, 3));
    const logits = rowScores(row, 4, 3, true);
    const probs = rowLogprobs(row, 4, 3);
    expect(logits.topIds).toEqual(probs.topIds);
    expect(logits.rank).toBe(probs.rank);
    expect(logits.logprob).toBe(row[4]);
    expect([...logits.topLogprobs]).toEqual(Array.from(probs.topIds, (id) => row[id]));
  });
});
