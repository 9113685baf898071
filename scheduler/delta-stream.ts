import type { GenerationDelta, GenerationStream } from './request.js';

/**
 * How a stream tells its request that its consumer fell behind: past `maxUnread` unread deltas the
 * request pauses (its choices sit steps out, holding their pages), and once the consumer has read
 * back down to half of that it resumes. A consumer that reads keeps up within a step, so only one
 * that stopped reading (a client whose socket is full) ever pauses.
 */
export interface FlowControl {
  readonly maxUnread: number;
  pause(): void;
  resume(): void;
}

/**
 * The consumer's side of one request: deltas queue up as steps produce them and are handed out
 * in order. The scheduler pushes and ends; the consumer iterates once. Leaving the loop early
 * (`return()`) cancels the request. The queue is bounded by flow control, not by its own size:
 * pushing never drops a delta, the producer is paused instead.
 */
export class DeltaStream implements GenerationStream {
  private readonly queue: GenerationDelta[] = [];
  private isEnded = false;
  private isPaused = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private numCompletionTokens = 0;
  /** Set by the scheduler when the first choice is first admitted. */
  cachedPromptTokens = 0;

  constructor(
    readonly promptTokens: number,
    private readonly onCancel: () => void,
    private readonly flow: FlowControl | null = null,
  ) {}

  get completionTokens(): number {
    return this.numCompletionTokens;
  }

  /** Deltas pushed that the consumer has not read yet. */
  get numUnread(): number {
    return this.queue.length;
  }

  push(delta: GenerationDelta): void {
    if (this.isEnded) return;
    this.numCompletionTokens += delta.tokenIds.length;
    this.queue.push(delta);
    if (this.flow && !this.isPaused && this.queue.length >= this.flow.maxUnread) {
      this.isPaused = true;
      this.flow.pause();
    }
    this.notify();
  }

  end(): void {
    this.isEnded = true;
    this.notify();
  }

  /** Ends the stream with an error the consumer sees after the deltas already queued. */
  fail(error: Error): void {
    if (this.isEnded) return;
    this.error = error;
    this.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<GenerationDelta> {
    return {
      next: async () => {
        for (;;) {
          const delta = this.queue.shift();
          if (delta) {
            this.mayResume();
            return { value: delta, done: false };
          }
          if (this.error) {
            const error = this.error;
            this.error = null;
            throw error;
          }
          if (this.isEnded) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
        }
      },
      return: async () => {
        this.queue.length = 0;
        this.mayResume();
        this.onCancel();
        return { value: undefined, done: true };
      },
    };
  }

  private mayResume(): void {
    if (!this.flow || !this.isPaused || this.queue.length > this.flow.maxUnread / 2) return;
    this.isPaused = false;
    if (!this.isEnded) this.flow.resume();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
