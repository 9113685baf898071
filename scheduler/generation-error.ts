/** Thrown into a request's stream when it cannot be served; the message says why. */
export class GenerationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GenerationError';
  }
}

/**
 * The request's consumer read nothing for the stall timeout while its unread output sat at the
 * flow-control bound (a streaming client that stopped reading its socket): the request was
 * aborted and its pages freed rather than held for a reader that may never come back.
 */
export class StreamStalledError extends GenerationError {
  constructor(
    requestId: string,
    readonly stallTimeoutMs: number,
  ) {
    super(
      `request ${requestId}: the client read none of its stream for ${stallTimeoutMs / 1000} s while output waited (--stream-stall-timeout); the request was aborted`,
    );
    this.name = 'StreamStalledError';
  }
}
