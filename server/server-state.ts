import { serviceUnavailable } from './api-error.js';
import type { RequestMetrics } from './request-metrics.js';
import type { ServingStack } from './serving-stack.js';

export type ServerPhase = 'starting' | 'serving' | 'closing';

/**
 * The app's lifecycle: 'starting' until the serving stack is attached (main listens first so
 * health probes see 503 instead of a refused connection while weights load), 'serving', then
 * 'closing' from the first shutdown signal. It also tracks open SSE streams, which the
 * HTTP server cannot drain by itself: shutdown ends them.
 */
export class ServerState {
  private currentPhase: ServerPhase = 'starting';
  private currentStack: ServingStack | null = null;
  private readonly openStreams = new Set<() => void>();
  private closed = false;

  /** `requestMetrics` times every request the routes submit (null: none are recorded). */
  constructor(readonly requestMetrics: RequestMetrics | null = null) {}

  get phase(): ServerPhase {
    return this.currentPhase;
  }

  /** The stack, for tests and metrics; null while starting. */
  get stack(): ServingStack | null {
    return this.currentStack;
  }

  attach(stack: ServingStack): void {
    if (this.currentPhase !== 'starting') throw new Error(`cannot attach a stack while ${this.currentPhase}`);
    this.currentStack = stack;
    this.currentPhase = 'serving';
  }

  /** The stack a request may use, or a 503 that says why there is none. */
  requireStack(): ServingStack {
    if (this.currentPhase === 'closing')
      throw serviceUnavailable('server_shutting_down', 'The server is shutting down.');
    if (!this.currentStack)
      throw serviceUnavailable('server_starting', 'The server is still loading the model.', 5);
    return this.currentStack;
  }

  /** Registers an open SSE stream's `end`; returns the function that unregisters it. */
  trackStream(end: () => void): () => void {
    this.openStreams.add(end);
    return () => this.openStreams.delete(end);
  }

  get numOpenStreams(): number {
    return this.openStreams.size;
  }

  /** Stops admitting and ends every open stream (each stream's `end` aborts its generation). */
  beginClosing(): void {
    this.currentPhase = 'closing';
    for (const end of [...this.openStreams]) end();
    this.openStreams.clear();
  }

  /** Closes the stack once, if one was attached. */
  async close(): Promise<void> {
    this.currentPhase = 'closing';
    if (this.closed) return;
    this.closed = true;
    await this.currentStack?.close();
  }
}
