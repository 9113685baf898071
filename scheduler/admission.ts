import { AdapterError } from '../memory/adapter-registry.js';
import type { KvCache } from '../memory/kv-cache.js';
import type { BatchLimits } from './batch-policy.js';
import { AdmissionError, type GenerationRequest } from './request.js';

export interface SchedulerLimits extends BatchLimits {
  /** Waiting sequences beyond which submit refuses new requests. */
  maxWaiting: number;
}

export interface AdmissionContext {
  limits: SchedulerLimits;
  kvCache: KvCache;
  /** Registered adapters (resident or not: a request waits while its adapter loads). */
  isKnownAdapter: (name: string) => boolean;
  numWaiting: number;
  isClosed: boolean;
}

/**
 * Admission control. A request the server should have rejected (it validates first) throws a
 * plain Error: that is a bug upstream. A valid request the scheduler cannot take throws
 * AdmissionError, which the server answers with 503/429 and Retry-After.
 */
export function checkAdmission(req: GenerationRequest, ctx: AdmissionContext): void {
  const { limits, kvCache } = ctx;
  const { sampling, promptTokens } = req;
  const id = req.requestId;
  if (promptTokens.length === 0) throw new Error(`request ${id}: the prompt is empty`);
  if (promptTokens.length >= limits.maxModelLen)
    throw new Error(
      `request ${id}: prompt of ${promptTokens.length} tokens leaves no room to generate within maxModelLen ${limits.maxModelLen}`,
    );
  if (!Number.isInteger(sampling.n) || sampling.n < 1)
    throw new Error(`request ${id}: n must be a positive integer, got ${sampling.n}`);
  if (!Number.isInteger(sampling.maxTokens) || sampling.maxTokens < 1)
    throw new Error(`request ${id}: maxTokens must be a positive integer, got ${sampling.maxTokens}`);
  if (req.adapter !== null && !ctx.isKnownAdapter(req.adapter))
    throw new AdapterError(`adapter "${req.adapter}" is not loaded`, 'not_found');

  // A fresh sequence holds no pages, so any id asks for the prompt's whole need.
  const pagesForPrompt = kvCache.pagesNeeded(-1, promptTokens.length + 1);
  const kvCapacity = kvCache.pool.numPages - 1;
  if (pagesForPrompt > kvCapacity)
    throw new AdmissionError(
      `a prompt of ${promptTokens.length} tokens needs ${pagesForPrompt} KV pages; the pool has ${kvCapacity}`,
      0,
      'cannot_fit',
    );
  if (ctx.isClosed) throw new AdmissionError('the scheduler is shutting down', 5, 'shutting_down');
  if (ctx.numWaiting + sampling.n > limits.maxWaiting)
    throw new AdmissionError(
      `the waiting queue is full (${ctx.numWaiting} of ${limits.maxWaiting} sequences)`,
      1,
      'queue_full',
    );
}
