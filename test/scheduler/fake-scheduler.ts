import type { KvCache } from '../../memory/kv-cache.js';
import { EngineLoop, type EngineLoopOptions } from '../../scheduler/engine-loop.js';
import { type GenerationRequest, greedySampling, type SamplingParams } from '../../scheduler/request.js';
import type { SchedulerLimits } from '../../scheduler/scheduler.js';
import { fcfsPolicy } from '../../scheduler/scheduling-policy.js';
import { type FakeEngine, tableDecoder } from './fake-engine.js';
import { ResidentAdapters } from './resident-adapters.js';

/** The fake vocabulary's end-of-sequence token. */
export const FAKE_EOS = 31;

/** Greedy, 4 tokens, one choice, no stops: what each test overrides the parts it is about from. */
export function fakeSampling(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return greedySampling(4, overrides);
}

/** A base-model request of fakeSampling (overridden by `sampling`), with `extra` fields. */
export function fakeRequest(
  requestId: string,
  promptTokens: number[],
  sampling: Partial<SamplingParams> = {},
  extra: Partial<GenerationRequest> = {},
): GenerationRequest {
  return { requestId, promptTokens, adapter: null, sampling: fakeSampling(sampling), ...extra };
}

type FakeSchedulerOptions = Partial<Omit<EngineLoopOptions, 'engine' | 'kvCache' | 'limits'>> & {
  limits?: Partial<SchedulerLimits>;
};

/** A scheduler over fakes: fcfs, no resident adapters, letters for tokens, small limits; options override. */
export function fakeScheduler(
  engine: FakeEngine,
  kvCache: KvCache,
  options: FakeSchedulerOptions = {},
): EngineLoop {
  return new EngineLoop({
    adapters: new ResidentAdapters(),
    policy: fcfsPolicy,
    newDecoder: tableDecoder(),
    eosTokenIds: [FAKE_EOS],
    ...options,
    engine,
    kvCache,
    limits: { maxNumSeqs: 8, maxNumBatchedTokens: 32, maxModelLen: 64, maxWaiting: 16, ...options.limits },
  });
}
