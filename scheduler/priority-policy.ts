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
import type { PolicyInput } from './scheduling-policy.js';

/**
 * vLLM's `priority` order: lower priority value first, then earlier arrival (sequence ids grow
 * with submission, and a request's choices keep their order).
 */
export function byPriority(a: SchedulableSequence, b: SchedulableSequence): number {
  return (a.priority ?? 0) - (b.priority ?? 0) || a.seqId - b.seqId;
}

/**
 * vLLM's `--scheduling-policy priority` over Loom's mixed steps (the slora policy's passes, no
 * adapter clustering):
 *  1. decodes, running sequences taken in priority order, so that a pool too short preempts the
 *     lowest-priority, latest-arriving one (vLLM's max over (priority, arrival_time));
 *  2. the next chunk of each running sequence still prefilling, in priority order;
 *  3. admissions in the waiting queue's order, which the queues keep by priority: one whose
 *     adapter is still loading is passed over; the first that does not fit ends admission (a
 *     higher-priority request is never overtaken for pages).
 * Nothing is admitted in a step that preempts, as in vLLM.
 */
export function schedulePriority<S extends SchedulableSequence>(input: PolicyInput<S>): ScheduleDecision<S> {
  const { waiting, kv, limits, isReady } = input;
  const running = [...input.running].sort(byPriority);
  checkSequenceLengths(waiting, running, limits);
  const decode = planDecodePass(running, kv, limits, isReady);
  const pass = planRunningChunks(running, decode, kv, limits, isReady);
  const { scheduled, leaving } = pass;
  let { budget, free } = pass;
  const admitted: S[] = [];
  if (leaving.size === 0) {
    // Idle adapters whose pages this plan keeps (by admitting one of their sequences).
    const kept = new Set<string>();
    for (const seq of waiting) {
      if (budget <= 0 || running.length + admitted.length >= limits.maxNumSeqs) break;
      if (!isReady(seq)) continue;
      const adapter = seq.adapter ?? null;
      const pending = numPending(seq);
      const numTokens = chunkTokens(pending, budget, limits);
      const adapterPages = adapter !== null && !kept.has(adapter) ? (kv.idleAdapterPages?.(adapter) ?? 0) : 0;
      const need = kv.pagesNeeded(seq.seqId, seq.numCachedTokens + numTokens) + adapterPages;
      if (need > free) break;
      if (adapter !== null) kept.add(adapter);
      free -= need;
      budget -= numTokens;
      admitted.push(seq);
      scheduled.push({ seq, numTokens, needsLogits: numTokens === pending });
    }
  }
  return mixedDecision(decode, scheduled, admitted);
}
