import { describe, expect, it } from 'vitest';
import { StreamStalledError } from '../../scheduler/generation-error.js';
import type { GenerationDelta, GenerationRequest, GenerationStream } from '../../scheduler/request.js';
import { MAX_UNREAD_DELTAS_PER_CHOICE } from '../../scheduler/scheduler.js';
import type { SchedulerEvent } from '../../scheduler/scheduler-events.js';
import { FakeEngine, fakeKv, type NextToken } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

/** Never EOS (31): the letters a…z over and over. */
const counting: NextToken = (_seq, context) => (context[context.length - 1] + 1) % 26;

function setup(streamStallTimeoutMs: number) {
  const { pool, kvCache } = fakeKv(4096);
  const engine = new FakeEngine(pool, counting);
  const events: SchedulerEvent[] = [];
  const loop = fakeScheduler(engine, kvCache, {
    limits: { maxModelLen: 1024, maxNumBatchedTokens: 64, maxNumSeqs: 16 },
    backpressure: { maxUnreadPerChoice: MAX_UNREAD_DELTAS_PER_CHOICE, stallTimeoutMs: streamStallTimeoutMs },
    events: (event) => events.push(event),
  });
  return { pool, engine, loop, events };
}

function request(requestId: string, maxTokens: number, n = 1): GenerationRequest {
  return { requestId, promptTokens: [0, 1, 2], adapter: null, sampling: fakeSampling({ maxTokens, n }) };
}

async function readAll(stream: GenerationStream): Promise<GenerationDelta[]> {
  const deltas: GenerationDelta[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

async function steps(engine: FakeEngine, count: number): Promise<void> {
  const target = engine.steps.length + count;
  while (engine.steps.length < target) await new Promise((resolve) => setImmediate(resolve));
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('backpressure: a consumer that stops reading', () => {
  it('pauses its request at the unread bound while other requests keep running, and resumes when read', async () => {
    const { pool, engine, loop } = setup(60_000);
    const n = 3;
    const stalled = loop.submit(request('stalled', 600, n));
    const reader = readAll(loop.submit(request('reader', 400)));
    const bound = MAX_UNREAD_DELTAS_PER_CHOICE * n;

    await steps(engine, bound / n + 20);
    const held = stalled.completionTokens;
    expect(held).toBe(bound);
    expect(pool.numUsed('kv')).toBeGreaterThan(0);
    // The other request runs to its end while the unread one stays put.
    const readerDeltas = await reader;
    expect(readerDeltas.flatMap((d) => d.tokenIds)).toHaveLength(400);
    expect(stalled.completionTokens).toBe(held);

    // Reading again resumes it: every choice gets all of its tokens, nothing lost or repeated.
    const deltas = await readAll(stalled);
    for (let index = 0; index < n; index++) {
      const mine = deltas.filter((d) => d.index === index);
      const tokens = mine.flatMap((d) => d.tokenIds);
      expect(tokens).toHaveLength(600);
      expect(tokens.slice(0, 3)).toEqual([3, 4, 5]);
      expect(mine.at(-1)?.finishReason).toBe('length');
    }
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('aborts a request paused past the stall timeout: its pages return and its stream ends with StreamStalledError', async () => {
    const { pool, loop, events } = setup(150);
    const stalled = loop.submit(request('stalled', 900, 2));
    await until(() => stalled.completionTokens === MAX_UNREAD_DELTAS_PER_CHOICE * 2);
    expect(pool.numUsed('kv')).toBeGreaterThan(0);
    // Nothing else runs: the loop must still wake at the stall deadline on its own.
    await sleep(400);
    expect(pool.numUsed('kv')).toBe(0);
    expect(loop.stats().numRequests).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'aborted', reason: 'stalled', requestId: 'stalled' });

    const deltas: GenerationDelta[] = [];
    const failure = await (async () => {
      try {
        for await (const delta of stalled) deltas.push(delta);
      } catch (error) {
        return error;
      }
      return null;
    })();
    expect(failure).toBeInstanceOf(StreamStalledError);
    expect((failure as Error).message).toMatch(/read none of its stream for 0\.15 s/);
    // What was produced before the pause is still delivered, in order, before the error.
    expect(deltas).toHaveLength(MAX_UNREAD_DELTAS_PER_CHOICE * 2);
  });

  it('does not spin while only paused requests remain', async () => {
    const { engine, loop } = setup(60_000);
    const stalled = loop.submit(request('stalled', 900));
    await until(() => stalled.completionTokens === MAX_UNREAD_DELTAS_PER_CHOICE);
    await sleep(5);
    let numPlans = 0;
    const schedule = loop.scheduler.schedule.bind(loop.scheduler);
    loop.scheduler.schedule = () => {
      numPlans++;
      return schedule();
    };
    const numSteps = engine.steps.length;
    await sleep(300);
    expect(engine.steps.length).toBe(numSteps);
    // It waits for a change (or 100 ms) instead of planning every millisecond.
    expect(numPlans).toBeLessThanOrEqual(5);
    // A new request wakes the waiting loop at once, and runs beside the paused one.
    const other = await readAll(loop.submit(request('other', 5)));
    expect(other.flatMap((d) => d.tokenIds)).toHaveLength(5);
    await stalled[Symbol.asyncIterator]().return?.();
    await loop.close();
  });
});
