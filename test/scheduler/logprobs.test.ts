import { describe, expect, it } from 'vitest';
import { rowLogprobs } from '../../kernels/logprobs.js';
import type { GenerationDelta, GenerationStream, SamplingParams } from '../../scheduler/request.js';
import { FakeEngine, fakeKv, type NextToken } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

/** Logits that depend on the whole context, so every position scores differently. */
const uneven: NextToken = (_seq, context) => {
  const row = new Float32Array(32);
  const salt = context.reduce((a, b, i) => a + b * (i + 1), 0);
  for (let i = 0; i < row.length; i++) row[i] = Math.sin(i * 1.7 + salt * 0.37) * 3;
  row[31] = -50; // EOS stays out of the way
  return row;
};

function setup(kvPages = 256, maxNumBatchedTokens = 8) {
  const { pool, kvCache } = fakeKv(kvPages + 1);
  const engine = new FakeEngine(pool, uneven);
  const scheduler = fakeScheduler(engine, kvCache, { limits: { maxNumBatchedTokens } });
  return { pool, engine, scheduler };
}

async function collect(stream: GenerationStream): Promise<GenerationDelta[]> {
  const deltas: GenerationDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return deltas;
}

const submit = (
  scheduler: ReturnType<typeof setup>['scheduler'],
  prompt: number[],
  s: Partial<SamplingParams>,
) =>
  collect(
    scheduler.submit({
      requestId: `r${prompt[0]}`,
      promptTokens: prompt,
      adapter: null,
      sampling: fakeSampling(s),
    }),
  );

/** What each choice's deltas must carry: the log-softmax of the logits at each of its positions. */
function expectScored(
  deltas: GenerationDelta[],
  prompt: number[],
  index: number,
  topK: number | null,
  promptTopK: number | null,
) {
  const mine = deltas.filter((d) => d.index === index);
  const tokens = mine.flatMap((d) => d.tokenIds);
  const context = [...prompt, ...tokens];
  const at = (position: number, token: number, k: number) =>
    rowLogprobs(uneven(0, context.slice(0, position + 1)) as Float32Array, token, k);
  mine.forEach((d, i) => {
    if (topK === null) {
      expect(d.logprobs).toBeUndefined();
      return;
    }
    expect(d.logprobs).toHaveLength(d.tokenIds.length);
    d.logprobs?.forEach((got, j) => {
      const position = prompt.length - 1 + mine.slice(0, i).reduce((n, e) => n + e.tokenIds.length, 0) + j;
      const want = at(position, d.tokenIds[j], topK);
      expect(got.logprob).toBeCloseTo(want.logprob, 5);
      expect(Array.from(got.topIds)).toEqual(Array.from(want.topIds));
    });
  });
  const withPrompt = mine.filter((d) => d.promptLogprobs);
  if (promptTopK === null) {
    expect(withPrompt).toHaveLength(0);
    return;
  }
  // Once, on the first delta, one entry per prompt token after the first, never twice.
  expect(withPrompt).toHaveLength(1);
  expect(mine[0].promptLogprobs).toBeDefined();
  const scored = withPrompt[0].promptLogprobs ?? [];
  expect(scored.map((s) => s.tokenId)).toEqual(prompt.slice(1));
  scored.forEach((s, p) => {
    const want = at(p, prompt[p + 1], promptTopK);
    expect(s.logprob).toBeCloseTo(want.logprob, 5);
    expect(s.rank).toBe(want.rank);
    expect(Array.from(s.topIds)).toEqual(Array.from(want.topIds));
  });
}

describe('log-probabilities through the scheduler', () => {
  it('scores a prompt prefilled in chunks once, and each sampled token, per choice; a request beside it asks none', async () => {
    const { scheduler, engine } = setup();
    const prompt = Array.from({ length: 20 }, (_, i) => (i * 7) % 30);
    const other = [3, 1, 4, 1, 5];
    const [scored, plain] = await Promise.all([
      submit(scheduler, prompt, {
        maxTokens: 5,
        logprobs: 3,
        promptLogprobs: 3,
        n: 2,
        temperature: 0.8,
        seed: 4,
      }),
      submit(scheduler, other, { maxTokens: 5, logprobs: null }),
    ]);
    // The prompt ran in chunks (the budget is 8 tokens a step).
    expect(engine.steps.filter((step) => step.some((s) => s.tokens.length > 1)).length).toBeGreaterThan(2);
    for (const index of [0, 1]) expectScored(scored, prompt, index, 3, 3);
    expect(plain.every((d) => d.logprobs === undefined && d.promptLogprobs === undefined)).toBe(true);
  });

  it('scores the prompt with its own top-k, with no sampled log-probabilities asked (vLLM prompt_logprobs alone)', async () => {
    const { scheduler } = setup();
    const prompt = Array.from({ length: 13 }, (_, i) => (i * 5) % 29);
    const deltas = await submit(scheduler, prompt, { maxTokens: 3, logprobs: null, promptLogprobs: 6 });
    expectScored(deltas, prompt, 0, null, 6);
    const zero = await submit(setup().scheduler, prompt, { maxTokens: 2, logprobs: 1, promptLogprobs: 0 });
    expectScored(zero, prompt, 0, 1, 0);
  });

  it('keeps the first scores through preemption by recompute: nothing scored twice, the same as alone', async () => {
    const sampling = { maxTokens: 8, ignoreEos: true, logprobs: 2, promptLogprobs: 2 };
    const a = [1, 2, 3, 4];
    const b = [5, 6, 7, 8];
    const soloA = await submit(setup().scheduler, a, sampling);
    // Each needs 12 pages at its longest; 16 pages hold one of them, not both.
    const { scheduler } = setup(16);
    const [sharedA, sharedB] = await Promise.all([
      submit(scheduler, a, sampling),
      submit(scheduler, b, sampling),
    ]);
    expect(scheduler.stats().numPreemptions).toBeGreaterThan(0);
    expectScored(sharedA, a, 0, 2, 2);
    expectScored(sharedB, b, 0, 2, 2);
    const logprobsOf = (deltas: GenerationDelta[]) =>
      deltas.flatMap((d) => d.logprobs ?? []).map((s) => s.logprob);
    expect(logprobsOf(sharedA)).toEqual(logprobsOf(soloA));
  });
});
