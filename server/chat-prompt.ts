import { ChatTemplateError, ChatTemplateRenderError } from '../model/chat-template.js';
import { ApiError, echoed, invalidRequest, notSupported } from './api-error.js';
import { checkPromptChars } from './request-limits.js';
import type { ChatMessage } from './schemas/chat-request.js';
import type { ServingStack } from './serving-stack.js';

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

export interface ChatPromptOptions {
  /** Ends the prompt with the assistant's turn opening (default true, as for generation). */
  addGenerationPrompt?: boolean;
  /**
   * Lets the tokenizer add its special tokens (BOS) too. Off by default: the template writes BOS
   * itself where the model wants one (as HF's apply_chat_template does), so both would double it.
   */
  addSpecialTokens?: boolean;
}

/** Messages → the chat template's rendering → token ids, with every refusal as an OpenAI 400. */
export function chatPromptTokens(
  stack: ServingStack,
  model: string,
  chat: readonly ChatMessage[],
  options: ChatPromptOptions = {},
): number[] {
  if (chat.length === 0) throw invalidRequest("'messages' must not be empty.", 'messages');
  const messages = chat.map((message, i) => {
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
      `The model \`${echoed(model)}\` has no chat template: start the server with --chat-template FILE, or use /v1/completions.`,
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
    rendered = stack.tokenizer.applyChatTemplate(messages, options.addGenerationPrompt ?? true);
  } catch (error) {
    if (error instanceof ChatTemplateRenderError) throw chatTemplateFailed(error.message);
    if (!(error instanceof ChatTemplateError)) throw error;
    throw invalidRequest(`The chat template rejected the messages: ${error.message}`, 'messages');
  }
  return stack.tokenizer.encode(rendered, options.addSpecialTokens ?? false);
}
