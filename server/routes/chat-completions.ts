import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ChatTemplateError, ChatTemplateRenderError } from '../../model/chat-template.js';
import { ApiError, invalidRequest, notSupported } from '../api-error.js';
import { checkPromptChars } from '../request-limits.js';
import {
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  type ChatMessage,
} from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { serveCompletion } from '../serve-completion.js';
import type { ServingStack } from '../serving-stack.js';

/** OpenAI's newer `developer` role is what templates know as `system`. */
const ROLE_FOR_TEMPLATE: Record<string, string> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
};

/** Content as the template sees it: a string, or the text parts joined. */
function messageText(message: ChatMessage, index: number): string {
  const param = `messages[${index}].content`;
  if (message.content === null) throw invalidRequest(`'${param}' must not be null.`, param);
  if (typeof message.content === 'string') return message.content;
  return message.content
    .map((part, p) => {
      if (part.type !== 'text') throw notSupported(`${param}[${p}].type`, `Content of type "${part.type}"`);
      if (part.text === undefined)
        throw invalidRequest(`Missing required parameter '${param}[${p}].text'.`, `${param}[${p}].text`);
      return part.text;
    })
    .join('');
}

/** The model's own chat template broke while rendering: the server's files are at fault, not the request. */
function chatTemplateFailed(message: string): ApiError {
  return new ApiError(
    500,
    'server_error',
    'chat_template_error',
    `The model's chat template failed to render these messages (a problem with the server's model files, not the request): ${message}`,
  );
}

function chatPromptTokens(stack: ServingStack, body: ChatCompletionRequest): number[] {
  if (body.messages.length === 0) throw invalidRequest("'messages' must not be empty.", 'messages');
  const messages = body.messages.map((message, i) => {
    const role = ROLE_FOR_TEMPLATE[message.role];
    if (!role)
      throw invalidRequest(
        `Unknown role '${message.role}' in messages[${i}]; expected one of ${Object.keys(ROLE_FOR_TEMPLATE).join(', ')}.`,
        `messages[${i}].role`,
      );
    return { role, content: messageText(message, i) };
  });
  if (!stack.tokenizer.hasChatTemplate) {
    throw invalidRequest(
      `The model \`${body.model}\` has no chat template: start the server with --chat-template FILE, or use /v1/completions.`,
      'messages',
      'chat_template_missing',
    );
  }
  checkPromptChars(
    stack,
    messages.reduce((sum, m) => sum + m.content.length, 0),
    'messages',
  );
  let rendered: string;
  try {
    rendered = stack.tokenizer.applyChatTemplate(messages, true);
  } catch (error) {
    if (error instanceof ChatTemplateRenderError) throw chatTemplateFailed(error.message);
    if (!(error instanceof ChatTemplateError)) throw error;
    throw invalidRequest(`The chat template rejected the messages: ${error.message}`, 'messages');
  }
  // The template writes BOS itself where the model wants one (as HF's apply_chat_template does).
  return stack.tokenizer.encode(rendered, false);
}

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
          return chatPromptTokens(stack, body);
        },
        requestedMaxTokens: (body) => body.max_completion_tokens ?? body.max_tokens ?? null,
        defaultMaxTokens: null,
        choice: (text, finishReason) => ({
          message: { role: 'assistant' as const, content: text },
          logprobs: null,
          finish_reason: finishReason,
        }),
        openingChoice: (index) => ({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        }),
        deltaChoice: (delta) => ({
          index: delta.index,
          delta: delta.text ? { content: delta.text } : {},
          logprobs: null,
          finish_reason: delta.finishReason,
        }),
      }),
  );
};
