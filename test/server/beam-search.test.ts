import { describe, expect, it } from 'vitest';
import { logSumExp, type TokenLogprobs, topIndices } from '../../kernels/logprobs.js';
import { type BeamSearchParams, beamScore, beamSearch, type FinishedBeam } from '../../server/beam-search.js';

/** A toy model: the logits after a token sequence, pseudo-random but fixed by the sequence. */
function toyLogits(sequence: readonly number[], vocab: number, seed: number): Float64Array {
  let h = 2166136261 ^ seed;
  for (const t of sequence) h = Math.imul(h ^ (t + 1), 16777619) >>> 0;
  const logits = new Float64Array(vocab);
  for (let v = 0; v < vocab; v++) {
    h = Math.imul(h ^ (v + 7), 2654435761) >>> 0;
    logits[v] = ((h % 10007) / 10007) * 6 - 3;
  }
  return logits;
}

/** The row the server's rounds return: the sampled token (argmax here) and the top tokens. */
function row(logits: Float64Array, numTop: number, sampled?: number): TokenLogprobs {
  const lse = logSumExp(logits);
  const topIds = topIndices(logits, numTop);
  const tokenId = sampled ?? topIds[0];
  let rank = 0;
  for (const x of logits) if (x >= logits[tokenId]) rank++;
  return {
    tokenId,
    logprob: logits[tokenId] - lse,
    rank,
    topIds,
    topLogprobs: Float32Array.from(topIds, (id) => logits[id] - lse),
  };
}

const PROMPT = [5, 1, 4];

function params(overrides: Partial<BeamSearchParams>): BeamSearchParams {
  return {
    width: 2,
    maxTokens: 3,
    lengthPenalty: 1,
    endTokenIds: new Set([2]),
    minTokens: 0,
    keepEndToken: false,
    ...overrides,
  };
}

function search(p: BeamSearchParams, vocab: number, seed: number, calls: number[][][] = []) {
  return beamSearch(PROMPT.length, p, async (beams) => {
    calls.push(beams.map((b) => [...b]));
    // Logprobs as the engine keeps them (f32), so sums match the search's own arithmetic.
    return beams.map((b) => {
      const r = row(toyLogits([...PROMPT, ...b], vocab, seed), 2 * p.width);
      return { ...r, logprob: Math.fround(r.logprob) };
    });
  });
}

interface Hypothesis {
  tokens: number[];
  cumulative: number;
  length: number;
  stop: boolean;
}

/**
 * Every hypothesis of up to maxTokens tokens, scored: a path that reached an end token (past
 * minTokens), or ran maxTokens tokens without one. Beam search that never prunes returns the best
 * of these.
 */
function allHypotheses(p: BeamSearchParams, vocab: number, seed: number): Hypothesis[] {
  const out: Hypothesis[] = [];
  const walk = (tokens: number[], cumulative: number) => {
    if (tokens.length === p.maxTokens) {
      out.push({ tokens, cumulative, length: PROMPT.length + tokens.length, stop: false });
      return;
    }
    const logits = toyLogits([...PROMPT, ...tokens], vocab, seed);
    const lse = logSumExp(logits);
    for (let v = 0; v < vocab; v++) {
      const logprob = Math.fround(logits[v] - lse);
      if (p.endTokenIds.has(v)) {
        if (tokens.length >= p.minTokens)
          out.push({
            tokens: p.keepEndToken ? [...tokens, v] : tokens,
            cumulative: cumulative + logprob,
            length: PROMPT.length + tokens.length,
            stop: true,
          });
      } else walk([...tokens, v], cumulative + logprob);
    }
  };
  walk([], 0);
  return out;
}

function scores(beams: FinishedBeam[], p: BeamSearchParams): number[] {
  return beams.map((b) => {
    const generated = b.finishReason === 'stop' && p.keepEndToken ? b.tokenIds.length - 1 : b.tokenIds.length;
    return beamScore(b.cumulativeLogprob, PROMPT.length + generated, p.lengthPenalty);
  });
}

describe('beam search', () => {
  // Vocabulary 4 (token 2 ends a beam), 3 tokens: at most 3³ = 27 live paths and 2·width ≥ 4
  // candidates per beam, so a width of 27 never prunes: the answer is the exact best of all.
  const exhaustive: Array<[string, Partial<BeamSearchParams>]> = [
    ['length_penalty 1', {}],
    ['length_penalty 0 (sums)', { lengthPenalty: 0 }],
    ['length_penalty 2', { lengthPenalty: 2 }],
    ['min_tokens 2', { minTokens: 2 }],
    ['the end token kept', { keepEndToken: true }],
    ['ignore_eos (no end token)', { endTokenIds: new Set() }],
    ['two end tokens', { endTokenIds: new Set([2, 3]) }],
  ];
  for (const [name, overrides] of exhaustive) {
    it(`returns the best hypotheses of all when it never prunes: ${name}`, async () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        const p = params({ ...overrides, width: 27 });
        const beams = await search(p, 4, seed);
        const all = allHypotheses(p, 4, seed);
        const best = all
          .map((h) => ({ h, score: beamScore(h.cumulative, h.length, p.lengthPenalty) }))
          .sort((a, b) => b.score - a.score)
          .slice(0, p.width);
        expect(beams.map((b) => b.tokenIds)).toEqual(best.map((b) => b.h.tokens));
        expect(beams.map((b) => b.finishReason)).toEqual(best.map((b) => (b.h.stop ? 'stop' : 'length')));
        beams.forEach((b, i) => {
          expect(b.cumulativeLogprob).toBeCloseTo(best[i].h.cumulative, 10);
          // Each token's logprob is its row's, and they sum to the beam's.
          const kept = b.logprobs.reduce((sum, l) => sum + l.logprob, 0);
          if (b.finishReason === 'length' || p.keepEndToken)
            expect(kept).toBeCloseTo(b.cumulativeLogprob, 10);
          expect(b.logprobs.map((l) => l.tokenId)).toEqual(b.tokenIds);
        });
        if (p.minTokens > 0)
          for (const b of beams)
            if (b.finishReason === 'stop') expect(b.tokenIds.length).toBeGreaterThanOrEqual(2);
      }
    });
  }

  it('keeps the best `width` beams a round, and ranks the answer by score', async () => {
    const p = params({ width: 3, maxTokens: 6 });
    const calls: number[][][] = [];
    const beams = await search(p, 16, 9, calls);
    expect(beams).toHaveLength(3);
    const s = scores(beams, p);
    expect([...s].sort((a, b) => b - a)).toEqual(s);
    // One call a round, each with at most `width` live beams (the first with the prompt alone).
    expect(calls[0]).toEqual([[]]);
    expect(calls.length).toBeLessThanOrEqual(6);
    for (const round of calls) expect(round.length).toBeLessThanOrEqual(3);
  });

  it('with width 1 and no end token, is greedy decoding', async () => {
    const p = params({ width: 1, maxTokens: 8, endTokenIds: new Set() });
    const [beam] = await search(p, 32, 11);
    const greedy: number[] = [];
    for (let i = 0; i < 8; i++) greedy.push(topIndices(toyLogits([...PROMPT, ...greedy], 32, 11), 1)[0]);
    expect(beam.tokenIds).toEqual(greedy);
    expect(beam.finishReason).toBe('length');
  });

  it('finds a better sequence than greedy where the likeliest first token leads nowhere', async () => {
    // After the prompt: A (0.6) then a flat row; B (0.4) then one near-certain token.
    const A = 10;
    const B = 11;
    const rows = new Map<string, number[]>([
      ['', [A, Math.log(0.6), B, Math.log(0.4)]],
      [`${A}`, [20, Math.log(0.25), 21, Math.log(0.25), 22, Math.log(0.25), 23, Math.log(0.25)]],
      [`${B}`, [30, Math.log(0.97), 31, Math.log(0.01), 32, Math.log(0.01), 33, Math.log(0.01)]],
    ]);
    const beams = await beamSearch(PROMPT.length, params({ width: 2, maxTokens: 2 }), async (live) =>
      live.map((b) => {
        const pairs = rows.get(b.join(',')) ?? [];
        const topIds = Int32Array.from(pairs.filter((_, i) => i % 2 === 0));
        const topLogprobs = Float32Array.from(pairs.filter((_, i) => i % 2 === 1));
        return { tokenId: topIds[0], logprob: topLogprobs[0], rank: 1, topIds, topLogprobs };
      }),
    );
    expect(beams[0].tokenIds).toEqual([B, 30]);
    expect(beams[0].cumulativeLogprob).toBeCloseTo(Math.log(0.4 * 0.97), 5);
    expect(beams[1].tokenIds[0]).toBe(A);
  });

  it("adds the sampled token to its row's candidates when the top tokens leave it out", async () => {
    const logits = toyLogits(PROMPT, 32, 3);
    const top = topIndices(logits, 32);
    const unlikely = top[20];
    const p = params({ width: 4, maxTokens: 1, endTokenIds: new Set() });
    const beams = await beamSearch(PROMPT.length, p, async () => [row(logits, 2, unlikely)]);
    expect(beams.map((b) => b.tokenIds[0])).toEqual([top[0], top[1], unlikely]);
    expect(beams.map((b) => b.logprobs[0].rank)).toEqual([1, 2, 21]);
  });
});
