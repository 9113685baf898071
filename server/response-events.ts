/** One event of a Responses stream, its `sequence_number` set. */
export type ResponseEvent = Readonly<Record<string, unknown>> & { readonly sequence_number: number };

/**
 * The stream events of a background response created with `stream: true`, kept beside it in the
 * response store so that a client can read them again from any point
 * (GET /v1/responses/{id}?stream=true&starting_after=N), as OpenAI and vLLM let a client resume
 * a background stream it lost, and follow the events still to come until the response ends.
 */
export class ResponseEventLog {
  private readonly events: ResponseEvent[] = [];
  private isEnded = false;
  private waiting: Array<() => void> = [];

  push(event: ResponseEvent): void {
    this.events.push(event);
    this.wake();
  }

  /** No more events: the response ended (or failed, or was cancelled). */
  end(): void {
    this.isEnded = true;
    this.wake();
  }

  get ended(): boolean {
    return this.isEnded;
  }

  /** The events after sequence number `startingAfter` (-1: all), then each one as it comes, until the end. */
  async *follow(startingAfter = -1): AsyncGenerator<ResponseEvent> {
    let i = 0;
    for (;;) {
      for (; i < this.events.length; i++)
        if (this.events[i].sequence_number > startingAfter) yield this.events[i];
      if (this.isEnded) return;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}
