import { expect, it } from 'vitest';
import type { GenerationRequest, GenerationStream } from '../../scheduler/request.js';
import { FakeEngine, fakeAdapter, fakeKv } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';
import { ResidentAdapters } from './resident-adapters.js';

async function drain(stream: GenerationStream): Promise<void> {
  for await (const _ of stream);
}

it('counts requests, not choices, as running or waiting, and calls onScheduled once per request', async () => {
  const { kvCache } = fakeKv(257);
  const engine = new FakeEngine(kvCache.pool, (_seq, context) => (context[context.length - 1] + 1) % 26);
  const scheduler = fakeScheduler(engine, kvCache, {
    limits: { maxNumSeqs: 2 },
    adapters: new ResidentAdapters(new Map([['ad1', fakeAdapter('ad1')]])),
  });
  const scheduled: string[] = [];
  const request = (requestId: string, n: number): GenerationRequest => ({
    requestId,
    promptTokens: [0, 1, 2],
    adapter: requestId === 'one-choice' ? 'ad1' : null,
    sampling: fakeSampling({ n, maxTokens: 3, ignoreEos: true }),
    onScheduled: () => scheduled.push(requestId),
  });

  const two = scheduler.submit(request('two-choices', 2));
  const one = scheduler.submit(request('one-choice', 1));
  expect(scheduler.stats()).toMatchObject({ numWaitingRequests: 2, numRunningRequests: 0, numWaiting: 3 });

  const first = await two[Symbol.asyncIterator]().next();
  expect(first.done).toBe(false);
  // Both choices of the first request fill the batch of two; the second request waits.
  expect(scheduler.stats()).toMatchObject({
    numRunning: 2,
    numRunningRequests: 1,
    numWaiting: 1,
    numWaitingRequests: 1,
  });
  expect(scheduled).toEqual(['two-choices']);
  expect(scheduler.stats().requestsByAdapter).toMatchObject({ ad1: { running: 0, waiting: 1 } });

  await Promise.all([drain(two), drain(one)]);
  expect(scheduled).toEqual(['two-choices', 'one-choice']);
  expect(scheduler.stats()).toMatchObject({
    numRunningRequests: 0,
    numWaitingRequests: 0,
    requestsByAdapter: {},
  });
  expect(scheduler.stats().kvBlockSize).toBe(kvCache.layout.tokensPerPage);
  expect(scheduler.stats().kvPagesPerBlock).toBe(kvCache.layout.pagesPerBlock);
});
