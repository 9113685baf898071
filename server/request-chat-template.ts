import { ChatTemplate } from '../model/chat-template.js';
import { ModelFormatError } from '../model/model-format-error.js';
import { invalidRequest } from './api-error.js';
import type { ServerSettings } from './server-state.js';
import type { ServingTokenizer } from './serving-stack.js';

/** Request templates kept parsed, least recently used first: a client sends one with every request. */
const MAX_PARSED_TEMPLATES = 16;
const parsedTemplates = new Map<string, ChatTemplate>();

function parsed(source: string): ChatTemplate {
  let template = parsedTemplates.get(source);
  if (template) parsedTemplates.delete(source);
  else {
    try {
      template = new ChatTemplate(source, 'chat_template');
    } catch (error) {
      if (!(error instanceof ModelFormatError)) throw error;
      throw invalidRequest(`The request's ${error.problem}.`, 'chat_template');
    }
    if (parsedTemplates.size >= MAX_PARSED_TEMPLATES)
      parsedTemplates.delete(parsedTemplates.keys().next().value as string);
  }
  parsedTemplates.set(source, template);
  return template;
}

/**
 * vLLM's per-request chat template: `chat_template`, or `chat_template_kwargs.chat_template` as HF's
 * apply_chat_template takes it, renders this request's messages in place of the model's template,
 * with --trust-request-chat-template; without the flag such a request is refused in vLLM's words.
 * Returns the tokenizer the prompt is rendered with (its tool, document and reasoning checks read
 * that template) and the template variables (--default-chat-template-kwargs under the request's),
 * `chat_template` no longer among them.
 */
export function requestChatTemplate(
  tokenizer: ServingTokenizer,
  settings: ServerSettings,
  body: {
    chat_template?: string | null;
    chat_template_kwargs?: Record<string, unknown> | null;
    reasoning_effort?: string | null;
    documents?: unknown;
  },
): { tokenizer: ServingTokenizer; templateKwargs: Record<string, unknown> } {
  // --default-chat-template-kwargs under the request's own: what a request sets, by its
  // chat_template_kwargs or by the fields that name template variables, wins.
  const defaults = { ...settings.defaultChatTemplateKwargs };
  if (body.reasoning_effort != null) delete defaults.reasoning_effort;
  if (body.documents != null) delete defaults.documents;
  const { chat_template: inKwargs, ...templateKwargs } = { ...defaults, ...body.chat_template_kwargs };
  const given = body.chat_template ?? null;
  if (inKwargs !== undefined && inKwargs !== null && typeof inKwargs !== 'string')
    throw invalidRequest('chat_template_kwargs.chat_template must be a string.', 'chat_template_kwargs');
  if (given !== null && inKwargs != null && given !== inKwargs)
    throw invalidRequest('chat_template and chat_template_kwargs.chat_template disagree.', 'chat_template');
  const source = given ?? (inKwargs as string | null | undefined) ?? null;
  if (source === null) return { tokenizer, templateKwargs };
  if (!settings.trustRequestChatTemplate)
    throw invalidRequest(
      'Chat template is passed with request, but --trust-request-chat-template is not set. Refused request with untrusted chat template.',
      'chat_template',
    );
  return { tokenizer: tokenizer.withChatTemplate(parsed(source)), templateKwargs };
}
