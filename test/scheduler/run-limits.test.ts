import { describe, expect, it } from 'vitest';
import { fcfsPolicy, sloraPolicy } from '../../scheduler/scheduling-policy.js';
import { contextSum, contextSumTokens, FakeEngine, fakeKv } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

describe("the engine's run limit (Engine.runLimits) in the batch policy", () => {
  for (const [name, policy] of [
    ['fcfs', fcfsPolicy],
    ['slora', sloraPolicy({ maxLorasPerBatch: 4, maxWaitMs: 5000 })],
  ] as const) {
    it(`${name}: chunks a prompt at maxChunkTokens even when the token budget would take it whole`, async () => {
      const { pool, kvCache } = fakeKv(200);
      const engine = new FakeEngine(pool, contextSum);
      const scheduler = fakeScheduler(engine, kvCache, {
        policy,
        limits: { maxNumBatchedTokens: 64, maxModelLen: 64, maxChunkTokens: 5 },
      });
      const prompt = Array.from({ length: 13 }, (_, i) => (i * 7) % 26);
      let tokens: number[] = [];
      for await (const delta of scheduler.submit({
        requestId: 'long',
        promptTokens: prompt,
        adapter: null,
        sampling: fakeSampling({ maxTokens: 3 }),
      }))
        tokens = tokens.concat(delta.tokenIds);
      const chunks = engine.steps.map((step) => step[0].tokens.length);
      expect(chunks.slice(0, 3)).toEqual([5, 5, 3]);
      expect(Math.max(...chunks)).toBeLessThanOrEqual(5);
      expect(tokens).toEqual(contextSumTokens(prompt, 3, 64));
    });
  }
});
