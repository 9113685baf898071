import type { FinishReason } from './request.js';

/**
 * Why a request ended without finishing: the client left, its TTFT objective became unreachable,
 * a failure, shutdown, or its client stopped reading its stream for the stall timeout.
 */
export type AbortReason = 'client' | 'slo' | 'failed' | 'shutdown' | 'stalled';

interface EventBase {
  /** The scheduler's clock (milliseconds) when it happened. */
  time: number;
  requestId: string;
  adapter: string | null;
}

/**
 * What happens to a request inside the scheduler, stamped by its clock: metrics and benchmarks
 * read these instead of sampling snapshots.
 *  - queued: accepted by submit;      admitted: a step first schedules one of its choices;
 *  - firstToken / token: a choice produced a token (firstToken once per request, before its token);
 *  - preempted: a choice lost its KV pages and went back to the queue (recompute);
 *  - finished: a choice ended (stop, length); aborted: the request ended unfinished.
 */
export type SchedulerEvent = EventBase &
  (
    | { type: 'queued'; numPromptTokens: number; numChoices: number }
    | { type: 'admitted' }
    | { type: 'firstToken' }
    | { type: 'token'; index: number }
    | { type: 'preempted'; index: number }
    | { type: 'finished'; index: number; reason: FinishReason }
    | { type: 'aborted'; reason: AbortReason }
  );

export type SchedulerEventSink = (event: SchedulerEvent) => void;
