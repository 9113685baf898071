import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { TokenLogprobs } from '../../kernels/logprobs.js';
import { invalidRequest } from '../api-error.js';
import { chatPromptOptions, chatPromptTokens } from '../chat-prompt.js';
import { checkNumTop, checkPromptLogprobs, type LogprobsAsked } from '../logprobs.js';
import { truncatePrompt } from '../sampling-params.js';
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { type ChoiceView, serveCompletion } from '../serve-completion.js';
import type { ServingStack } from '../serving-stack.js';
import { type ToolCall, ToolCallReader } from '../tool-call-stream.js';
import { type ToolCalling, toolCalling } from '../tool-calls.js';

/**
 * A choice's finish reason with tool calls, as vLLM gives it (following OpenAI): "tool_calls"
 * when tool_choice "required" ended its array; a named function's call keeps "stop" (or "length").
 */
function finishReason(tools: ToolCalling | null, reason: string | null): string | null {
  return tools?.output?.kind === 'required' && reason === 'stop' ? 'tool_calls' : reason;
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
    (request, reply) => {
      const body = request.body;
      let tools: ToolCalling | null = null;
      /** Streaming: each choice's calls, read as its text comes. */
      const readers = new Map<number, ToolCallReader>();
      const readerOf = (index: number, output: NonNullable<ToolCalling['output']>) => {
        let reader = readers.get(index);
        if (!reader) {
          reader = new ToolCallReader(output);
          readers.set(index, reader);
        }
        return reader;
      };
      return serveCompletion(app.loom, reply, body, {
        idPrefix: 'chatcmpl',
        object: 'chat.completion',
        chunkObject: 'chat.completion.chunk',
        promptTokens: (stack, body) => {
          tools = toolCalling(body, stack.tokenizer);
          const tokens = chatPromptTokens(stack, body.model, body.messages, {
            ...chatPromptOptions(body),
            tools: tools.templateTools,
          });
          return [truncatePrompt(tokens, body.truncate_prompt_tokens, stack.maxModelLen)];
        },
        requestedMaxTokens: (body) => body.max_completion_tokens ?? body.max_tokens ?? null,
        guide: () => tools?.guide ?? null,
        logprobsAsked,
        defaultMaxTokens: null,
        // One prompt: vLLM lists its scores once, beside the choices.
        responseFields: (first, view) => ({ prompt_logprobs: view.promptLogprobs(first.promptLogprobs) }),
        chunkFields: (delta, view) =>
          delta.promptLogprobs ? { prompt_logprobs: view.promptLogprobs(delta.promptLogprobs) } : {},
        choice: (outcome, view) => {
          const output = tools?.output;
          let message: { role: 'assistant'; content: string; tool_calls?: ToolCall[] };
          if (output) {
            // vLLM's shape: the calls, and an empty text beside them.
            const reader = new ToolCallReader(output);
            reader.push(outcome.text);
            message = { role: 'assistant', content: '', tool_calls: [...reader.calls] };
          } else message = { role: 'assistant', content: outcome.text };
          return {
            message,
            logprobs: chatLogprobs(view, outcome.tokenIds, outcome.logprobs),
            finish_reason: finishReason(tools, outcome.finishReason),
            stop_reason: outcome.stop_reason,
          };
        },
        openingChoice: (index) => ({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        }),
        deltaChoice: (index, delta, stopReason, view) => {
          const output = tools?.output;
          const logprobs = chatLogprobs(view, delta.tokenIds, delta.logprobs);
          let content: object = delta.text ? { content: delta.text } : {};
          if (output) {
            const calls = delta.text ? readerOf(index, output).push(delta.text) : [];
            // Whitespace the calls hold back makes no chunk of its own.
            if (calls.length === 0 && !delta.finishReason && !logprobs && !delta.promptLogprobs) return null;
            content = calls.length > 0 ? { tool_calls: calls } : {};
          }
          return {
            index,
            delta: content,
            logprobs,
            finish_reason: finishReason(tools, delta.finishReason),
            stop_reason: stopReason,
          };
        },
      });
    },
  );
};
