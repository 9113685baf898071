import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { TokenLogprobs } from '../../kernels/logprobs.js';
import { invalidRequest, notSupported } from '../api-error.js';
import { chatPromptOptions, chatPromptTokens } from '../chat-prompt.js';
import { checkNumTop, checkPromptLogprobs, type LogprobsAsked } from '../logprobs.js';
import { truncatePrompt } from '../sampling-params.js';
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { type ChoiceView, serveCompletion } from '../serve-completion.js';
import type { ServingStack } from '../serving-stack.js';

function checkUnsupported(body: ChatCompletionRequest): void {
  if (Array.isArray(body.tools) ? body.tools.length > 0 : body.tools != null)
    throw notSupported('tools', 'Tool calling');
  if (body.functions != null) throw notSupported('functions', 'Function calling');
  if (body.tool_choice != null && body.tool_choice !== 'none')
    throw notSupported('tool_choice', 'tool_choice');
}

/**
 * `logprobs: true` scores each sampled token; `top_logprobs: k` (0..--max-logprobs) lists k top tokens beside
 * it (OpenAI's rule: only with logprobs); vLLM's `prompt_logprobs` scores the rendered prompt.
 */
function logprobsAsked(body: ChatCompletionRequest, stack: ServingStack, maxLogprobs: number): LogprobsAsked {
  const top = body.top_logprobs ?? 0;
  if (!body.logprobs && top > 0)
    throw invalidRequest('top_logprobs needs logprobs set to true.', 'top_logprobs');
  return {
    numTop: body.logprobs ? checkNumTop(top, 'top_logprobs', maxLogprobs) : null,
    numTopPrompt:
      body.prompt_logprobs == null
        ? null
        : checkPromptLogprobs(
            body.prompt_logprobs,
            body.stream === true,
            stack.tokenizer.vocabSize,
            maxLogprobs,
          ),
  };
}

function chatLogprobs(
  view: ChoiceView,
  tokenIds: readonly number[],
  scores: readonly TokenLogprobs[] | undefined,
) {
  return view.logprobs ? view.logprobs.chat(tokenIds, scores ?? []) : null;
}

export const chatCompletionsRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/chat/completions',
    {
      schema: {
        body: ChatCompletionRequestSchema,
        response: { 200: ChatCompletionResponseSchema, ...errorResponses },
      },
    },
    (request, reply) =>
      serveCompletion(app.loom, reply, request.body, {
        idPrefix: 'chatcmpl',
        object: 'chat.completion',
        chunkObject: 'chat.completion.chunk',
        promptTokens: (stack, body) => {
          checkUnsupported(body);
          const tokens = chatPromptTokens(stack, body.model, body.messages, chatPromptOptions(body));
          return [truncatePrompt(tokens, body.truncate_prompt_tokens, stack.maxModelLen)];
        },
        requestedMaxTokens: (body) => body.max_completion_tokens ?? body.max_tokens ?? null,
        logprobsAsked,
        defaultMaxTokens: null,
        // One prompt: vLLM lists its scores once, beside the choices.
        responseFields: (first, view) => ({ prompt_logprobs: view.promptLogprobs(first.promptLogprobs) }),
        chunkFields: (delta, view) =>
          delta.promptLogprobs ? { prompt_logprobs: view.promptLogprobs(delta.promptLogprobs) } : {},
        choice: (outcome, view) => ({
          message: { role: 'assistant' as const, content: outcome.text },
          logprobs: chatLogprobs(view, outcome.tokenIds, outcome.logprobs),
          finish_reason: outcome.finishReason,
          stop_reason: outcome.stop_reason,
        }),
        openingChoice: (index) => ({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        }),
        deltaChoice: (index, delta, stopReason, view) => ({
          index,
          delta: delta.text ? { content: delta.text } : {},
          logprobs: chatLogprobs(view, delta.tokenIds, delta.logprobs),
          finish_reason: delta.finishReason,
          stop_reason: stopReason,
        }),
      }),
  );
};
