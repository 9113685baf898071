import {
  checkSequenceLengths,
  chunkTokens,
  mixedDecision,
  numPending,
  planDecodePass,
  planRunningChunks,
  type SchedulableSequence,
  type ScheduleDecision,
} from './batch-policy.js';
import type { PolicyInput, SloraPolicyOptions } from './scheduling-policy.js';

/**
 * The slora policy's step, in three passes over one token budget (vLLM's chunked prefill):
 *  1. decodes: one token for every running sequence that decodes, preempting the newest by
 *     recompute while the pool is short (as the fcfs decode step does);
 *  2. the next chunk of each admitted sequence still prefilling;
 *  3. admissions from the queue, clustered by adapter: requests that have waited maxWaitMs go
 *     first in arrival order; then requests of the base model or of an adapter already in the
 *     step; then the rest in arrival order while the step holds fewer than maxLorasPerBatch
 *     distinct adapters. A request that does not fit is passed over unless it waited past the
 *     bound, in which case nothing behind it is admitted (running sequences drain until it fits).
 * Nothing is admitted in a step that preempts: the pool is short, so the queue waits.
 */
export function scheduleSlora<S extends SchedulableSequence>(
  input: PolicyInput<S>,
  options: SloraPolicyOptions,
): ScheduleDecision<S> {
  const { waiting, running, kv, limits, isReady, waitedMs } = input;
  checkSequenceLengths(waiting, running, limits);
  const decode = planDecodePass(running, kv, limits, isReady);
  const pass = planRunningChunks(running, decode, kv, limits, isReady);
  const { scheduled, leaving } = pass;
  let { budget, free } = pass;
  const admitted: S[] = [];

  if (leaving.size === 0) {
    const inStep = new Set<string>();
    for (const seq of running) if (seq.adapter) inStep.add(seq.adapter);
    const starved = waiting.filter((seq) => waitedMs(seq) >= options.maxWaitMs);
    const isStarved = new Set(starved);
    const rest = waiting.filter((seq) => !isStarved.has(seq));
    const isClustered = (seq: S) => !seq.adapter || inStep.has(seq.adapter);
    const order = [...starved, ...rest.filter(isClustered), ...rest.filter((seq) => !isClustered(seq))];
    // Idle adapters whose pages this plan keeps (by admitting one of their sequences).
    const kept = new Set<string>();
    for (const seq of order) {
      if (budget <= 0 || running.length - leaving.size + admitted.length >= limits.maxNumSeqs) break;
      if (!isReady(seq)) continue;
      const adapter = seq.adapter ?? null;
      const isNewAdapter = adapter !== null && !inStep.has(adapter);
      if (isNewAdapter && inStep.size >= options.maxLorasPerBatch) {
        if (isStarved.has(seq)) break;
        continue;
      }
      const pending = numPending(seq);
      const numTokens = chunkTokens(pending, budget, limits);
      const adapterPages = adapter !== null && !kept.has(adapter) ? (kv.idleAdapterPages?.(adapter) ?? 0) : 0;
      const need = kv.pagesNeeded(seq.seqId, seq.numCachedTokens + numTokens) + adapterPages;
      if (need > free) {
        if (isStarved.has(seq)) break;
        continue;
      }
      if (adapter !== null) {
        kept.add(adapter);
        inStep.add(adapter);
      }
      free -= need;
      budget -= numTokens;
      admitted.push(seq);
      scheduled.push({ seq, numTokens, needsLogits: numTokens === pending });
    }
  }

  return mixedDecision(decode, scheduled, admitted);
}
