import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/** 32 random hex digits: the body of every id Loom makes (vLLM's random_uuid().hex). */
export function randomHex(): string {
  return randomUUID().replaceAll('-', '');
}

/** OpenAI-style ids: `cmpl-…` for completions, `chatcmpl-…` for chat completions. */
export function newRequestId(prefix: 'cmpl' | 'chatcmpl'): string {
  return `${prefix}-${randomHex()}`;
}

/** Longest id a client may give a request (header or body); a longer header is not used. */
export const MAX_CLIENT_REQUEST_ID = 256;

/**
 * The id a client gave its request, as vLLM takes it: the X-Request-Id header, else the body's
 * `request_id`; null when neither (a fresh one is made).
 */
export function clientRequestId(request: FastifyRequest, fromBody: string | null | undefined): string | null {
  const header = request.headers['x-request-id'];
  if (typeof header === 'string' && header !== '' && header.length <= MAX_CLIENT_REQUEST_ID) return header;
  return fromBody ?? null;
}

/**
 * A response's id (`cmpl-…`, `chatcmpl-…`: the client's id when it gave one, vLLM's way) and the
 * scheduler's id for it, which stays unique when two clients send the same id.
 */
export function completionIds(
  prefix: 'cmpl' | 'chatcmpl',
  client: string | null,
): { responseId: string; requestId: string } {
  if (client === null) {
    const id = newRequestId(prefix);
    return { responseId: id, requestId: id };
  }
  const responseId = `${prefix}-${client}`;
  return { responseId, requestId: `${responseId}-${randomHex().slice(0, 8)}` };
}
