import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import type { GenerationDelta, GenerationRequest } from '../../scheduler/request.js';
import { fcfsPolicy, sloraPolicy } from '../../scheduler/scheduling-policy.js';
import { contextSum, contextSumTokens, FakeEngine, fakeKv } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

const maxModelLen = 24;

function expectedTokens(prompt: number[], maxTokens: number): number[] {
  return contextSumTokens(prompt, maxTokens, maxModelLen);
}

interface Planned {
  req: GenerationRequest;
  arrivalStep: number;
  abortAtStep: number | null;
  /** The consumer walks away after this many deltas. */
  leaveAfter: number | null;
  controller: AbortController;
}

describe('random traces', () => {
  for (const [seed, policy, prefixCaching] of [1, 2, 3, 4, 5].flatMap((seed) =>
    [fcfsPolicy, sloraPolicy({ maxLorasPerBatch: 8, maxWaitMs: 1000 })].flatMap((policy) =>
      [false, true].map((prefixCaching) => [seed, policy, prefixCaching] as const),
    ),
  )) {
    it(`${policy.name}${prefixCaching ? ' with prefix caching' : ''}, seed ${seed}: arrivals, aborts, cancels and preemptions; every choice matches a solo run, every page comes back`, async () => {
      const random = mulberry32(seed);
      const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
      const { pool, kvCache } = fakeKv(41, { prefixCaching });
      // With prefix caching, prompts begin with one of a few shared prefixes, so blocks are found
      // cached, shared by running sequences, released and reclaimed throughout.
      const prefixes = [0, 1, 2].map(() => Array.from({ length: int(2, 7) }, () => int(0, 25)));
      const promptOf = (length: number) => {
        const tail = Array.from({ length }, () => int(0, 25));
        return prefixCaching ? [...prefixes[int(0, 2)], ...tail].slice(0, 12) : tail;
      };
      const engine = new FakeEngine(pool, contextSum);
      const scheduler = fakeScheduler(engine, kvCache, {
        policy,
        limits: { maxNumSeqs: 4, maxNumBatchedTokens: 8, maxModelLen, maxWaiting: 64 },
      });
      const planned: Planned[] = Array.from({ length: 24 }, (_, i) => {
        const controller = new AbortController();
        return {
          req: {
            requestId: `r${i}`,
            promptTokens: promptOf(int(1, 12)),
            adapter: null,
            sampling: fakeSampling({ maxTokens: int(1, 10), n: int(1, 2) }),
            signal: controller.signal,
          },
          arrivalStep: i === 0 ? -1 : int(0, 30),
          abortAtStep: random() < 0.2 ? int(0, 40) : null,
          leaveAfter: random() < 0.15 ? int(1, 4) : null,
          controller,
        };
      });
      const results = new Map<Planned, Promise<GenerationDelta[]>>();
      const submit = (p: Planned) => {
        const stream = scheduler.submit(p.req);
        results.set(
          p,
          (async () => {
            const deltas: GenerationDelta[] = [];
            for await (const d of stream) {
              deltas.push(d);
              if (deltas.length === p.leaveAfter) break;
            }
            return deltas;
          })(),
        );
      };
      engine.onStep = (step) => {
        for (const p of planned) {
          if (!results.has(p) && p.arrivalStep <= step) submit(p);
          if (p.abortAtStep === step) p.controller.abort();
        }
      };
      engine.onStep(-1);
      await Promise.all(results.values());
      while (results.size < planned.length) {
        await Promise.all(results.values());
        for (const p of planned) if (!results.has(p)) submit(p);
      }
      for (const [p, done] of results) {
        const deltas = await done;
        const expected = expectedTokens(p.req.promptTokens, p.req.sampling.maxTokens);
        for (let index = 0; index < p.req.sampling.n; index++) {
          const mine = deltas.filter((d) => d.index === index);
          const tokens = mine.flatMap((d) => d.tokenIds);
          const reason = mine[mine.length - 1]?.finishReason;
          const isCut = reason === 'abort' || (p.leaveAfter !== null && deltas.length === p.leaveAfter);
          if (isCut || !reason) expect(expected.slice(0, tokens.length)).toEqual(tokens);
          else {
            expect(reason).toBe('length');
            expect(tokens).toEqual(expected);
          }
        }
      }
      expect(pool.numUsed('kv')).toBe(kvCache.numIdleCachedPages);
      kvCache.prefixCache?.clearIdle();
      expect(pool.numUsed('kv')).toBe(0);
      expect(kvCache.numSequences).toBe(0);
      expect(scheduler.stats().numPreemptions).toBeGreaterThan(0);
      if (prefixCaching) expect(scheduler.stats().numPrefixHitTokens).toBeGreaterThan(0);
      expect(scheduler.stats()).toMatchObject({ numRequests: 0, numWaiting: 0, numRunning: 0 });
    });
  }
});
