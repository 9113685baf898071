import { echoed, invalidRequest, notSupported } from './api-error.js';
import { randomHex } from './request-id.js';
import type { ChatCompletionRequest, ChatMessage, FunctionTool } from './schemas/chat-request.js';
import type { InputItem, ResponsesRequest, ResponsesTool } from './schemas/responses-request.js';

/** `include` entries Loom answers: the sampled tokens' log-probabilities in each output_text part. */
const OUTPUT_LOGPROBS = 'message.output_text.logprobs';

/**
 * A Responses API request as the chat completion it asks for (vLLM serves /v1/responses through its
 * chat machinery the same way): `instructions` become the first system message, `input` the
 * messages (an earlier turn's function calls an assistant message's tool_calls, their outputs
 * tool messages), flat function tools chat's nested ones, `text.format` a response_format. What
 * the Responses API has and Loom does not (stored responses, background runs, hosted tools,
 * reasoning summaries, images and files) is a 400 that names it.
 */
export function chatRequestOf(
  body: ResponsesRequest,
  /** The conversation previous_response_id continues (its response's last); empty for none. */
  history: readonly ChatMessage[] = [],
): { chat: ChatCompletionRequest; conversation: ChatMessage[] } {
  refuseUnsupported(body);
  const conversation: ChatMessage[] = history.map((m) => ({ ...m }));
  if (typeof body.input === 'string') conversation.push({ role: 'user', content: body.input });
  else for (const [i, item] of body.input.entries()) addItem(conversation, item, `input[${i}]`);
  if (conversation.length === history.length) throw invalidRequest('`input` must not be empty.', 'input');
  // Instructions lead this request's messages only: a later turn gives its own (OpenAI's rule).
  const messages: ChatMessage[] =
    body.instructions != null
      ? [{ role: 'system', content: body.instructions }, ...conversation]
      : conversation;
  const include = body.include ?? [];
  const logprobs = include.includes(OUTPUT_LOGPROBS);
  if (!logprobs && (body.top_logprobs ?? 0) > 0)
    throw invalidRequest(`top_logprobs needs include: ["${OUTPUT_LOGPROBS}"].`, 'top_logprobs');
  const chat: ChatCompletionRequest = {
    model: body.model,
    messages,
    max_tokens: body.max_output_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
    seed: body.seed,
    stop: body.stop,
    repetition_penalty: body.repetition_penalty,
    logit_bias: body.logit_bias,
    ignore_eos: body.ignore_eos,
    skip_special_tokens: body.skip_special_tokens,
    include_stop_str_in_output: body.include_stop_str_in_output,
    priority: body.priority,
    cache_salt: body.cache_salt,
    user: body.user,
    structured_outputs: body.structured_outputs,
    logprobs,
    top_logprobs: logprobs ? (body.top_logprobs ?? 0) : null,
    parallel_tool_calls: body.parallel_tool_calls,
    // vLLM's truncation "auto": the prompt's last max_model_len tokens.
    truncate_prompt_tokens: body.truncation === 'auto' ? -1 : null,
  };
  const effort = reasoningEffort(body.reasoning);
  if (effort !== null) chat.reasoning_effort = effort;
  if (body.tools?.length) chat.tools = body.tools.map((tool, i) => functionTool(tool, `tools[${i}]`));
  if (body.tool_choice != null) chat.tool_choice = toolChoice(body.tool_choice);
  const format = body.text?.format;
  if (format && format.type !== 'text') {
    if (body.structured_outputs != null)
      throw invalidRequest('Cannot specify both structured_outputs and text.format.', 'text.format');
    if (format.type === 'json_object') chat.response_format = { type: 'json_object' };
    else if (format.type === 'json_schema') {
      if (format.schema === undefined || format.name === undefined)
        throw invalidRequest('text.format of type json_schema needs a name and a schema.', 'text.format');
      chat.response_format = {
        type: 'json_schema',
        json_schema: { name: format.name, schema: format.schema, strict: format.strict ?? null },
      };
    } else
      throw invalidRequest(
        `text.format.type must be "text", "json_schema" or "json_object", got "${echoed(format.type)}".`,
        'text.format.type',
      );
  }
  return { chat, conversation };
}

/**
 * `reasoning`: its effort reaches the chat template as chat's reasoning_effort does (vLLM's); Loom
 * writes no reasoning summaries, so asking for one is refused.
 */
function reasoningEffort(reasoning: unknown): 'low' | 'medium' | 'high' | null {
  if (reasoning == null) return null;
  if (typeof reasoning !== 'object' || Array.isArray(reasoning))
    throw invalidRequest('reasoning must be an object.', 'reasoning');
  const { effort, summary, generate_summary, ...rest } = reasoning as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined)
    throw invalidRequest(
      `Unknown field reasoning.${echoed(unknown)}.`,
      `reasoning.${unknown}`,
      'unknown_parameter',
    );
  if (summary != null || generate_summary != null)
    throw notSupported(
      summary != null ? 'reasoning.summary' : 'reasoning.generate_summary',
      'A reasoning summary (Loom gives the reasoning itself, with a --reasoning-parser, not a summary of it)',
    );
  if (effort == null) return null;
  if (effort !== 'low' && effort !== 'medium' && effort !== 'high')
    throw notSupported(
      'reasoning.effort',
      `reasoning.effort ${echoed(String(effort))} (Loom takes "low", "medium" and "high")`,
    );
  return effort;
}

function refuseUnsupported(body: ResponsesRequest): void {
  for (const entry of body.include ?? [])
    if (entry !== OUTPUT_LOGPROBS)
      throw notSupported('include', `include "${echoed(entry)}" (Loom answers "${OUTPUT_LOGPROBS}" only)`);
  if (body.conversation != null)
    throw notSupported('conversation', 'conversation (Loom keeps no conversations)');
  if (body.prompt != null) throw notSupported('prompt', 'prompt template');
  if (body.max_tool_calls != null)
    throw notSupported('max_tool_calls', 'max_tool_calls (it bounds hosted tools, which Loom does not run)');
  if (body.text?.verbosity != null) throw notSupported('text.verbosity', 'text.verbosity');
  if (body.stream_options?.include_obfuscation === true)
    throw notSupported('stream_options.include_obfuscation', 'include_obfuscation: true');
  if (body.service_tier != null && !['auto', 'default'].includes(body.service_tier))
    throw notSupported('service_tier', `service_tier "${echoed(body.service_tier)}" (Loom has one tier)`);
  if (body.truncation != null && body.truncation !== 'auto' && body.truncation !== 'disabled')
    throw invalidRequest(
      `truncation must be "auto" or "disabled", got "${echoed(body.truncation)}".`,
      'truncation',
    );
}

const MESSAGE_ROLES = new Set(['user', 'system', 'developer', 'assistant']);

/** One input item added to the chat: a message, an earlier call, or a call's output. */
function addItem(messages: ChatMessage[], item: InputItem, at: string): void {
  const type = item.type ?? 'message';
  if (type === 'message') {
    if (item.role === undefined || !MESSAGE_ROLES.has(item.role))
      throw invalidRequest(
        `${at}.role must be one of user, system, developer or assistant, got ${item.role === undefined ? 'none' : `"${echoed(item.role)}"`}.`,
        `${at}.role`,
      );
    if (item.content === undefined)
      throw invalidRequest(`${at} is a message without content.`, `${at}.content`);
    const content = messageText(item.content, `${at}.content`);
    // The text of a turn whose reasoning came first joins it.
    const last = messages[messages.length - 1];
    if (item.role === 'assistant' && last?.role === 'assistant' && last.content === null && !last.tool_calls)
      last.content = content;
    else messages.push({ role: item.role, content });
    return;
  }
  if (type === 'function_call') {
    if (item.call_id === undefined || item.name === undefined || item.arguments === undefined)
      throw invalidRequest(`${at}: a function_call needs call_id, name and arguments.`, at);
    const call = {
      id: item.call_id,
      type: 'function' as const,
      function: { name: item.name, arguments: item.arguments },
    };
    // Calls of one turn follow one another (and the text before them): one assistant message holds them.
    const last = messages[messages.length - 1];
    if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
    else messages.push({ role: 'assistant', content: null, tool_calls: [call] });
    return;
  }
  if (type === 'reasoning') {
    // An earlier answer's reasoning item (--reasoning-parser made it): the reasoning of the assistant
    // turn it belongs to, which the message or calls after it join.
    // Its text, or where it has none (another server's item), its summary's.
    const summary = Array.isArray(item.summary)
      ? (item.summary as Array<{ type?: unknown; text?: unknown }>)
      : [];
    const parts =
      typeof item.content === 'string'
        ? [{ type: 'reasoning_text', text: item.content }]
        : (item.content ?? []);
    const reasoning =
      parts.length > 0
        ? parts.map((part, k) => {
            if (part.type !== 'reasoning_text' || part.text === undefined)
              throw notSupported(
                `${at}.content[${k}].type`,
                `Reasoning content of type ${echoed(part.type)}`,
              );
            return part.text;
          })
        : summary.map((part, k) => {
            if (part?.type !== 'summary_text' || typeof part.text !== 'string')
              throw notSupported(
                `${at}.summary[${k}].type`,
                `A reasoning summary part of type ${echoed(String(part?.type))}`,
              );
            return part.text;
          });
    if (item.encrypted_content != null)
      throw notSupported(
        `${at}.encrypted_content`,
        'Encrypted reasoning (Loom makes none and cannot read it)',
      );
    messages.push({ role: 'assistant', content: null, reasoning: reasoning.join('') });
    return;
  }
  if (type === 'function_call_output') {
    if (item.call_id === undefined || item.output === undefined)
      throw invalidRequest(`${at}: a function_call_output needs call_id and output.`, at);
    messages.push({
      role: 'tool',
      tool_call_id: item.call_id,
      content: messageText(item.output, `${at}.output`),
    });
    return;
  }
  throw notSupported(`${at}.type`, `Input item of type ${echoed(type)}`);
}

/** A message's text: a string, or its text parts joined as chat's are (other parts refused by type). */
function messageText(content: NonNullable<InputItem['content']>, at: string): string {
  if (typeof content === 'string') return content;
  return content
    .map((part, i) => {
      if (part.type !== 'input_text' && part.type !== 'output_text')
        throw notSupported(`${at}[${i}].type`, `Content of type ${echoed(part.type)}`);
      if (part.text === undefined) throw invalidRequest(`${at}[${i}] has no text.`, `${at}[${i}].text`);
      return part.text;
    })
    .join('\n');
}

/** A Responses function tool ({type, name, parameters, …}) as chat's ({type, function: {…}}). */
function functionTool(tool: ResponsesTool, at: string): FunctionTool {
  if (tool.type !== 'function')
    throw notSupported(
      `${at}.type`,
      `Tool of type ${echoed(tool.type)} (Loom runs no hosted tools; function tools only)`,
    );
  if (tool.name === undefined) throw invalidRequest(`${at}: a function tool needs a name.`, `${at}.name`);
  const known = new Set(['type', 'name', 'description', 'parameters', 'strict']);
  const unknown = Object.keys(tool).find((k) => !known.has(k));
  if (unknown !== undefined)
    throw invalidRequest(
      `Unknown field ${at}.${echoed(unknown)} of a function tool.`,
      `${at}.${unknown}`,
      'unknown_parameter',
    );
  // Only the fields the client gave, so the template renders the tool as chat's form of it renders.
  const fields = Object.fromEntries(Object.entries(tool).filter(([k]) => k !== 'type'));
  return { type: 'function', function: { ...fields, name: tool.name } };
}

/** tool_choice as chat's: the same strings, and {type: "function", name} for a named one. */
function toolChoice(choice: string | Record<string, unknown>): ChatCompletionRequest['tool_choice'] {
  if (typeof choice === 'string') return choice;
  if (choice.type === 'function' && typeof choice.name === 'string' && Object.keys(choice).length === 2)
    return { type: 'function', function: { name: choice.name } };
  throw notSupported(
    'tool_choice',
    `tool_choice ${echoed(JSON.stringify(choice))} (Loom takes "none", "auto", "required" or {"type": "function", "name": …})`,
  );
}

const ITEM_ID_PREFIXES: Record<string, string> = {
  message: 'msg',
  function_call: 'fc',
  function_call_output: 'fco',
  reasoning: 'rs',
};

/**
 * The request's input as the Responses API lists it back (GET /v1/responses/{id}/input_items):
 * each item with its type and an id (its own, or a new one), a message's text as a content part.
 */
export function listedInputItems(input: ResponsesRequest['input']): Array<Record<string, unknown>> {
  const items: InputItem[] = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
  return items.map((item) => {
    const type = item.type ?? 'message';
    const prefix = ITEM_ID_PREFIXES[type] ?? 'item';
    const listed: Record<string, unknown> = {
      ...item,
      type,
      id: item.id ?? `${prefix}_${randomHex()}`,
    };
    if (type === 'message') {
      if (typeof item.content === 'string')
        listed.content = [
          { type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content },
        ];
      listed.status ??= 'completed';
    }
    return listed;
  });
}
