import type { BatchLimits } from './batch-policy.js';
import { AdmissionError } from './request.js';
import type { Sequence } from './sequence.js';
import type { TtftEstimator } from './ttft-estimator.js';

/** What early abort reads of a queued sequence's request. */
export interface QueuedRequest {
  readonly req: { readonly requestId: string };
  readonly arrivedAt: number;
  readonly isScheduled: boolean;
  readonly isDone: boolean;
}

/**
 * S-LoRA's early abort against a time-to-first-token objective (--slo-ttft), so that under
 * overload the requests that run meet the objective instead of every request missing it (a
 * prompt too long to meet it even alone is held to its own prefill time over DOOR_SHARE instead):
 *  - at submit, a request whose first token is estimated later than DOOR_SHARE of the objective
 *    is refused (the rest is headroom for estimation error and for adapter clustering, which may
 *    pass a request over for up to half the objective before it goes first);
 *  - while queued, a request not yet scheduled whose estimated first token falls past its
 *    arrival + the objective is aborted before it costs compute.
 * Refusals are AdmissionErrors: the server answers 503 with Retry-After, before any token of a
 * streamed request.
 */
export class EarlyAbort {
  constructor(
    readonly sloMs: number,
    private readonly limits: BatchLimits,
    private readonly estimator: TtftEstimator,
    /**
     * Tokens the coming steps may run: --max-step-time's budget (step-budget.ts), which the
     * policy plans with, when it is below --max-num-batched-tokens; prefills split into more
     * steps then, each paying the step's fixed time.
     */
    private readonly stepTokens: () => number = () => limits.maxNumBatchedTokens,
  ) {}

  /** Why a new request of `numPromptTokens` × `n` choices is refused at submit, or null to queue it. */
  refusal(
    numPromptTokens: number,
    n: number,
    waiting: readonly Sequence[],
    numRunning: number,
  ): AdmissionError | null {
    let prefillAhead = 0;
    for (const seq of waiting) prefillAhead += seq.numTokens - seq.numCachedTokens;
    const prefill = prefillAhead + numPromptTokens * n;
    const estimate = this.estimateMs(prefill, waiting.length + n, numRunning, prefill);
    const objective = this.objectiveMs(numPromptTokens * n, numRunning);
    if (estimate <= objective * DOOR_SHARE) return null;
    return new AdmissionError(
      `the first token would come in about ${seconds(estimate)} s, too close to the ${seconds(objective)} s objective (--slo-ttft) to admit`,
      retryAfterSeconds(estimate - objective * DOOR_SHARE),
      'slo_unattainable',
    );
  }

  /**
   * Walking the queue in order, the requests not yet scheduled whose first token would come past
   * their arrival + sloMs, each with the error its stream fails with. Requests that stay count as
   * work ahead of the ones behind them; the aborted ones do not.
   */
  lateRequests<R extends QueuedRequest>(
    waiting: readonly Sequence[],
    numRunning: number,
    now: number,
    requestOf: (seq: Sequence) => R | undefined,
  ): Array<{ request: R; error: AdmissionError }> {
    const late: Array<{ request: R; error: AdmissionError }> = [];
    const isLate = new Set<R>();
    let queuedTokens = 0;
    for (const seq of waiting) queuedTokens += seq.numTokens - seq.numCachedTokens;
    let prefillAhead = 0;
    let sequencesAhead = 0;
    for (const seq of waiting) {
      const request = requestOf(seq);
      if (!request || request.isDone || isLate.has(request)) continue;
      const pending = seq.numTokens - seq.numCachedTokens;
      const objective = this.objectiveMs(pending, numRunning);
      const lateMs = request.isScheduled
        ? 0
        : now +
          this.estimateMs(prefillAhead + pending, sequencesAhead + 1, numRunning, queuedTokens) -
          request.arrivedAt -
          objective;
      if (lateMs <= 0) {
        prefillAhead += pending;
        sequencesAhead++;
        continue;
      }
      isLate.add(request);
      late.push({
        request,
        error: new AdmissionError(
          `request ${request.req.requestId}: aborted in the queue: its first token would come after the ${seconds(objective)} s objective (--slo-ttft)`,
          retryAfterSeconds(lateMs),
          'slo_unattainable',
        ),
      });
    }
    return late;
  }

  /**
   * The objective a request is held to: --slo-ttft, or what its own prompt takes on the current
   * batch over DOOR_SHARE when that is longer, so that a prompt too long to meet the objective even
   * on an idle server passes the door when nothing is ahead of it instead of being refused every
   * time it is sent.
   */
  private objectiveMs(numPromptTokens: number, numRunning: number): number {
    return Math.max(
      this.sloMs,
      this.estimateMs(numPromptTokens, 0, numRunning, numPromptTokens) / DOOR_SHARE,
    );
  }

  /** Until the first token of a request behind `prefillTokens` prompt tokens and `sequencesAhead` choices (its own included). */
  private estimateMs(
    prefillTokens: number,
    sequencesAhead: number,
    numRunning: number,
    queuedTokens: number,
  ): number {
    const slotsShort = Math.max(0, numRunning + sequencesAhead - this.limits.maxNumSeqs);
    return this.estimator.estimateMs(prefillTokens, numRunning, this.stepTokens(), slotsShort, queuedTokens);
  }
}

/**
 * Share of the objective a new request's estimated wait may take at submit; the rest is headroom
 * for estimation error and clustering. In bench/scheduler-slo.ts at 2× load, 0.5 gave 0.795 of
 * admitted+aborted requests in time, 0.4 gives 0.85 at the same goodput.
 */
const DOOR_SHARE = 0.4;

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function retryAfterSeconds(lateMs: number): number {
  return Math.max(1, Math.ceil(lateMs / 1000));
}
