import type { FastifyInstance } from 'fastify';
import { ApiError, echoed } from './api-error.js';
import { sendApiError } from './error-handler.js';

const ALLOWED_METHODS = 'GET, POST, OPTIONS';
/** How long a browser may cache a preflight's answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * --allowed-origins: CORS for browser clients, off unless given. A small hook rather than
 * @fastify/cors: Loom needs one policy (listed origins, GET/POST, no cookies), which is a dozen
 * lines, and the project adds no dependency for what it can state that plainly. A preflight
 * (OPTIONS with Access-Control-Request-Method) is answered here, before auth, since browsers
 * send it without credentials; a listed origin's other requests get Access-Control-Allow-Origin
 * on their answer, errors included, so the page can read the error.
 */
export function installCors(app: FastifyInstance, origins: readonly string[]): void {
  const anyOrigin = origins.includes('*');
  const listed = new Set(origins);
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin !== 'string') return;
    const isAllowed = anyOrigin || listed.has(origin);
    const isPreflight =
      request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined;
    if (!isAllowed) {
      if (!isPreflight) return;
      return sendApiError(
        reply,
        new ApiError(
          403,
          'invalid_request_error',
          'origin_not_allowed',
          `Origin ${echoed(origin)} is not allowed.`,
        ),
      );
    }
    reply.header('access-control-allow-origin', anyOrigin ? '*' : origin);
    if (!anyOrigin) reply.header('vary', 'Origin');
    if (!isPreflight) return;
    const requestedHeaders = request.headers['access-control-request-headers'];
    reply.header('access-control-allow-methods', ALLOWED_METHODS);
    reply.header('access-control-allow-headers', requestedHeaders || 'authorization, content-type');
    reply.header('access-control-max-age', String(PREFLIGHT_MAX_AGE_SECONDS));
    return reply.code(204).send();
  });
}
