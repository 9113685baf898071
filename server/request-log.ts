import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type ApiError, echoed } from './api-error.js';

/** Polled by load balancers and Prometheus every few seconds: at info they would drown the log. */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/health', '/metrics', '/ping']);

/** The error each refused request was answered with, for its log line. */
const answeredErrors = new WeakMap<FastifyRequest, ApiError>();

/** Called wherever an OpenAI error is sent (sendApiError), so the request's line can say why. */
export function rememberError(request: FastifyRequest, error: ApiError): void {
  answeredErrors.set(request, error);
}

/**
 * One line per request, in place of Fastify's two: method, path, status, time, and for an
 * error answer its code and message (a 4xx says what the client got wrong). Probes log at debug.
 * These are uvicorn's access log in vLLM: `excludedPaths` (--disable-access-log-for-endpoints) get
 * none, matched on the path without its query as vLLM's filter matches them.
 */
export function installRequestLog(
  app: FastifyInstance,
  excludedPaths: ReadonlySet<string> = new Set(),
): void {
  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?', 1)[0];
    if (excludedPaths.has(path)) return;
    const error = answeredErrors.get(request);
    const line = {
      method: request.method,
      url: echoed(request.url),
      statusCode: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime),
      ...(error ? { errorCode: error.code, error: error.message } : {}),
    };
    if (PROBE_PATHS.has(path)) request.log.debug(line, 'request completed');
    else request.log.info(line, 'request completed');
  });
}
