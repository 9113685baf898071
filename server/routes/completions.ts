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

/**
 * The prompts as token ids: a string, a token-id array, or a list of either (OpenAI's batch);
 * a string is encoded with the tokenizer's special tokens (BOS).
 */
function promptsTokens(stack: ServingStack, prompt: CompletionRequest['prompt']): number[][] {
  const isBatch = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number';
  if (Array.isArray(prompt) && prompt.length === 0) throw invalidRequest('The prompt is empty.', 'prompt');
  const prompts = (isBatch ? prompt : [prompt]) as (string | number[])[];
  // Every prompt's size is checked before any is tokenized: a batch costs the event loop no more
  // than its longest legal prompts.
  prompts.forEach((single, p) => {
    const param = isBatch ? `prompt[${p}]` : 'prompt';
    if (typeof single === 'string') {
      if (single.length === 0) throw invalidRequest('The prompt is empty.', param);
      checkPromptChars(stack, single.length, param);
    } else {
      if (single.length === 0) throw invalidRequest('The prompt is empty.', param);
      checkTokenIds(single, stack.tokenizer.vocabSize, param);
    }
  });
  return prompts.map((single) =>
    typeof single === 'string' ? stack.tokenizer.encode(single, true) : single,
  );
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
          return promptsTokens(stack, body.prompt);
        },
        requestedMaxTokens: (body) => body.max_tokens ?? null,
        defaultMaxTokens: DEFAULT_COMPLETION_TOKENS,
        choice: (outcome) => ({
          text: outcome.text,
          logprobs: null,
          finish_reason: outcome.finishReason,
          stop_reason: outcome.stop_reason,
        }),
        deltaChoice: (index, delta, stopReason) => ({
          index,
          text: delta.text,
          logprobs: null,
          finish_reason: delta.finishReason,
          stop_reason: stopReason,
        }),
      }),
  );
};
