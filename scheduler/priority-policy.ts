import {
  admitInOrder,
  checkSequenceLengths,
  mixedDecision,
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
  const { scheduled, leaving, budget, free } = planRunningChunks(running, decode, kv, limits, isReady);
  if (leaving.size > 0) return mixedDecision(decode, scheduled, []);
  const admissions = admitInOrder(waiting, running.length, { budget, free }, kv, limits, isReady);
  return mixedDecision(decode, [...scheduled, ...admissions.scheduled], admissions.admitted);
}
