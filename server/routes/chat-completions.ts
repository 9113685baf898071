import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ChatTemplateError } from '../../model/tokenizer.js';
import type { GenerationDelta } from '../../scheduler/request.js';
import { invalidRequest, notSupported } from '../api-error.js';
import { Generation, sendEventStream } from '../generation.js';
import { newRequestId } from '../request-id.js';
import { resolveAdapter, samplingParams } from '../sampling-params.js';
import {
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  type ChatMessage,
} from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
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
  let rendered: string;
  try {
    rendered = stack.tokenizer.applyChatTemplate(messages, true);
  } catch (error) {
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
  const format = body.response_format as { type?: unknown } | null | undefined;
  if (format != null && format.type !== 'text')
    throw notSupported('response_format', 'A response_format other than text');
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
    async (request, reply) => {
      const stack = app.loom.requireStack();
      const body = request.body;
      const adapter = resolveAdapter(stack, body.model);
      checkUnsupported(body);
      const prompt = chatPromptTokens(stack, body);
      const sampling = samplingParams(stack, body, {
        numPromptTokens: prompt.length,
        requestedMaxTokens: body.max_completion_tokens ?? body.max_tokens ?? null,
        defaultMaxTokens: null,
      });
      const id = newRequestId('chatcmpl');
      const created = Math.floor(Date.now() / 1000);
      const generation = await Generation.start(
        stack,
        { requestId: id, promptTokens: prompt, adapter, sampling },
        reply,
      );
      const head = { id, object: 'chat.completion' as const, created, model: body.model };

      if (!body.stream) {
        const choices = await generation.collect(sampling.n);
        return {
          ...head,
          choices: choices.map((c, index) => ({
            index,
            message: { role: 'assistant' as const, content: c.text },
            logprobs: null,
            finish_reason: c.finishReason,
          })),
          usage: generation.usage,
        };
      }
      const includeUsage = body.stream_options?.include_usage === true;
      const chunkHead = { ...head, object: 'chat.completion.chunk' };
      const chunk = (index: number, delta: object, finishReason: GenerationDelta['finishReason']) => ({
        ...chunkHead,
        choices: [{ index, delta, logprobs: null, finish_reason: finishReason }],
        ...(includeUsage ? { usage: null } : {}),
      });
      async function* events() {
        for (let index = 0; index < sampling.n; index++)
          yield chunk(index, { role: 'assistant', content: '' }, null);
        for await (const delta of generation.deltas()) {
          if (!delta.text && !delta.finishReason) continue;
          yield chunk(delta.index, delta.text ? { content: delta.text } : {}, delta.finishReason);
        }
        if (includeUsage) yield { ...chunkHead, choices: [], usage: generation.usage };
      }
      return sendEventStream(reply, app.loom, generation, events());
    },
  );
};
