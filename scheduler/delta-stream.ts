import type { GenerationDelta, GenerationStream } from './request.js';

/**
 * The consumer's side of one request: deltas queue up as steps produce them and are handed out
 * in order. The scheduler pushes and ends; the consumer iterates once. Leaving the loop early
 * (`return()`) cancels the request.
 */
export class DeltaStream implements GenerationStream {
  private readonly queue: GenerationDelta[] = [];
  private isEnded = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private numCompletionTokens = 0;

  constructor(
    readonly promptTokens: number,
    private readonly onCancel: () => void,
  ) {}

  get completionTokens(): number {
    return this.numCompletionTokens;
  }

  push(delta: GenerationDelta): void {
    if (this.isEnded) return;
    this.numCompletionTokens += delta.tokenIds.length;
    this.queue.push(delta);
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
          if (delta) return { value: delta, done: false };
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
        this.onCancel();
        return { value: undefined, done: true };
      },
    };
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
