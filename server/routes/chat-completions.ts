import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notSupported } from '../api-error.js';
import { chatPromptTokens } from '../chat-prompt.js';
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { serveCompletion } from '../serve-completion.js';

function checkUnsupported(body: ChatCompletionRequest): void {
  if (body.logprobs) throw notSupported('logprobs', 'logprobs');
  if (body.top_logprobs) throw notSupported('top_logprobs', 'top_logprobs');
  if (Array.isArray(body.tools) ? body.tools.length > 0 : body.tools != null)
    throw notSupported('tools', 'Tool calling');
  if (body.functions != null) throw notSupported('functions', 'Function calling');
  if (body.tool_choice != null && body.tool_choice !== 'none')
    throw notSupported('tool_choice', 'tool_choice');
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
          return [chatPromptTokens(stack, body.model, body.messages)];
        },
        requestedMaxTokens: (body) => body.max_completion_tokens ?? body.max_tokens ?? null,
        defaultMaxTokens: null,
        choice: (outcome) => ({
          message: { role: 'assistant' as const, content: outcome.text },
          logprobs: null,
          finish_reason: outcome.finishReason,
          stop_reason: outcome.stop_reason,
        }),
        openingChoice: (index) => ({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        }),
        deltaChoice: (index, delta, stopReason) => ({
          index,
          delta: delta.text ? { content: delta.text } : {},
          logprobs: null,
          finish_reason: delta.finishReason,
          stop_reason: stopReason,
        }),
      }),
  );
};
