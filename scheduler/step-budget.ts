/**
 * The token budget of the next step under a bound on its time (--max-step-time). Every running
 * stream waits for the step in progress: a 2048-token prefill at the TinyLlama shape on 2 cores
 * took ~20 s, a 20 s stall of every stream. With --onnx-thread main the onnx engine runs that step
 * synchronously on the server's thread (onnxruntime-node's run), so the server also reads no
 * request and answers no probe meanwhile, long enough for Node's header and request timeouts to
 * cut clients whose requests sat unread (408). The
 * budget is the most tokens whose step the measured time per token says fits the bound, never
 * fewer than a decode step of every running sequence takes (maxNumSeqs), never more than
 * --max-num-batched-tokens. Until a step with a prefill has been measured it is START_TOKENS, so
 * the first step cannot block long either. On a GPU the bound is far off and the budget is the flag's.
 */
export class StepBudget {
  /** Milliseconds per token, a running mean over recent steps (null before one is measured). */
  private msPerToken: number | null = null;

  constructor(
    /** null: no bound (the budget is always maxNumBatchedTokens). */
    private readonly maxStepMs: number | null,
    private readonly limits: { maxNumSeqs: number; maxNumBatchedTokens: number },
  ) {
    if (maxStepMs !== null && !(maxStepMs > 0))
      throw new Error(`maxStepMs must be positive, got ${maxStepMs}`);
  }

  /** Tokens the next step may run. */
  get tokens(): number {
    const { maxNumSeqs, maxNumBatchedTokens } = this.limits;
    if (this.maxStepMs === null) return maxNumBatchedTokens;
    const fitting =
      this.msPerToken === null ? START_TOKENS : Math.floor(this.maxStepMs / Math.max(this.msPerToken, 1e-6));
    return Math.max(maxNumSeqs, Math.min(maxNumBatchedTokens, fitting));
  }

  /**
   * A step of `numTokens` tokens took `elapsedMs`. All of its time is taken as per-token time
   * (the fixed part is small beside a prefill's), so small steps overestimate it: the budget errs
   * short. Steps of fewer than MIN_MEASURED_TOKENS tokens (decodes) are not counted: their time is
   * mostly the fixed part.
   */
  observe(numTokens: number, elapsedMs: number): void {
    if (numTokens < MIN_MEASURED_TOKENS || !(elapsedMs >= 0)) return;
    const sample = elapsedMs / numTokens;
    this.msPerToken =
      this.msPerToken === null ? sample : this.msPerToken + WEIGHT * (sample - this.msPerToken);
  }
}

/** The first step's budget, before any step has been measured. */
export const START_TOKENS = 256;
/** Steps below this size say little about the time per token. */
const MIN_MEASURED_TOKENS = 32;
/** Weight of the newest step: a slow first step (onnxruntime's first run) fades within a few steps. */
const WEIGHT = 0.3;
