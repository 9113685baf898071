import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { TokenLogprobs } from '../../kernels/logprobs.js';
import { invalidRequest } from '../api-error.js';
import { chatPrompt } from '../chat-generation.js';
import { type ChatOutputReader, chatOutputReader } from '../chat-output.js';
import { echoedText } from '../chat-prompt.js';
import { checkNumTop, checkPromptLogprobs, type LogprobsAsked } from '../logprobs.js';
import { reasoningEnd } from '../reasoning.js';
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from '../schemas/chat-request.js';
import { ChatCompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { type ChoiceView, serveCompletion } from '../serve-completion.js';
import type { ServerState } from '../server-state.js';
import type { ServingStack } from '../serving-stack.js';
import { appendCallDeltas, type ToolCall } from '../tool-call-stream.js';
import { type ToolCalling, toolFinishReason } from '../tool-calls.js';

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

type ChatMessageOut = {
  role: string;
  content: string | null;
  tool_calls?: ToolCall[];
  reasoning?: string;
  reasoning_content?: string;
};

/**
 * A reasoning model's reasoning as vLLM gives it (`reasoning`), and under its earlier name
 * (`reasoning_content`, DeepSeek's), which clients such as the Vercel AI SDK still read.
 */
function reasoningFields(reasoning: string) {
  return { reasoning, reasoning_content: reasoning };
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
    (request, reply) => serveChatCompletion(app.loom, reply, request.body),
  );
};

/** One chat completion request, validated, answered (POST /v1/chat/completions, and /invocations with messages). */
export function serveChatCompletion(state: ServerState, reply: FastifyReply, body: ChatCompletionRequest) {
  // vLLM's answer role: --response-role after a generation prompt, else the last message's (a continuation).
  const role =
    body.add_generation_prompt === false
      ? (body.messages.at(-1)?.role ?? 'assistant')
      : (state.settings.responseRole ?? 'assistant');
  let tools: ToolCalling | null = null;
  /** vLLM's echo: the final assistant message's text, put before each choice's. */
  let echo = '';
  const reasoningParser = state.settings.reasoningParser;
  const newReader = (streamed: boolean) => chatOutputReader(tools?.output ?? null, reasoningParser, streamed);
  /** Streaming: each choice's reader, reading its text as it comes. */
  const readers = new Map<number, ChatOutputReader | null>();
  const readerOf = (index: number) => {
    if (!readers.has(index)) readers.set(index, newReader(true));
    return readers.get(index) ?? null;
  };
  return serveCompletion(state, reply, body, {
    idPrefix: 'chatcmpl',
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    promptTokens: (stack, body) => {
      const prompt = chatPrompt(stack, state, body);
      tools = prompt.tools;
      if (body.echo) echo = echoedText(body.messages);
      return [prompt.tokens];
    },
    requestedMaxTokens: (body) => body.max_completion_tokens ?? body.max_tokens ?? null,
    guide: () => tools?.guide ?? null,
    guideAfter: reasoningEnd(reasoningParser),
    logprobsAsked,
    defaultMaxTokens: null,
    // One prompt: vLLM lists its scores once, beside the choices.
    responseFields: (first, view) => ({
      prompt_logprobs: view.promptLogprobs(first.promptLogprobs),
      // vLLM's return_token_ids: the prompt's ids beside the choices (their own in each).
      ...(view.returnTokenIds ? { prompt_token_ids: [...view.promptTokens] } : {}),
    }),
    chunkFields: (delta, view) => ({
      ...(delta.promptLogprobs ? { prompt_logprobs: view.promptLogprobs(delta.promptLogprobs) } : {}),
      ...(view.returnTokenIds && view.isFirstDelta ? { prompt_token_ids: [...view.promptTokens] } : {}),
    }),
    choice: (outcome, view) => {
      const output = tools?.output;
      const reader = newReader(false);
      let message: ChatMessageOut = { role, content: echo + outcome.text };
      let numCalls = 0;
      if (reader) {
        reader.push(outcome.text);
        reader.finish();
        numCalls = reader.calls.length;
        const content = reader.content === null ? null : echo + reader.content;
        // vLLM's parsers answer null beside calls when the model wrote nothing else.
        const nothingElse = output?.kind === 'auto' && numCalls > 0 && content === '';
        message = { role, content: nothingElse ? null : content };
        if (reader.reasoning !== null && body.include_reasoning !== false)
          Object.assign(message, reasoningFields(reader.reasoning));
        // vLLM's shape: the calls, and the text beside them (empty when the output was guided).
        if (output && (output.kind !== 'auto' || numCalls > 0)) message.tool_calls = [...reader.calls];
      }
      return {
        message,
        logprobs: chatLogprobs(view, outcome.tokenIds, outcome.logprobs),
        finish_reason: toolFinishReason(output, outcome.finishReason, numCalls),
        stop_reason: outcome.stop_reason,
        ...(view.returnTokenIds ? { token_ids: [...outcome.tokenIds] } : {}),
      };
    },
    openingChoice: (index) => ({
      index,
      // vLLM sends the echoed text in a chunk of its own right after this one; here it is in it.
      delta: { role, content: echo },
      logprobs: null,
      finish_reason: null,
    }),
    deltaChoice: (index, delta, stopReason, view) => {
      const output = tools?.output;
      const logprobs = chatLogprobs(view, delta.tokenIds, delta.logprobs);
      let content: object = delta.text ? { content: delta.text } : {};
      let numCalls = 0;
      const reader = readerOf(index);
      if (reader) {
        const read = reader.push(delta.text ?? '');
        if (delta.finishReason) {
          const last = reader.finish();
          read.reasoning += last.reasoning;
          read.content += last.content;
          appendCallDeltas(read.calls, last.calls);
        }
        numCalls = reader.calls.length;
        if (body.include_reasoning === false) read.reasoning = '';
        // What the readers hold back (whitespace, a tag or a call still coming) makes no chunk of its own.
        if (
          !read.reasoning &&
          !read.content &&
          read.calls.length === 0 &&
          !delta.finishReason &&
          !logprobs &&
          !delta.promptLogprobs &&
          !(view.returnTokenIds && delta.tokenIds.length > 0)
        )
          return null;
        content = {
          ...(read.reasoning ? reasoningFields(read.reasoning) : {}),
          ...(read.content ? { content: read.content } : {}),
          ...(read.calls.length > 0 ? { tool_calls: read.calls } : {}),
        };
      }
      return {
        index,
        delta: content,
        logprobs,
        finish_reason: toolFinishReason(output, delta.finishReason, numCalls),
        stop_reason: stopReason,
        ...(view.returnTokenIds ? { token_ids: [...delta.tokenIds] } : {}),
      };
    },
  });
}
