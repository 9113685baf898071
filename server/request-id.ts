import { randomUUID } from 'node:crypto';

/** 32 random hex digits: the body of every id Loom makes (vLLM's random_uuid().hex). */
export function randomHex(): string {
  return randomUUID().replaceAll('-', '');
}

/** OpenAI-style ids: `cmpl-…` for completions, `chatcmpl-…` for chat completions. */
export function newRequestId(prefix: 'cmpl' | 'chatcmpl'): string {
  return `${prefix}-${randomHex()}`;
}
