import { EngineFailure } from '../kernels/engine.js';
import { ApiError } from './api-error.js';

/** The EngineFailure behind an error (the scheduler wraps engine errors in a GenerationError), or null. */
export function engineFailureOf(error: unknown): EngineFailure | null {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++)
    if (e instanceof EngineFailure) return e;
  return null;
}

/**
 * What a client is told when the engine failed under its request: the failure's client-safe
 * message (never the driver's text, which goes to the logs). A dead engine is a 503 (nothing
 * will work until a restart); a failed step, such as a batch that outgrew device memory, a 500.
 */
export function engineApiError(failure: EngineFailure): ApiError {
  if (failure.fatal)
    return new ApiError(
      503,
      'server_error',
      'engine_unavailable',
      `The inference engine stopped (${failure.clientMessage}); the server must be restarted.`,
    );
  return new ApiError(500, 'server_error', 'engine_error', failure.clientMessage);
}
