import type { FastifyReply } from 'fastify';
import { chatPromptOptions, chatPromptTokens } from './chat-prompt.js';
import { Generation } from './generation.js';
import { reasoningEnd } from './reasoning.js';
import { requestChatTemplate } from './request-chat-template.js';
import {
  cacheSalt,
  requestPriority,
  resolveAdapter,
  samplingParams,
  truncatePrompt,
} from './sampling-params.js';
import type { ChatCompletionRequest } from './schemas/chat-request.js';
import type { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';
import { type ToolCalling, toolCalling } from './tool-calls.js';
import { parserReadsSpecialTokens } from './tool-parsers/parsers.js';

/**
 * A chat request's tool calling checked and its prompt rendered and tokenized, as chat
 * completions make them: the one path for chat completions, the Responses and Messages APIs
 * (read as chat requests) and Anthropic's count_tokens.
 */
export function chatPrompt(
  stack: ServingStack,
  state: ServerState,
  chat: ChatCompletionRequest,
): { tools: ToolCalling; tokens: number[] } {
  const { tokenizer, templateKwargs } = requestChatTemplate(stack.tokenizer, state.settings, chat);
  const tools = toolCalling(
    chat,
    tokenizer,
    state.settings.toolCallParser,
    state.settings.excludeToolsWhenToolChoiceNone ?? false,
  );
  // vLLM's hermes and mistral parsers ask for special tokens in the text: their calls start at one.
  if (tools.output?.kind === 'auto' && parserReadsSpecialTokens(tools.output.parser))
    chat.skip_special_tokens ??= false;
  const tokens = chatPromptTokens(stack, chat.model, chat.messages, {
    ...chatPromptOptions(chat),
    templateKwargs,
    tools: tools.templateTools,
    tokenizer,
    contentFormat: state.settings.chatTemplateContentFormat,
  });
  return { tools, tokens: truncatePrompt(tokens, chat.truncate_prompt_tokens, stack.maxModelLen) };
}

/** What a chat request another API was read as needs before it runs: its adapter, tools and prompt. */
export interface ChatRun {
  stack: ServingStack;
  adapter: string | null;
  tools: ToolCalling;
  tokens: number[];
}

export async function prepareChatRun(state: ServerState, chat: ChatCompletionRequest): Promise<ChatRun> {
  const stack = state.requireStack();
  const adapter = await resolveAdapter(stack, chat.model);
  return { stack, adapter, ...chatPrompt(stack, state, chat) };
}

/**
 * Starts the one generation (n = 1) of such a request: sampling as chat completions makes it,
 * its grammar after the reasoning with a --reasoning-parser; `detached` outlives its reply
 * (a background response).
 */
export function startChatRun(
  state: ServerState,
  reply: FastifyReply,
  chat: ChatCompletionRequest,
  run: ChatRun,
  options: { requestId: string; numTop: number | null; detached?: boolean },
): Promise<Generation> {
  const { stack, adapter, tools, tokens } = run;
  const sampling = {
    ...samplingParams(stack, chat, {
      numPromptTokens: tokens.length,
      requestedMaxTokens: chat.max_tokens ?? null,
      defaultMaxTokens: null,
      maxN: state.maxN,
      guide: tools.guide,
      guideAfter: reasoningEnd(state.settings.reasoningParser),
    }),
    logprobs: options.numTop,
    promptLogprobs: null,
  };
  const salt = cacheSalt(chat);
  return Generation.start(
    stack,
    state,
    {
      requestId: options.requestId,
      promptTokens: tokens,
      adapter,
      sampling,
      priority: requestPriority(stack, chat),
      ...(salt === undefined ? {} : { cacheSalt: salt }),
    },
    reply,
    state.requestMetrics,
    undefined,
    options.detached ?? false,
  );
}
