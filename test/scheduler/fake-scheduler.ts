import type { KvCache } from '../../memory/kv-cache.js';
import { greedySampling, type SamplingParams } from '../../scheduler/request.js';
import { Scheduler, type SchedulerLimits, type SchedulerOptions } from '../../scheduler/scheduler.js';
import { type FakeEngine, tableDecoder } from './fake-engine.js';
import { ResidentAdapters } from './resident-adapters.js';

/** The fake vocabulary's end-of-sequence token. */
export const FAKE_EOS = 31;

/** Greedy, 4 tokens, one choice, no stops: what each test overrides the parts it is about from. */
export function fakeSampling(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return greedySampling(4, overrides);
}

type FakeSchedulerOptions = Partial<Omit<SchedulerOptions, 'engine' | 'kvCache' | 'limits'>> & {
  limits?: Partial<SchedulerLimits>;
};

/** A scheduler over fakes: no resident adapters, letters for tokens, small limits; options override. */
export function fakeScheduler(
  engine: FakeEngine,
  kvCache: KvCache,
  options: FakeSchedulerOptions = {},
): Scheduler {
  return new Scheduler({
    adapters: new ResidentAdapters(),
    newDecoder: tableDecoder(),
    eosTokenIds: [FAKE_EOS],
    ...options,
    engine,
    kvCache,
    limits: { maxNumSeqs: 8, maxNumBatchedTokens: 32, maxModelLen: 64, maxWaiting: 16, ...options.limits },
  });
}
