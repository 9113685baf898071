import { Transform, type TransformCallback } from 'node:stream';
import { ApiError, invalidRequest } from './api-error.js';
import type { ServingStack } from './serving-stack.js';

/**
 * Bounds on one request that follow from the served model, checked before the costly work: a
 * body is refused while it arrives (413) once it is longer than any legal prompt could make it,
 * and a prompt's characters are counted before the tokenizer runs (400), since tokenizing and
 * chat-templating run on the event loop (~2 s per MiB) and would stall every other stream.
 */

/**
 * Body bytes one prompt token can take: a token's text escaped in JSON (up to 6 bytes per
 * UTF-16 unit, "\u0000") or as an id in a list, or a chat message's own fields around it.
 */
const BODY_BYTES_PER_TOKEN_FLOOR = 32;
/** Room for everything besides the prompt: sampling fields, stop strings, a model name. */
const BODY_SLACK_BYTES = 64 * 1024;

export function maxPromptChars(stack: ServingStack): number {
  return stack.maxModelLen * Math.max(1, stack.tokenizer.longestTokenChars);
}

export function maxBodyBytes(stack: ServingStack): number {
  const perToken = Math.max(BODY_BYTES_PER_TOKEN_FLOOR, 6 * stack.tokenizer.longestTokenChars);
  return stack.maxModelLen * perToken + BODY_SLACK_BYTES;
}

/**
 * 400 when `chars` characters of prompt text cannot fit the context whatever the tokenizer does:
 * each token covers at most `longestTokenChars` of them.
 */
export function checkPromptChars(stack: ServingStack, chars: number, param: string): void {
  const limit = maxPromptChars(stack);
  if (chars > limit)
    throw invalidRequest(
      `This model's maximum context length is ${stack.maxModelLen} tokens. However, your prompt has ${chars} characters, more than ${limit} (${stack.maxModelLen} tokens of at most ${stack.tokenizer.longestTokenChars} characters each). Please reduce the length of the input.`,
      param,
      'context_length_exceeded',
    );
}

export function bodyTooLarge(limit: number): ApiError {
  return new ApiError(
    413,
    'invalid_request_error',
    'request_too_large',
    `The request body is larger than ${limit} bytes, more than the longest prompt this model's context allows.`,
  );
}

/**
 * The body stream, cut with a 413 once more than `limit` bytes have come: a declared length
 * is refused before anything is read, a chunked body as soon as it passes the limit.
 */
export function limitBody(payload: NodeJS.ReadableStream, limit: number, contentLength: string | undefined) {
  if (Number(contentLength) > limit) throw bodyTooLarge(limit);
  let received = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      received += chunk.length;
      counted.receivedEncodedLength = received;
      if (received > limit) callback(bodyTooLarge(limit));
      else callback(null, chunk);
    },
  }) as Transform & { receivedEncodedLength: number };
  counted.receivedEncodedLength = 0;
  payload.on('error', (error) => counted.destroy(error));
  return payload.pipe(counted);
}
