import { describe, expect, it } from 'vitest';
import type { RowSampling, SampledStep, StepPlan } from '../../kernels/engine.js';
import { sampleOnHost } from '../../kernels/host-sampling.js';
import { sampleToken } from '../../kernels/sample.js';
import { type LogitEditParams, NO_LOGIT_EDITS, SequenceLogitEdits } from '../../scheduler/logit-edits.js';
import { mulberry32, sequenceSeed } from '../../scheduler/prng.js';
import type { GenerationDelta, GenerationStream, SamplingParams } from '../../scheduler/request.js';
import { choiceGrammar } from '../../structured/grammar-nodes.js';
import { tokenGuide } from '../../structured/request-guide.js';
import { FakeEngine, fakeConfig, fakeKv, type NextToken } from './fake-engine.js';
import { FAKE_EOS, fakeSampling, fakeScheduler } from './fake-scheduler.js';

/**
 * Presence, frequency and repetition penalties, logit_bias, min_tokens and min_p through the
 * scheduler, against an oracle written here the way vLLM computes them on a dense row (its
 * apply_penalties and logits processors), not with the sparse edits the scheduler builds.
 */

/** Logits that depend on the context and repeat themselves: greedy output loops without penalties. */
const looping: NextToken = (_seq, context) => {
  const row = new Float32Array(fakeConfig.vocabSize);
  const last = context[context.length - 1];
  for (let i = 0; i < row.length; i++) row[i] = Math.cos(i * 0.9 + (last % 3)) * 3 + (i === 5 ? 4 : 0);
  row[FAKE_EOS] = 2.5;
  return row;
};

interface OracleRequest {
  prompt: number[];
  sampling: SamplingParams;
}

/** vLLM's order on a dense row: min_tokens and logit_bias, then repetition, frequency, presence. */
function oracleRow(raw: Float32Array, prompt: number[], output: number[], s: SamplingParams): Float32Array {
  const e = s.logitEdits ?? NO_LOGIT_EDITS;
  const row = Float32Array.from(raw);
  if (e.allowedTokenIds)
    for (let t = 0; t < row.length; t++) if (!e.allowedTokenIds.includes(t)) row[t] = -Infinity;
  const stops = new Set([...s.stopTokenIds, ...(s.ignoreEos ? [] : [FAKE_EOS])]);
  if (output.length < e.minTokens) for (const t of stops) row[t] = -Infinity;
  for (const word of e.badWords ?? []) {
    const prefix = word.slice(0, -1);
    const tail = output.slice(output.length - prefix.length);
    if (prefix.length <= output.length && prefix.every((t, i) => t === tail[i]))
      row[word[word.length - 1]] = -Infinity;
  }
  for (const [t, b] of e.logitBias) row[t] = Math.fround(row[t] + b);
  const counts = new Float32Array(row.length);
  for (const t of output) counts[t]++;
  for (let t = 0; t < row.length; t++) {
    const seen = counts[t] > 0 || prompt.includes(t);
    if (seen) row[t] = Math.fround(row[t] > 0 ? row[t] / e.repetitionPenalty : row[t] * e.repetitionPenalty);
  }
  for (let t = 0; t < row.length; t++)
    row[t] = row[t] - (e.frequencyPenalty * counts[t] + e.presencePenalty * (counts[t] > 0 ? 1 : 0));
  return row;
}

/** What one choice must generate: the oracle's row each step, sampled with the choice's stream. */
function oracleTokens({ prompt, sampling: s }: OracleRequest, choice = 0): number[] {
  const uniform = mulberry32(sequenceSeed(s.seed ?? 0, choice));
  const output: number[] = [];
  while (output.length < s.maxTokens) {
    const row = oracleRow(looping(0, [...prompt, ...output]) as Float32Array, prompt, output, s);
    const token = sampleToken(
      row,
      { temperature: s.temperature, topK: s.topK, topP: s.topP, minP: s.minP },
      uniform(),
    );
    output.push(token);
    if (!s.ignoreEos && token === FAKE_EOS && output.length >= (s.logitEdits?.minTokens ?? 0)) break;
  }
  return output;
}

/** An engine that samples "on the device": the host sampler, each call's rows recorded. */
class SamplingFakeEngine extends FakeEngine {
  readonly sampled: RowSampling[][] = [];

  async sampleStep(plan: StepPlan, sampling: ReadonlyArray<RowSampling>): Promise<SampledStep> {
    this.sampled.push([...sampling]);
    return sampleOnHost(this, plan, sampling);
  }
}

async function generate(requests: OracleRequest[], onDevice = false) {
  const { pool, kvCache } = fakeKv(513);
  const engine = onDevice ? new SamplingFakeEngine(pool, looping) : new FakeEngine(pool, looping);
  const scheduler = fakeScheduler(engine, kvCache, {
    limits: { maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: 64 },
  });
  const tokens = await Promise.all(
    requests.map(async ({ prompt, sampling }, i) => {
      const out: number[][] = [];
      const stream: GenerationStream = scheduler.submit({
        requestId: `r${i}`,
        promptTokens: prompt,
        adapter: null,
        sampling,
      });
      for await (const d of stream as AsyncIterable<GenerationDelta>)
        out[d.index] = [...(out[d.index] ?? []), ...d.tokenIds];
      return out;
    }),
  );
  return { tokens, engine };
}

const edits = (overrides: Partial<LogitEditParams>): LogitEditParams => ({ ...NO_LOGIT_EDITS, ...overrides });

const REQUESTS: OracleRequest[] = [
  { prompt: [1, 2, 3], sampling: fakeSampling({ maxTokens: 12, ignoreEos: true }) },
  {
    prompt: [4, 5],
    sampling: fakeSampling({ maxTokens: 12, ignoreEos: true, logitEdits: edits({ frequencyPenalty: 1.5 }) }),
  },
  {
    prompt: [5, 6, 7],
    sampling: fakeSampling({ maxTokens: 12, ignoreEos: true, logitEdits: edits({ presencePenalty: 2 }) }),
  },
  {
    prompt: [5, 9],
    sampling: fakeSampling({ maxTokens: 12, ignoreEos: true, logitEdits: edits({ repetitionPenalty: 1.8 }) }),
  },
  {
    prompt: [8],
    sampling: fakeSampling({
      maxTokens: 12,
      ignoreEos: true,
      logitEdits: edits({ repetitionPenalty: 0.7, frequencyPenalty: -0.4, presencePenalty: 0.6 }),
    }),
  },
  {
    prompt: [2, 2],
    sampling: fakeSampling({
      maxTokens: 12,
      ignoreEos: true,
      logitEdits: edits({
        logitBias: new Map([
          [7, 6.5],
          [5, -100],
        ]),
      }),
    }),
  },
  {
    prompt: [3],
    sampling: fakeSampling({
      maxTokens: 12,
      temperature: 1.3,
      topK: 10,
      topP: 0.9,
      seed: 77,
      minP: 0.2,
      logitEdits: edits({ frequencyPenalty: 0.8, repetitionPenalty: 1.3, minTokens: 6 }),
    }),
  },
  {
    prompt: [6, 1],
    sampling: fakeSampling({ maxTokens: 12, temperature: 0.8, seed: 5, minP: 0.5, ignoreEos: true }),
  },
  {
    prompt: [9],
    sampling: fakeSampling({
      maxTokens: 12,
      temperature: 1.1,
      seed: 21,
      ignoreEos: true,
      logitEdits: edits({
        allowedTokenIds: [2, 11, 17, 5],
        logitBias: new Map([
          [11, 1.5],
          [4, 50],
        ]),
        frequencyPenalty: 0.5,
      }),
    }),
  },
  {
    prompt: [5, 5],
    sampling: fakeSampling({
      maxTokens: 12,
      ignoreEos: true,
      logitEdits: edits({ badWords: [[5], [9, 3], [3, 0, 1]] }),
    }),
  },
];

describe('logit edits and min_p through the scheduler', () => {
  it('generates what the dense vLLM-order oracle generates, each request in a shared batch', async () => {
    const { tokens } = await generate(REQUESTS);
    REQUESTS.forEach((r, i) => {
      expect(tokens[i][0], `request ${i}`).toEqual(oracleTokens(r));
    });
    // The edits are not no-ops: each penalised greedy request differs from the plain one's loop.
    const plain = oracleTokens({
      ...REQUESTS[1],
      sampling: fakeSampling({ maxTokens: 12, ignoreEos: true }),
    });
    expect(tokens[1][0]).not.toEqual(plain);
    expect(new Set(tokens[0][0]).size).toBeLessThan(new Set(tokens[1][0]).size);
    expect(tokens[5][0]).not.toContain(5);
    // allowed_token_ids: only those, though 4 has a +50 bias.
    for (const t of tokens[8][0]) expect([2, 11, 17, 5]).toContain(t);
    expect(new Set(tokens[8][0]).size).toBeGreaterThan(1);
    // bad_words: the one-token word never comes, and the loop the plain request falls into changes.
    expect(tokens[9][0]).not.toContain(5);
  });

  it('hands min-p and the edits to an engine that samples (Engine.sampleStep), with the same tokens', async () => {
    const { tokens, engine } = await generate(REQUESTS, true);
    REQUESTS.forEach((r, i) => {
      expect(tokens[i][0], `request ${i}`).toEqual(oracleTokens(r));
    });
    const rows = (engine as SamplingFakeEngine).sampled.flat();
    // Every token went through sampleStep: 12 per request but the one EOS ends early.
    expect(rows.length).toBe(tokens.reduce((n, t) => n + t[0].length, 0));
    expect(rows.filter((r) => r.adjustments).length).toBeGreaterThan(0);
    expect(rows.filter((r) => (r.minP ?? 0) > 0).length).toBeGreaterThan(0);
    // A plain request's rows carry neither.
    const { engine: plainEngine } = await generate([REQUESTS[0]], true);
    for (const r of (plainEngine as SamplingFakeEngine).sampled.flat()) {
      expect(r.adjustments).toBeNull();
      expect(r.minP).toBe(0);
    }
  });

  it('min_tokens holds back EOS and stop strings until that many tokens are out', async () => {
    const eosFirst: NextToken = () => FAKE_EOS;
    for (const minTokens of [0, 3]) {
      const { pool, kvCache } = fakeKv(129);
      const scheduler = fakeScheduler(new FakeEngine(pool, eosFirst), kvCache);
      const deltas: GenerationDelta[] = [];
      const stream = scheduler.submit({
        requestId: 'm',
        promptTokens: [1],
        adapter: null,
        sampling: fakeSampling({ maxTokens: 8, logitEdits: edits({ minTokens }) }),
      });
      for await (const d of stream as AsyncIterable<GenerationDelta>) deltas.push(d);
      const out = deltas.flatMap((d) => d.tokenIds);
      // EOS is masked for the first min_tokens tokens, then wins again.
      expect(out.length).toBe(minTokens + 1);
      expect(out.slice(0, minTokens)).not.toContain(FAKE_EOS);
      expect(deltas.at(-1)).toMatchObject({ finishReason: 'stop', stopReason: FAKE_EOS });
    }
  });
});

describe('SequenceLogitEdits', () => {
  it('is null when the request edits nothing, and lists only the tokens it touches', () => {
    expect(SequenceLogitEdits.for(NO_LOGIT_EDITS, [1, 2], [31])).toBeNull();
    const e = SequenceLogitEdits.for(edits({ presencePenalty: 1, frequencyPenalty: 0.5 }), [1, 2], [31]);
    expect(e?.adjustments([1, 2], 2)).toBeNull();
    e?.recordOutput(4);
    e?.recordOutput(4);
    e?.recordOutput(9);
    const adj = e?.adjustments([1, 2, 4, 4, 9], 2);
    // Presence and frequency see the output only (not the prompt's 1 and 2).
    expect(Array.from(adj?.tokens ?? [])).toEqual([4, 9]);
    expect(Array.from(adj?.subtract ?? [])).toEqual([2, 1.5]);
    expect(Array.from(adj?.repetition ?? [])).toEqual([1, 1]);
  });

  it("bans a bad word's last token where its other tokens end the output", () => {
    const e = SequenceLogitEdits.for(edits({ badWords: [[7], [3, 4], [1, 2, 5]] }), [3], [31]);
    const tokens = [3];
    const banned = () => Array.from(e?.adjustments(tokens, 1)?.tokens ?? []);
    // The prompt's 3 does not count: only generated tokens make a prefix.
    expect(banned()).toEqual([7]);
    tokens.push(3);
    expect(banned()).toEqual([7, 4]);
    tokens.push(1, 2);
    expect(banned()).toEqual([7, 5]);
    expect(Array.from(e?.adjustments(tokens, 1)?.bias ?? [])).toEqual([-Infinity, -Infinity]);
  });

  it('applies repetition to prompt and output tokens, and masks stop tokens below min_tokens', () => {
    const e = SequenceLogitEdits.for(edits({ repetitionPenalty: 2, minTokens: 2 }), [1, 2, 1], [31, 7]);
    e?.recordOutput(3);
    const early = e?.adjustments([1, 2, 1, 3], 3);
    expect(Array.from(early?.tokens ?? [])).toEqual([31, 7, 1, 2, 3]);
    expect(Array.from(early?.bias ?? [])).toEqual([-Infinity, -Infinity, 0, 0, 0]);
    expect(Array.from(early?.repetition ?? [])).toEqual([1, 1, 2, 2, 2]);
    e?.recordOutput(3);
    expect(Array.from(e?.adjustments([1, 2, 1, 3, 3], 3)?.tokens ?? [])).toEqual([1, 2, 3]);
  });

  it('structured output: the grammar next tokens, within allowed_token_ids, and an end min_tokens cannot hold back', () => {
    // Token b is byte b; 31 and 200 are EOS and a stop token (no bytes).
    const vocab = {
      tokenBytes: () =>
        Array.from({ length: 256 }, (_, b) => (b === 31 || b === 200 ? null : Uint8Array.of(b))),
      idsToTokens: (ids: readonly number[]) => ids.map(() => ''),
    };
    const guide = tokenGuide(vocab, choiceGrammar(['ab', 'ac', 'b'], 'guided_choice'));
    const allowed = (e: SequenceLogitEdits | null, tokens: number[]) =>
      Array.from(e?.adjustments(tokens, 1)?.allowOnly ?? []).sort((x, y) => x - y);
    const e = SequenceLogitEdits.for(edits({ guide, minTokens: 5 }), [9], [200], [31]);
    expect(allowed(e, [9])).toEqual([97, 98]);
    e?.recordOutput(97);
    expect(allowed(e, [9, 97])).toEqual([98, 99]);
    e?.recordOutput(99);
    // Complete: only the ends (the stop token and EOS), and min_tokens puts no −∞ on them.
    expect(allowed(e, [9, 97, 99])).toEqual([31, 200]);
    expect(Array.from(e?.adjustments([9, 97, 99], 1)?.bias ?? [])).not.toContain(-Infinity);
    const both = SequenceLogitEdits.for(edits({ guide, allowedTokenIds: [98, 99, 5] }), [9], [31], [31]);
    expect(allowed(both, [9])).toEqual([98]);
  });
});

describe('a guide that fails', () => {
  it('fails its own request alone; requests in the same steps go on as if it were not there', async () => {
    // A guide that throws on its third token (a matcher bug, say).
    let calls = 0;
    const broken = {
      start: () => ({
        isDead: false,
        advance: () => {},
        allowedTokens: () => {
          if (++calls >= 3) throw new RangeError('Maximum call stack size exceeded');
          return null;
        },
      }),
    };
    const healthy = REQUESTS.slice(0, 2);
    const alone = await generate(healthy);
    const { pool, kvCache } = fakeKv(513);
    const scheduler = fakeScheduler(new FakeEngine(pool, looping), kvCache, {
      limits: { maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: 64 },
    });
    const run = async (requestId: string, prompt: number[], sampling: SamplingParams) => {
      const out: number[] = [];
      for await (const d of scheduler.submit({
        requestId,
        promptTokens: prompt,
        adapter: null,
        sampling,
      }) as AsyncIterable<GenerationDelta>)
        out.push(...d.tokenIds);
      return out;
    };
    // And one that throws when its first token is fed to it.
    const brokenAdvance = {
      start: () => ({
        isDead: false,
        advance: () => {
          throw new Error('no state');
        },
        allowedTokens: () => null,
      }),
    };
    const [failed, failedOnAdvance, ...others] = await Promise.allSettled([
      run(
        'broken',
        [3, 3],
        fakeSampling({ maxTokens: 12, ignoreEos: true, logitEdits: edits({ guide: broken }) }),
      ),
      run(
        'broken-advance',
        [4],
        fakeSampling({ maxTokens: 12, ignoreEos: true, logitEdits: edits({ guide: brokenAdvance }) }),
      ),
      ...healthy.map((r, i) => run(`r${i}`, r.prompt, r.sampling)),
    ]);
    expect(failed.status).toBe('rejected');
    expect(String((failed as PromiseRejectedResult).reason)).toMatch(
      /logit edits failed: Maximum call stack/,
    );
    expect(String((failedOnAdvance as PromiseRejectedResult).reason)).toMatch(/logit edits failed: no state/);
    expect(others.map((o) => (o as PromiseFulfilledResult<number[]>).value)).toEqual(
      alone.tokens.map((t) => t[0]),
    );
  });
});

describe('a decoder that fails', () => {
  it('fails its own request alone', async () => {
    const { pool, kvCache } = fakeKv(513);
    // The request that keeps special tokens gets a decoder that breaks on its third token.
    const scheduler = fakeScheduler(new FakeEngine(pool, looping), kvCache, {
      limits: { maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: 64 },
      newDecoder: ({ skipSpecialTokens }) => {
        let n = 0;
        return {
          push: (id) => {
            if (!skipSpecialTokens && ++n === 3) throw new Error('bad byte sequence');
            return String.fromCharCode(97 + (id % 26));
          },
          flush: () => '',
        };
      },
    });
    const run = async (requestId: string, sampling: SamplingParams) => {
      const out: number[] = [];
      for await (const d of scheduler.submit({
        requestId,
        promptTokens: [1, 2],
        adapter: null,
        sampling,
      }) as AsyncIterable<GenerationDelta>)
        out.push(...d.tokenIds);
      return out;
    };
    const [broken, healthy] = await Promise.allSettled([
      run('broken', fakeSampling({ maxTokens: 8, ignoreEos: true, skipSpecialTokens: false })),
      run('healthy', fakeSampling({ maxTokens: 8, ignoreEos: true })),
    ]);
    expect(String((broken as PromiseRejectedResult).reason)).toMatch(/request broken: bad byte sequence/);
    expect((healthy as PromiseFulfilledResult<number[]>).value).toHaveLength(8);
  });
});
