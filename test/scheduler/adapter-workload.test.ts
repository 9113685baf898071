import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { ManualClock } from '../../scheduler/clock.js';
import { mulberry32 } from '../../scheduler/prng.js';
import { AdmissionError, type GenerationDelta, type GenerationRequest } from '../../scheduler/request.js';
import {
  fcfsPolicy,
  priorityPolicy,
  type SchedulingPolicy,
  sloraPolicy,
} from '../../scheduler/scheduling-policy.js';
import { newRegistry } from '../memory/registry-kit.js';
import { contextSum, contextSumTokens, FakeEngine, fakeConfig, fakeKv } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

const maxModelLen = 24;
const NUM_ADAPTERS = 300;

function expectedTokens(prompt: number[], maxTokens: number): number[] {
  return contextSumTokens(prompt, maxTokens, maxModelLen);
}

interface Planned {
  req: GenerationRequest;
  arrivalStep: number;
  abortAtStep: number | null;
  controller: AbortController;
}

/**
 * Thousands of requests over hundreds of adapters (S-LoRA's power-law popularity), far more than
 * fit the pool at once, with random lengths and cancellations, through the real scheduler and the
 * real adapter registry over a fake engine that checks every step's adapter pages.
 */
async function runWorkload(seed: number, numRequests: number, policy: SchedulingPolicy) {
  const random = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const { pool, kvCache } = fakeKv(160);
  const { registry, storage } = newRegistry(pool, fakeConfig, { maxLoras: 6, maxCpuLoras: 12 });
  for (let i = 0; i < NUM_ADAPTERS; i++) await registry.register(`a${i}`, `/adapters/a${i}`);

  const engine = new FakeEngine(pool, contextSum);
  const clock = new ManualClock();
  const inner = engine.step.bind(engine);
  const problems: string[] = [];
  engine.step = async (plan: StepPlan) => {
    const kvPages = new Set(plan.sequences.flatMap((s) => Array.from(s.pageTable)));
    for (const s of plan.sequences) {
      if (!s.adapter) continue;
      if (registry.layoutOf(s.adapter.name) !== s.adapter) problems.push(`${s.adapter.name}: stale layout`);
      try {
        storage.check(s.adapter);
      } catch (error) {
        problems.push(String(error));
      }
      if (s.adapter.allPages.some((p) => kvPages.has(p)))
        problems.push(`${s.adapter.name}: page shared with KV`);
    }
    // Simulated time: each step takes 10 ms, so time-based policy decisions repeat with the seed.
    clock.advance(10);
    return inner(plan);
  };
  const scheduler = fakeScheduler(engine, kvCache, {
    adapters: registry,
    policy,
    clock,
    limits: { maxNumSeqs: 8, maxNumBatchedTokens: 32, maxModelLen, maxWaiting: 48 },
  });

  const planned: Planned[] = Array.from({ length: numRequests }, (_, i) => {
    const controller = new AbortController();
    const adapter = random() < 0.1 ? null : `a${Math.floor(NUM_ADAPTERS * random() ** 3)}`;
    return {
      req: {
        requestId: `r${i}`,
        promptTokens: Array.from({ length: int(1, 12) }, () => int(0, 25)),
        adapter,
        sampling: fakeSampling({ maxTokens: int(1, 8), n: random() < 0.1 ? 2 : 1 }),
        // Only the priority policy reads it.
        priority: int(-1, 2),
        signal: controller.signal,
      },
      arrivalStep: i,
      abortAtStep: random() < 0.1 ? i + int(0, 6) : null,
      controller,
    };
  });
  const results = new Map<Planned, Promise<GenerationDelta[] | 'refused'>>();
  const submit = (p: Planned) => {
    try {
      const stream = scheduler.submit(p.req);
      results.set(
        p,
        (async () => {
          const deltas: GenerationDelta[] = [];
          for await (const d of stream) deltas.push(d);
          return deltas;
        })(),
      );
    } catch (error) {
      if (!(error instanceof AdmissionError)) throw error;
      results.set(p, Promise.resolve('refused'));
    }
  };
  let next = 0;
  engine.onStep = (stepIndex) => {
    while (next < planned.length && planned[next].arrivalStep <= stepIndex) submit(planned[next++]);
    for (const p of planned) if (p.abortAtStep === stepIndex) p.controller.abort();
  };
  while (next < planned.length) {
    submit(planned[next++]);
    await Promise.all(results.values());
  }
  await Promise.all(results.values());

  let finished = 0;
  let refused = 0;
  let aborted = 0;
  for (const [p, result] of results) {
    const deltas = await result;
    if (deltas === 'refused') {
      refused++;
      continue;
    }
    for (let index = 0; index < p.req.sampling.n; index++) {
      const mine = deltas.filter((d) => d.index === index);
      const reason = mine.at(-1)?.finishReason;
      expect(reason).not.toBeNull();
      if (reason === 'abort') {
        aborted++;
        continue;
      }
      finished++;
      const tokens = mine.flatMap((d) => d.tokenIds);
      expect(tokens).toEqual(expectedTokens(p.req.promptTokens, p.req.sampling.maxTokens));
    }
  }
  const residentPages = registry
    .list()
    .filter((a) => a.tier === 'pool')
    .reduce((sum, a) => sum + registry.layoutOf(a.name)!.allPages.length, 0);
  return {
    problems,
    finished,
    refused,
    aborted,
    numRequests: results.size,
    kvPages: pool.numUsed('kv'),
    adapterPagesLeaked: pool.numUsed('adapter') - residentPages,
    pinsOrRequestsLeft: registry.list().filter((a) => a.numPins !== 0 || a.numRequests !== 0).length,
    counters: { ...registry.counters },
    schedule: JSON.stringify(engine.steps),
    maxAdaptersPerStep: Math.max(
      ...engine.steps.map((step) => new Set(step.flatMap((s) => (s.adapter ? [s.adapter] : []))).size),
    ),
  };
}

describe('thousands of requests over hundreds of adapters', () => {
  for (const policy of [fcfsPolicy, sloraPolicy({ maxLorasPerBatch: 3, maxWaitMs: 200 }), priorityPolicy]) {
    it(`${policy.name}: finishes or cleanly refuses every request, leaks nothing, and repeats its schedule for a seed`, async () => {
      const first = await runWorkload(7, 2000, policy);
      expect(first.problems).toEqual([]);
      expect(first.numRequests).toBe(2000);
      expect(first.finished).toBeGreaterThan(500);
      expect(first.refused).toBeGreaterThan(0);
      expect(first.kvPages).toBe(0);
      expect(first.adapterPagesLeaked).toBe(0);
      expect(first.pinsOrRequestsLeft).toBe(0);
      // More adapters than fit: they came and went.
      expect(first.counters.numEvictions).toBeGreaterThan(50);
      expect(first.counters.numDiskLoads).toBeGreaterThan(100);
      expect(first.counters.numPrefetchHits).toBeGreaterThan(0);
      if (policy.name === 'slora') expect(first.maxAdaptersPerStep).toBeLessThanOrEqual(3);

      const again = await runWorkload(7, 2000, policy);
      expect(again.schedule).toBe(first.schedule);
      const other = await runWorkload(8, 2000, policy);
      expect(other.schedule).not.toBe(first.schedule);
    }, 120_000);
  }
});
