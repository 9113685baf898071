import { describe, expect, it } from 'vitest';
import type { GenerationDelta, GenerationStream } from '../../scheduler/request.js';
import { fcfsPolicy, priorityPolicy, type SchedulingPolicy } from '../../scheduler/scheduling-policy.js';
import { FakeEngine, fakeKv } from './fake-engine.js';
import { FAKE_EOS, fakeSampling, fakeScheduler } from './fake-scheduler.js';

const nextToken = (_seq: number, context: readonly number[]) => (context.length * 7) % FAKE_EOS;

async function drain(stream: GenerationStream): Promise<GenerationDelta[]> {
  const deltas: GenerationDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return deltas;
}

function setup(policy: SchedulingPolicy, kvPages: number, maxNumSeqs: number) {
  const { pool, kvCache } = fakeKv(kvPages + 1);
  const engine = new FakeEngine(pool, nextToken);
  const scheduler = fakeScheduler(engine, kvCache, {
    policy,
    limits: { maxNumSeqs, maxNumBatchedTokens: 32 },
  });
  const submit = (name: string, priority: number, prompt: number[], maxTokens: number) =>
    drain(
      scheduler.submit({
        requestId: name,
        promptTokens: prompt,
        adapter: null,
        sampling: fakeSampling({ maxTokens, ignoreEos: true }),
        priority,
      }),
    );
  /** Sequence ids in the order of their first step, and how many times each was prefilled. */
  const history = () => {
    const firstRun: number[] = [];
    const prefills = new Map<number, number>();
    for (const step of engine.steps)
      for (const s of step) {
        if (!firstRun.includes(s.seqId)) firstRun.push(s.seqId);
        if (s.startPos === 0) prefills.set(s.seqId, (prefills.get(s.seqId) ?? 0) + 1);
      }
    return { firstRun, prefills };
  };
  return { scheduler, engine, submit, history };
}

describe('the priority policy (vLLM --scheduling-policy priority)', () => {
  it('runs waiting requests by priority, lower first, then by arrival', async () => {
    const { submit, history } = setup(priorityPolicy, 64, 1);
    // Sequence ids follow submission: 1 (priority 2), 2 (0), 3 (2), 4 (-1), 5 (0).
    const done = [
      submit('a', 2, [1, 2, 3], 3),
      submit('b', 0, [4, 5], 3),
      submit('c', 2, [6], 3),
      submit('d', -1, [7, 8], 3),
      submit('e', 0, [9], 3),
    ];
    const results = await Promise.all(done);
    expect(results.every((deltas) => deltas.flatMap((d) => d.tokenIds).length === 3)).toBe(true);
    expect(history().firstRun).toEqual([4, 2, 5, 1, 3]);
  });

  it('preempts the lowest-priority running request when the pool is short, where fcfs preempts the newest', async () => {
    // Each sequence needs 12 pages at its longest; 16 pages hold one of them, not both.
    const run = async (policy: SchedulingPolicy) => {
      const { submit, history, scheduler } = setup(policy, 16, 4);
      const [low, high] = await Promise.all([
        submit('low', 5, [1, 2, 3, 4], 8),
        submit('high', 0, [5, 6, 7, 8], 8),
      ]);
      expect(low.flatMap((d) => d.tokenIds)).toHaveLength(8);
      expect(high.flatMap((d) => d.tokenIds)).toHaveLength(8);
      expect(scheduler.stats().numPreemptions).toBeGreaterThan(0);
      return history().prefills;
    };
    const byPriority = await run(priorityPolicy);
    // Sequence 1 is 'low' (submitted first), 2 is 'high'.
    expect(byPriority.get(2)).toBe(1);
    expect(byPriority.get(1)).toBeGreaterThan(1);
    const byArrival = await run(fcfsPolicy);
    expect(byArrival.get(1)).toBe(1);
    expect(byArrival.get(2)).toBeGreaterThan(1);
  });

  it('puts a preempted request back in its place by priority: behind better ones, ahead of later arrivals of its own', async () => {
    const { submit, history, engine } = setup(priorityPolicy, 16, 2);
    // 'low' (1, priority 0) and 'mid' (2, priority 3) run; then 'urgent' (3, priority 1) and
    // 'late' (4, priority 3) arrive and wait; the pool runs short and mid, the lowest priority,
    // is preempted: it goes back behind urgent and ahead of late.
    const later: Promise<GenerationDelta[]>[] = [];
    engine.onStep = (step) => {
      if (step === 1) later.push(submit('urgent', 1, [9], 2), submit('late', 3, [10], 2));
    };
    await Promise.all([submit('low', 0, [1, 2, 3, 4], 8), submit('mid', 3, [5, 6, 7, 8], 8)]);
    await Promise.all(later);
    expect(history().prefills.get(2)).toBeGreaterThan(1);
    // Admission order: a step lists what it admits in queue order, so (step, place) orders them.
    const prefillPlaces = (seqId: number) =>
      engine.steps.flatMap((step, i) => {
        const place = step.findIndex((s) => s.seqId === seqId && s.startPos === 0);
        return place < 0 ? [] : [i * 1000 + place];
      });
    const [, midAgain] = prefillPlaces(2);
    expect(prefillPlaces(3)[0]).toBeLessThan(midAgain);
    expect(midAgain).toBeLessThan(prefillPlaces(4)[0]);
  });
});
