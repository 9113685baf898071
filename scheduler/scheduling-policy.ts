import {
  type BatchLimits,
  type KvCapacityView,
  type SchedulableSequence,
  type ScheduleDecision,
  schedule,
} from './batch-policy.js';
import { schedulePriority } from './priority-policy.js';
import { scheduleSlora } from './slora-policy.js';

export const SCHEDULING_POLICIES = ['fcfs', 'slora', 'priority'] as const;
export type SchedulingPolicyName = (typeof SCHEDULING_POLICIES)[number];
export const DEFAULT_SCHEDULING_POLICY: SchedulingPolicyName = 'slora';

/** Everything a policy decides from: queues, a read-only capacity view, limits and time. */
export interface PolicyInput<S extends SchedulableSequence> {
  waiting: readonly S[];
  running: readonly S[];
  kv: KvCapacityView;
  limits: BatchLimits;
  /** Whether the sequence's adapter is in the pool (a sequence that is not ready is passed over). */
  isReady: (seq: S) => boolean;
  /** Milliseconds since the sequence's request arrived, on the scheduler's clock. */
  waitedMs: (seq: S) => number;
}

/**
 * A batch policy behind one call (S-LoRA's interchangeable schedulers): pure, so the same inputs
 * give the same step. `abortsEarly`: queued requests whose first token can no longer meet
 * --slo-ttft are aborted before they cost compute (S-LoRA's early abort).
 */
export interface SchedulingPolicy {
  readonly name: SchedulingPolicyName;
  readonly abortsEarly: boolean;
  /**
   * How the waiting queue is kept: by arrival (a preempted sequence back at the head), or by
   * priority then arrival (vLLM's priority queue, a preempted sequence back in its place).
   */
  readonly queueOrder: 'arrival' | 'priority';
  schedule<S extends SchedulableSequence>(input: PolicyInput<S>): ScheduleDecision<S>;
}

export interface SloraPolicyOptions {
  /** Distinct adapters one step may run (SGLang's --max-loras-per-batch). */
  maxLorasPerBatch: number;
  /** A request that has waited this long goes first, whatever its adapter (no starvation). */
  maxWaitMs: number;
}

/** Today's baseline: separate prefill and decode steps, first come first served. */
export const fcfsPolicy: SchedulingPolicy = {
  name: 'fcfs',
  abortsEarly: false,
  queueOrder: 'arrival',
  schedule: ({ waiting, running, kv, limits, isReady }) => schedule(waiting, running, kv, limits, isReady),
};

/** Mixed steps, adapter clustering with a wait bound, early abort. */
export function sloraPolicy(options: SloraPolicyOptions): SchedulingPolicy {
  if (!Number.isInteger(options.maxLorasPerBatch) || options.maxLorasPerBatch < 1)
    throw new Error(`maxLorasPerBatch must be a positive integer, got ${options.maxLorasPerBatch}`);
  if (!(options.maxWaitMs > 0)) throw new Error(`maxWaitMs must be positive, got ${options.maxWaitMs}`);
  return {
    name: 'slora',
    abortsEarly: true,
    queueOrder: 'arrival',
    schedule: (input) => scheduleSlora(input, options),
  };
}

/**
 * vLLM's priority scheduling: requests run by their `priority` (lower first), then arrival;
 * the lowest-priority running request is the one preempted. Mixed steps, no adapter clustering,
 * no early abort.
 */
export const priorityPolicy: SchedulingPolicy = {
  name: 'priority',
  abortsEarly: false,
  queueOrder: 'priority',
  schedule: (input) => schedulePriority(input),
};
