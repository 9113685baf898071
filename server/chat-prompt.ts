import {
  type ChatContentFormat,
  ChatTemplateError,
  ChatTemplateRenderError,
  type ChatMessage as TemplateMessage,
} from '../model/chat-template.js';
import { ApiError, echoed, invalidRequest, notSupported } from './api-error.js';
import { checkPromptChars } from './request-limits.js';
import { type ChatMessage, NON_TEXT_PART_FIELDS } from './schemas/chat-request.js';
import type { ServingStack, ServingTokenizer } from './serving-stack.js';

/** OpenAI's newer `developer` role is what templates know as `system`. */
const ROLE_FOR_TEMPLATE: Record<string, string> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
  tool: 'tool',
};

/** Content as the template sees it as a string: the text parts joined by newlines (as vLLM joins them). */
function messageText(message: ChatMessage, index: number): string {
  return messageParts(message, index).join('\n');
}

/** A message's text parts, checked: a string content is one part, a tool-calls-only turn none. */
function messageParts(message: ChatMessage, index: number): string[] {
  const param = `messages[${index}].content`;
  // An assistant turn that only called tools has no text (OpenAI sends null).
  if (message.content === null && message.role === 'assistant' && message.tool_calls?.length) return [];
  if (message.content === null) throw invalidRequest(`'${param}' must not be null.`, param);
  if (typeof message.content === 'string') return [message.content];
  return message.content.map((part, p) => {
    if (part.type !== 'text')
      throw notSupported(`${param}[${p}].type`, `Content of type "${echoed(part.type)}"`);
    for (const field of NON_TEXT_PART_FIELDS) {
      if (part[field] !== undefined)
        throw invalidRequest(
          `'${param}[${p}].${field}' does not belong in a content part of type "text".`,
          `${param}[${p}].${field}`,
        );
    }
    if (part.text === undefined)
      throw invalidRequest(`Missing required parameter '${param}[${p}].text'.`, `${param}[${p}].text`);
    return part.text;
  });
}

/**
 * vLLM's chat `echo`: the text an answer starts with, the final message's when it is the
 * assistant's (a prefilled answer the model continues), else nothing.
 */
export function echoedText(chat: readonly ChatMessage[]): string {
  const last = chat.length - 1;
  return last >= 0 && chat[last].role === 'assistant' ? messageText(chat[last], last) : '';
}

/**
 * A message's tool-calling fields as the template gets them: an assistant turn's calls with their
 * arguments parsed (HF's templates take them as objects; vLLM parses them so too), a tool
 * message's tool_call_id. Each only where it belongs, and only with a template that reads it.
 */
function toolFields(
  message: ChatMessage,
  index: number,
  tokenizer: ServingStack['tokenizer'],
  /** The request has tools: the template is the model's "tool_use" one where it has one. */
  withTools: boolean,
): Pick<TemplateMessage, 'tool_calls' | 'tool_call_id'> {
  const at = `messages[${index}]`;
  if (message.function_call != null)
    throw notSupported(
      `${at}.function_call`,
      "'function_call' in a message (OpenAI's deprecated function calling; use tool_calls)",
    );
  const out: Pick<TemplateMessage, 'tool_calls' | 'tool_call_id'> = {};
  if (message.tool_calls?.length) {
    if (message.role !== 'assistant')
      throw invalidRequest(`'${at}.tool_calls' belongs in an assistant message only.`, `${at}.tool_calls`);
    if (!tokenizer.chatTemplateReads('tool_calls', withTools))
      throw invalidRequest(
        `This model's chat template does not render an assistant message's tool_calls, so the model would never see them (${at}.tool_calls): start the server with a --chat-template that writes them.`,
        `${at}.tool_calls`,
        'unsupported_parameter',
      );
    out.tool_calls = message.tool_calls.map((call, c) => {
      let args: unknown = {};
      if (call.function.arguments !== '') {
        try {
          args = JSON.parse(call.function.arguments);
        } catch {
          throw invalidRequest(
            `'${at}.tool_calls[${c}].function.arguments' is not JSON.`,
            `${at}.tool_calls[${c}].function.arguments`,
          );
        }
      }
      return { id: call.id, type: 'function', function: { name: call.function.name, arguments: args } };
    });
  }
  if (message.tool_call_id != null) {
    if (message.role !== 'tool')
      throw invalidRequest(`'${at}.tool_call_id' belongs in a tool message only.`, `${at}.tool_call_id`);
    out.tool_call_id = message.tool_call_id;
  } else if (message.role === 'tool')
    throw invalidRequest(`Missing required parameter '${at}.tool_call_id'.`, `${at}.tool_call_id`);
  return out;
}

/**
 * Every message costs the template at least its role's markup, and a content part is text or
 * nothing: a conversation with more messages, or more content parts, than the context has tokens
 * can never fit, and is refused before the template walks it.
 */
function checkConversationSize(stack: ServingStack, chat: readonly ChatMessage[]): void {
  const limit = stack.maxModelLen;
  if (chat.length > limit)
    throw invalidRequest(
      `'messages' has ${chat.length} messages, more than this model's maximum context length of ${limit} tokens can hold.`,
      'messages',
      'context_length_exceeded',
    );
  const numParts = chat.reduce((sum, m) => sum + (Array.isArray(m.content) ? m.content.length : 0), 0);
  if (numParts > limit)
    throw invalidRequest(
      `The messages have ${numParts} content parts in all, more than this model's maximum context length of ${limit} tokens can hold.`,
      'messages',
      'context_length_exceeded',
    );
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

export interface ChatPromptOptions {
  /** Ends the prompt with the assistant's turn opening (default true, as for generation). */
  addGenerationPrompt?: boolean;
  /**
   * Lets the tokenizer add its special tokens (BOS) too. Off by default: the template writes BOS
   * itself where the model wants one (as HF's apply_chat_template does), so both would double it.
   */
  addSpecialTokens?: boolean;
  /**
   * Leaves the final message open, so the model continues it (a prefilled answer): the rendering
   * is cut right after that message's text, as HF's apply_chat_template(continue_final_message).
   * Not with addGenerationPrompt.
   */
  continueFinalMessage?: boolean;
  /** More variables for the template (vLLM's chat_template_kwargs, e.g. a model's enable_thinking). */
  templateKwargs?: Readonly<Record<string, unknown>>;
  /** OpenAI's reasoning_effort, for a template that reads it (gpt-oss's do). */
  reasoningEffort?: string | null;
  /** The request's tools, as the template's `tools` (server/tool-calls.ts checked them). */
  tools?: readonly unknown[] | null;
  /** vLLM's documents: retrieved texts, as the template's `documents` (RAG templates read them). */
  documents?: ReadonlyArray<Readonly<Record<string, string>>> | null;
  /**
   * How content reaches the template (--chat-template-content-format): "auto" (default) as the
   * template reads it, "string", or "openai" (the list of text parts).
   */
  contentFormat?: ChatContentFormat;
  /**
   * The tokenizer whose chat template renders: a request's own template's view of the model's
   * (server/request-chat-template.ts); the stack's by default.
   */
  tokenizer?: ServingTokenizer;
}

/** The chat options of a request body (chat completions, /tokenize's chat form), vLLM's defaults. */
export function chatPromptOptions(body: {
  add_generation_prompt?: boolean | null;
  continue_final_message?: boolean | null;
  add_special_tokens?: boolean | null;
  chat_template_kwargs?: Record<string, unknown> | null;
  reasoning_effort?: string | null;
  documents?: Array<Record<string, string>> | null;
}): ChatPromptOptions {
  const continueFinalMessage = body.continue_final_message ?? false;
  const addGenerationPrompt = body.add_generation_prompt ?? !continueFinalMessage;
  if (continueFinalMessage && addGenerationPrompt)
    throw invalidRequest(
      'Cannot set both `continue_final_message` and `add_generation_prompt` to True.',
      'continue_final_message',
    );
  return {
    addGenerationPrompt,
    continueFinalMessage,
    addSpecialTokens: body.add_special_tokens ?? false,
    templateKwargs: body.chat_template_kwargs ?? {},
    reasoningEffort: body.reasoning_effort ?? null,
    documents: body.documents ?? null,
  };
}

/** The rendering up to the end of the final message's text (HF's continue_final_message), or a 400. */
function openFinalMessage(rendered: string, final: string): string {
  for (const text of [final, final.trim()]) {
    const at = text ? rendered.lastIndexOf(text) : -1;
    if (at >= 0) return rendered.slice(0, at + text.length);
  }
  throw invalidRequest(
    'continue_final_message is set but the final message does not appear in the chat after applying the chat template.',
    'continue_final_message',
  );
}

/** Messages → the chat template's rendering → token ids, with every refusal as an OpenAI 400. */
export function chatPromptTokens(
  stack: ServingStack,
  model: string,
  chat: readonly ChatMessage[],
  options: ChatPromptOptions = {},
): number[] {
  const tokenizer = options.tokenizer ?? stack.tokenizer;
  const withTools = (options.tools ?? null) !== null;
  if (chat.length === 0) throw invalidRequest("'messages' must not be empty.", 'messages');
  checkConversationSize(stack, chat);
  const parts = chat.map((message, i) => messageParts(message, i));
  const messages = chat.map((message, i) => {
    const role = ROLE_FOR_TEMPLATE[message.role];
    if (!role)
      throw invalidRequest(
        `Unknown role '${message.role}' in messages[${i}]; expected one of ${Object.keys(ROLE_FOR_TEMPLATE).join(', ')}.`,
        `messages[${i}].role`,
      );
    const out: TemplateMessage = {
      role,
      content: parts[i].join('\n'),
      ...toolFields(message, i, tokenizer, withTools),
    };
    if (message.name !== undefined) out.name = message.name;
    const reasoning = message.reasoning ?? message.reasoning_content;
    if (reasoning != null) {
      if (message.role !== 'assistant')
        throw invalidRequest(
          `'messages[${i}].reasoning' belongs in an assistant message only.`,
          `messages[${i}].reasoning`,
        );
      out.reasoning = reasoning;
      out.reasoning_content = reasoning;
    }
    return out;
  });
  if (!tokenizer.hasChatTemplate) {
    throw invalidRequest(
      `The model \`${echoed(model)}\` has no chat template: start the server with --chat-template FILE, or use /v1/completions.`,
      'messages',
      'chat_template_missing',
    );
  }
  // A template may write each message's name too (the ones that use it do): it counts as prompt
  // text, as the documents do.
  const documents = options.documents ?? null;
  const documentChars = (documents ?? []).reduce(
    (sum, d) => sum + Object.entries(d).reduce((n, [k, v]) => n + k.length + v.length, 0),
    0,
  );
  checkPromptChars(
    stack,
    messages.reduce((sum, m) => sum + (m.content as string).length + (m.name?.length ?? 0), documentChars),
    'messages',
  );
  let kwargs = options.templateKwargs;
  const effort = options.reasoningEffort ?? null;
  if (effort !== null) {
    // vLLM gives it to the template; one that never reads it would drop it without a word.
    if (!tokenizer.chatTemplateReads('reasoning_effort', withTools))
      throw notSupported(
        'reasoning_effort',
        'reasoning_effort with this model (its chat template does not read `reasoning_effort`; a --chat-template that does, or chat_template_kwargs the template reads, may say it)',
      );
    const given = kwargs?.reasoning_effort;
    if (given !== undefined && given !== effort)
      throw invalidRequest(
        'reasoning_effort and chat_template_kwargs.reasoning_effort disagree.',
        'reasoning_effort',
      );
    kwargs = { ...kwargs, reasoning_effort: effort };
  }
  if (documents !== null) {
    if (!tokenizer.chatTemplateReads('documents', withTools))
      throw notSupported(
        'documents',
        'documents with this model (its chat template does not read `documents`; a --chat-template that does may use them)',
      );
    if (kwargs?.documents !== undefined && JSON.stringify(kwargs.documents) !== JSON.stringify(documents))
      throw invalidRequest('documents and chat_template_kwargs.documents disagree.', 'documents');
    kwargs = { ...kwargs, documents };
  }
  const format =
    (options.contentFormat ?? 'auto') === 'auto'
      ? tokenizer.chatTemplateContentFormat(withTools)
      : (options.contentFormat as 'string' | 'openai');
  // vLLM's "openai" format: every content as its list of text parts (a string is one part).
  const templateMessages =
    format === 'openai'
      ? messages.map((m, i) => ({ ...m, content: parts[i].map((text) => ({ type: 'text' as const, text })) }))
      : messages;
  let rendered: string;
  try {
    rendered = tokenizer.applyChatTemplate(
      templateMessages,
      options.addGenerationPrompt ?? true,
      kwargs,
      options.tools ?? null,
    );
  } catch (error) {
    if (error instanceof ChatTemplateRenderError) {
      // A request's own template that fails is the request's fault, not the server's files'.
      if (tokenizer !== stack.tokenizer)
        throw invalidRequest(
          `The request's chat_template failed to render: ${error.message}`,
          'chat_template',
        );
      throw chatTemplateFailed(error.message);
    }
    if (!(error instanceof ChatTemplateError)) throw error;
    throw invalidRequest(`The chat template rejected the messages: ${error.message}`, 'messages');
  }
  if (options.continueFinalMessage) {
    // HF looks for the final message's last text part where the template was given parts.
    const final = parts[parts.length - 1];
    rendered = openFinalMessage(rendered, format === 'openai' ? (final.at(-1) ?? '') : final.join('\n'));
  }
  return tokenizer.encode(rendered, options.addSpecialTokens ?? false);
}
