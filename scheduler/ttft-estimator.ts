/**
 * How long a queued request will wait for its first token, from what the steps measured: step
 * time as a + b·tokens (least squares over exponentially weighted recent steps), and the rate at
 * which running sequences finish (what frees a batch slot). Until a step has been measured it
 * knows nothing and estimates 0, so nothing is aborted on a guess.
 */
export class TtftEstimator {
  private numObserved = 0;
  private meanTokens = 0;
  private meanMs = 0;
  private meanTokensSq = 0;
  private meanTokensMs = 0;
  /** Sequences finished per millisecond of step time (0 until one has finished). */
  private finishRate = 0;

  /** One step ran `numTokens` tokens in `elapsedMs` and finished `numFinished` sequences. */
  observe(numTokens: number, elapsedMs: number, numFinished: number): void {
    const w = this.numObserved === 0 ? 1 : WEIGHT;
    this.numObserved++;
    this.meanTokens += w * (numTokens - this.meanTokens);
    this.meanMs += w * (elapsedMs - this.meanMs);
    this.meanTokensSq += w * (numTokens * numTokens - this.meanTokensSq);
    this.meanTokensMs += w * (numTokens * elapsedMs - this.meanTokensMs);
    if (elapsedMs > 0) this.finishRate += w * (numFinished / elapsedMs - this.finishRate);
  }

  /** Milliseconds one step of `numTokens` tokens takes (0 before any step). */
  stepMs(numTokens: number): number {
    if (this.numObserved === 0) return 0;
    const variance = this.meanTokensSq - this.meanTokens ** 2;
    if (variance < 1e-6 * Math.max(1, this.meanTokens ** 2)) {
      // Every step had the same size: all of its time is taken as per-token.
      return this.meanTokens > 0 ? (this.meanMs / this.meanTokens) * numTokens : this.meanMs;
    }
    const perToken = Math.max(0, (this.meanTokensMs - this.meanTokens * this.meanMs) / variance);
    const fixed = Math.max(0, this.meanMs - perToken * this.meanTokens);
    return fixed + perToken * numTokens;
  }

  /**
   * Milliseconds until the first token of a request that needs `prefillTokens` prompt tokens run
   * (its own and those queued before it) with `numDecoding` sequences decoding beside it in steps
   * of `maxStepTokens`, `slotsShort` running sequences to finish before it gets a batch slot, and
   * `queuedTokens` prompt tokens queued in all (which fill the steps it runs in).
   */
  estimateMs(
    prefillTokens: number,
    numDecoding: number,
    maxStepTokens: number,
    slotsShort: number,
    queuedTokens: number,
  ): number {
    if (this.numObserved === 0) return 0;
    const chunk = Math.max(1, maxStepTokens - numDecoding);
    const steps = Math.max(1, Math.ceil(prefillTokens / chunk));
    const stepMs = this.stepMs(numDecoding + Math.min(chunk, Math.max(prefillTokens / steps, queuedTokens)));
    // Waiting for a slot overlaps the prefills ahead; the step that produces the token comes after.
    const slotMs = slotsShort > 0 && this.finishRate > 0 ? slotsShort / this.finishRate + stepMs : 0;
    return Math.max(steps * stepMs, slotMs);
  }
}

/** Weight of the newest step in the running means (about the last 20 steps count). */
const WEIGHT = 0.05;
