import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { invalidRequest, notSupported } from '../api-error.js';
import { checkPromptChars } from '../request-limits.js';
import { checkTokenIds } from '../sampling-params.js';
import { type CompletionRequest, CompletionRequestSchema } from '../schemas/completion-request.js';
import { CompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { serveCompletion } from '../serve-completion.js';
import type { ServingStack } from '../serving-stack.js';

/** OpenAI's (and vLLM's) default for /v1/completions when max_tokens is left out. */
const DEFAULT_COMPLETION_TOKENS = 16;

/** The prompt as token ids: a string is encoded with the tokenizer's special tokens (BOS). */
function promptTokens(stack: ServingStack, prompt: CompletionRequest['prompt']): number[] {
  let single: string | number[] = prompt as string | number[];
  if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number') {
    if (prompt.length > 1)
      throw invalidRequest(
        'Only one prompt per request is supported; send one request per prompt.',
        'prompt',
      );
    single = prompt[0] as string | number[];
  }
  if (typeof single === 'string') {
    if (single.length === 0) throw invalidRequest('The prompt is empty.', 'prompt');
    checkPromptChars(stack, single.length, 'prompt');
    return stack.tokenizer.encode(single, true);
  }
  checkTokenIds(single, stack.tokenizer.vocabSize, 'prompt');
  return single;
}

function checkUnsupported(body: CompletionRequest): void {
  if (body.logprobs !== undefined && body.logprobs !== null) throw notSupported('logprobs', 'logprobs');
  if (body.echo) throw notSupported('echo', 'echo');
  if (body.suffix) throw notSupported('suffix', 'suffix');
  if (body.best_of && body.best_of !== (body.n ?? 1)) throw notSupported('best_of', 'best_of other than n');
}

export const completionsRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/completions',
    {
      schema: {
        body: CompletionRequestSchema,
        response: { 200: CompletionResponseSchema, ...errorResponses },
      },
    },
    (request, reply) =>
      serveCompletion(app.loom, reply, request.body, {
        idPrefix: 'cmpl',
        object: 'text_completion',
        chunkObject: 'text_completion',
        promptTokens: (stack, body) => {
          checkUnsupported(body);
          return promptTokens(stack, body.prompt);
        },
        requestedMaxTokens: (body) => body.max_tokens ?? null,
        defaultMaxTokens: DEFAULT_COMPLETION_TOKENS,
        choice: (text, finishReason) => ({ text, logprobs: null, finish_reason: finishReason }),
        deltaChoice: (delta) => ({
          index: delta.index,
          text: delta.text,
          logprobs: null,
          finish_reason: delta.finishReason,
        }),
      }),
  );
};
