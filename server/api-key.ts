import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './api-error.js';
import { sendApiError } from './error-handler.js';

/**
 * Probes a load balancer or Prometheus calls without credentials; every other path (the OpenAI
 * API, /tokenize, adapter loading, and unknown URLs, which then do not reveal what exists)
 * needs the key.
 */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/health', '/ping', '/metrics', '/version', '/load']);

function invalidApiKey(message: string): ApiError {
  return new ApiError(401, 'invalid_request_error', 'invalid_api_key', message);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The key a request presents: Bearer auth, else Anthropic's x-api-key; null when it presents none. */
function presentedKey(headers: IncomingHttpHeaders): string | null {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') return /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1] ?? null;
  const anthropic = headers['x-api-key'];
  return typeof anthropic === 'string' && anthropic.trim() ? anthropic.trim() : null;
}

/**
 * --api-key: `Authorization: Bearer KEY`, as OpenAI clients send it, or `x-api-key: KEY`, as
 * Anthropic's SDKs send it (/v1/messages), when there is no Authorization; any of the keys is
 * accepted (vLLM's --api-key takes several). The key is compared as
 * equal-length digests with timingSafeEqual, so neither the time nor the length of the
 * comparison says how much of a guess was right.
 */
export function installApiKey(app: FastifyInstance, keys: readonly string[]): void {
  const expected = keys.map(digest);
  app.addHook('onRequest', async (request, reply) => {
    // A CORS preflight carries no credentials (the browser sends them on the real request).
    if (request.method === 'OPTIONS') return;
    const path = request.url.split('?', 1)[0];
    // GET / is LoRAX's and TGI's health probe; POST / generates, and is closed.
    if (OPEN_PATHS.has(path) || (path === '/' && request.method === 'GET')) return;
    const presented = presentedKey(request.headers);
    if (presented === null) {
      reply.header('www-authenticate', 'Bearer');
      return sendApiError(
        reply,
        invalidApiKey(
          'You didn\'t provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. "Authorization: Bearer YOUR_KEY").',
        ),
      );
    }
    // Every key compared, so the time does not say which one came close.
    const given = digest(presented);
    const matches = expected.reduce((any, key) => timingSafeEqual(given, key) || any, false);
    if (!matches) {
      reply.header('www-authenticate', 'Bearer');
      return sendApiError(reply, invalidApiKey('Incorrect API key provided.'));
    }
  });
}
