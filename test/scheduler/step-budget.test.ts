import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../scheduler/clock.js';
import type { GenerationDelta } from '../../scheduler/request.js';
import { START_TOKENS, StepBudget } from '../../scheduler/step-budget.js';
import { contextSum, contextSumTokens, FakeEngine, fakeKv } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

describe('StepBudget', () => {
  const limits = { maxNumSeqs: 16, maxNumBatchedTokens: 2048 };

  it('is the flag without a bound, and starts small with one', () => {
    expect(new StepBudget(null, limits).tokens).toBe(2048);
    expect(new StepBudget(4000, limits).tokens).toBe(START_TOKENS);
  });

  it('fits the bound from measured steps, between a decode step of every sequence and the flag', () => {
    const budget = new StepBudget(4000, limits);
    budget.observe(256, 2560); // 10 ms a token
    expect(budget.tokens).toBe(400);
    budget.observe(8, 5000); // a decode step: not a measure of the time per token
    expect(budget.tokens).toBe(400);
    // A faster machine: the budget grows back, capped by the flag.
    for (let i = 0; i < 30; i++) budget.observe(400, 40);
    expect(budget.tokens).toBe(2048);
    // A very slow one: never below maxNumSeqs, so every running sequence still decodes each step.
    for (let i = 0; i < 30; i++) budget.observe(400, 400_000);
    expect(budget.tokens).toBe(16);
  });

  it('refuses a bound that is not positive', () => {
    expect(() => new StepBudget(0, limits)).toThrow(/maxStepMs/);
  });
});

describe('the scheduler under --max-step-time', () => {
  it('cuts prefills into steps that fit the bound, and every choice still matches a solo run', async () => {
    const { pool, kvCache } = fakeKv(4097);
    const engine = new FakeEngine(pool, contextSum);
    const clock = new ManualClock();
    // The fake engine takes 20 ms a token: a 400 ms bound fits 20 tokens a step.
    engine.onStep = (step) => {
      clock.advance(20 * engine.steps[step].reduce((sum, s) => sum + s.tokens.length, 0));
    };
    const scheduler = fakeScheduler(engine, kvCache, {
      clock,
      maxStepMs: 400,
      limits: { maxNumSeqs: 4, maxNumBatchedTokens: 512, maxModelLen: 512, maxWaiting: 64 },
    });
    const prompts = [0, 1, 2, 3].map((k) => Array.from({ length: 100 }, (_, i) => (i * 7 + k) % 26));
    const results = await Promise.all(
      prompts.map(async (prompt, i) => {
        const deltas: GenerationDelta[] = [];
        for await (const d of scheduler.submit({
          requestId: `r${i}`,
          promptTokens: prompt,
          adapter: null,
          sampling: fakeSampling({ maxTokens: 3 }),
        }))
          deltas.push(d);
        return deltas.flatMap((d) => d.tokenIds);
      }),
    );
    results.forEach((tokens, i) => {
      expect(tokens).toEqual(contextSumTokens(prompts[i], 3, 512));
    });
    const sizes = engine.steps.map((step) => step.reduce((sum, s) => sum + s.tokens.length, 0));
    // The first step has no measure yet: START_TOKENS at most; then the bound's 20 tokens.
    expect(sizes[0]).toBeLessThanOrEqual(START_TOKENS);
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(20);
    expect(Math.max(...sizes.slice(1))).toBeGreaterThanOrEqual(16);
  });
});
