import { randomUUID } from 'node:crypto';

/** OpenAI-style ids: `cmpl-…` for completions, `chatcmpl-…` for chat completions. */
export function newRequestId(prefix: 'cmpl' | 'chatcmpl'): string {
  return `${prefix}-${randomUUID().replaceAll('-', '')}`;
}
