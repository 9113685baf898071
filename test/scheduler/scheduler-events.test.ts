import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../scheduler/clock.js';
import type { GenerationDelta, GenerationStream } from '../../scheduler/request.js';
import type { SchedulerEvent } from '../../scheduler/scheduler-events.js';
import { sloraPolicy } from '../../scheduler/scheduling-policy.js';
import { FakeEngine, fakeKv, type NextToken } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

const counting: NextToken = (_seq, context) => (context[context.length - 1] + 1) % 26;

async function collect(stream: GenerationStream): Promise<GenerationDelta[]> {
  const deltas: GenerationDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return deltas;
}

describe('scheduler events', () => {
  it('tell each request its queue, first token, tokens, preemption and end, stamped by the injected clock', async () => {
    // 8 KV pages: two growing sequences cannot both stay, so one is preempted on the way.
    const { pool, kvCache } = fakeKv(9);
    const engine = new FakeEngine(pool, counting);
    const clock = new ManualClock(1000);
    const inner = engine.step.bind(engine);
    engine.step = (plan) => {
      clock.advance(5);
      return inner(plan);
    };
    const events: SchedulerEvent[] = [];
    const scheduler = fakeScheduler(engine, kvCache, {
      clock,
      policy: sloraPolicy({ maxLorasPerBatch: 2, maxWaitMs: 1000 }),
      events: (e) => events.push(e),
    });
    const controller = new AbortController();
    const a = scheduler.submit({
      requestId: 'a',
      promptTokens: [0, 1],
      adapter: null,
      sampling: fakeSampling({ maxTokens: 6, ignoreEos: true }),
    });
    const b = scheduler.submit({
      requestId: 'b',
      promptTokens: [2, 3],
      adapter: null,
      sampling: fakeSampling({ maxTokens: 6, ignoreEos: true }),
    });
    const c = scheduler.submit({
      requestId: 'c',
      promptTokens: [4],
      adapter: null,
      sampling: fakeSampling({ maxTokens: 2 }),
      signal: controller.signal,
    });
    controller.abort();
    await Promise.all([collect(a), collect(b), collect(c)]);

    const of = (id: string) => events.filter((e) => e.requestId === id).map((e) => e.type);
    const a0 = of('a');
    expect(a0.slice(0, 4)).toEqual(['queued', 'admitted', 'firstToken', 'token']);
    expect(a0.filter((t) => t === 'token')).toHaveLength(6);
    expect(a0.at(-1)).toBe('finished');
    expect(events.find((e) => e.requestId === 'a' && e.type === 'finished')).toMatchObject({
      reason: 'length',
    });
    expect(of('c')).toEqual(['queued', 'aborted']);
    expect(events.find((e) => e.requestId === 'c' && e.type === 'aborted')).toMatchObject({
      reason: 'client',
    });
    expect(events.some((e) => e.type === 'preempted')).toBe(true);
    // Times come from the injected clock: submits at 1000, every step 5 ms later, never backwards.
    expect(events[0].time).toBe(1000);
    for (let i = 1; i < events.length; i++) expect(events[i].time).toBeGreaterThanOrEqual(events[i - 1].time);
    const firstToken = events.find((e) => e.requestId === 'a' && e.type === 'firstToken')!;
    expect(firstToken.time).toBe(1005);
    expect(pool.numUsed('kv')).toBe(0);
  });
});
