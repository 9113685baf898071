import { echoed, invalidRequest, notSupported } from './api-error.js';
import type { ChatCompletionRequest, ChatMessage, FunctionTool } from './schemas/chat-request.js';
import type {
  AnthropicMessage,
  AnthropicTool,
  ContentBlock,
  CountTokensRequest,
  MessagesRequest,
} from './schemas/messages-request.js';

/**
 * An Anthropic Messages request as the chat completion it asks for, as vLLM converts it: the
 * system prompt first, each message's text blocks its content, an assistant's tool_use blocks
 * its tool_calls, a user's tool_result blocks tool messages before its text; tools with their
 * input_schema as chat's functions, tool_choice auto/any/none/tool as auto/required/none/named,
 * output_format (structured outputs) as response_format json_schema.
 * Images, documents, thinking and Anthropic's server tools are a 400 naming them.
 */
export function chatRequestOfMessages(
  body: MessagesRequest | CountTokensRequest,
  /** A --reasoning-parser is set: the model reasons on its own, and its reasoning comes as thinking blocks. */
  reasons = false,
): ChatCompletionRequest {
  const budget = thinkingBudget(body, reasons);
  if (body.mcp_servers != null) throw notSupported('mcp_servers', 'mcp_servers (Loom runs no tools)');
  const messages: ChatMessage[] = [];
  const system = systemText(body);
  if (system) messages.push({ role: 'system', content: system });
  for (const [i, message] of body.messages.entries()) addMessage(messages, message, `messages[${i}]`);
  const chat: ChatCompletionRequest = { model: body.model, messages };
  if (budget !== null) chat.thinking_token_budget = budget;
  if (body.tools?.length) {
    chat.tools = body.tools.map((tool, i) => functionTool(tool, `tools[${i}]`));
    // vLLM's default with tools, as Anthropic's.
    chat.tool_choice = 'auto';
  }
  const choice = body.tool_choice;
  if (choice) {
    const choices: Record<string, ChatCompletionRequest['tool_choice']> = {
      auto: 'auto',
      any: 'required',
      none: 'none',
    };
    if (choice.type === 'tool') {
      if (choice.name === undefined)
        throw invalidRequest('tool_choice of type "tool" needs a name.', 'tool_choice.name');
      chat.tool_choice = { type: 'function', function: { name: choice.name } };
    } else if (choice.type in choices) chat.tool_choice = choices[choice.type];
    else
      throw invalidRequest(
        `tool_choice.type must be "auto", "any", "tool" or "none", got "${echoed(choice.type)}".`,
        'tool_choice.type',
      );
    if (choice.disable_parallel_tool_use === true) chat.parallel_tool_calls = false;
  }
  if (!('max_tokens' in body)) return chat;
  if (body.container != null) throw notSupported('container', 'container (Loom runs no code)');
  if (body.service_tier != null && !['auto', 'standard_only'].includes(body.service_tier))
    throw notSupported('service_tier', `service_tier "${echoed(body.service_tier)}" (Loom has one tier)`);
  const format = body.output_format;
  if (format) {
    if (format.type !== 'json_schema')
      throw notSupported(
        'output_format.type',
        `output_format of type ${echoed(format.type)} (Loom takes "json_schema")`,
      );
    if (format.schema === undefined)
      throw invalidRequest(
        'output_format.schema is required for type "json_schema".',
        'output_format.schema',
      );
    chat.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema } };
  }
  return {
    ...chat,
    max_tokens: body.max_tokens,
    stop: body.stop_sequences,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
    user: body.metadata?.user_id,
  };
}

/**
 * Anthropic's `thinking`: "enabled" holds a reasoning model's reasoning to its budget_tokens
 * (vLLM's thinking_token_budget, which needs a --reasoning-parser); "disabled" asks nothing.
 */
function thinkingBudget(body: MessagesRequest | CountTokensRequest, reasons: boolean): number | null {
  const thinking = body.thinking as Record<string, unknown> | null | undefined;
  if (thinking == null || thinking.type === 'disabled') return null;
  if (thinking.type !== 'enabled')
    throw notSupported(
      'thinking.type',
      `thinking of type ${echoed(String(thinking.type))} (Loom takes "enabled" and "disabled")`,
    );
  if (!reasons)
    throw notSupported('thinking', 'thinking (the server has no --reasoning-parser for the served model)');
  const unknown = Object.keys(thinking).find((k) => k !== 'type' && k !== 'budget_tokens');
  if (unknown !== undefined)
    throw invalidRequest(
      `Unknown field thinking.${echoed(unknown)}.`,
      `thinking.${unknown}`,
      'unknown_parameter',
    );
  const budget = thinking.budget_tokens;
  // Anthropic's own bounds: at least 1,024, and below max_tokens (thinking counts toward it).
  if (typeof budget !== 'number' || !Number.isInteger(budget) || budget < 1024)
    throw invalidRequest(
      'thinking.budget_tokens must be an integer of at least 1024.',
      'thinking.budget_tokens',
    );
  if ('max_tokens' in body && budget >= body.max_tokens)
    throw invalidRequest('thinking.budget_tokens must be less than max_tokens.', 'thinking.budget_tokens');
  return budget;
}

/** The system prompt: a string, or its text blocks joined (vLLM joins them with nothing). */
function systemText(body: MessagesRequest | CountTokensRequest): string {
  if (body.system === undefined) return '';
  if (typeof body.system === 'string') return body.system;
  return body.system
    .map((block, i) => {
      if (block.type !== 'text' || block.text === undefined)
        throw notSupported(`system[${i}].type`, `A system block of type ${echoed(block.type)}`);
      return block.text;
    })
    .join('');
}

function addMessage(messages: ChatMessage[], message: AnthropicMessage, at: string): void {
  if (message.role !== 'user' && message.role !== 'assistant')
    throw invalidRequest(
      `${at}.role must be "user" or "assistant", got "${echoed(message.role)}" (the system prompt goes in \`system\`).`,
      `${at}.role`,
    );
  if (typeof message.content === 'string') {
    messages.push({ role: message.role, content: message.content });
    return;
  }
  const texts: string[] = [];
  const thoughts: string[] = [];
  const calls: NonNullable<ChatMessage['tool_calls']> = [];
  for (const [j, block] of message.content.entries()) {
    const blockAt = `${at}.content[${j}]`;
    if (block.type === 'text') {
      if (block.text === undefined) throw invalidRequest(`${blockAt} has no text.`, `${blockAt}.text`);
      texts.push(block.text);
    } else if (block.type === 'tool_use' && message.role === 'assistant') {
      if (block.id === undefined || block.name === undefined)
        throw invalidRequest(`${blockAt}: a tool_use block needs an id and a name.`, blockAt);
      calls.push({
        id: block.id,
        type: 'function',
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    } else if (block.type === 'thinking' && message.role === 'assistant') {
      // An earlier answer's reasoning (--reasoning-parser gave it), for the template as chat's `reasoning`.
      if (typeof block.thinking !== 'string')
        throw invalidRequest(`${blockAt} has no thinking.`, `${blockAt}.thinking`);
      thoughts.push(block.thinking);
    } else if (block.type === 'redacted_thinking' && message.role === 'assistant') {
      // Anthropic's encrypted reasoning: no model but Claude reads it, so no template is given it (as vLLM).
    } else if (block.type === 'tool_result' && message.role === 'user') {
      // A tool's answer is a tool message of its own, before the user's text (as vLLM orders them).
      messages.push(toolMessage(block, blockAt));
    } else
      throw notSupported(`${blockAt}.type`, `A ${message.role} content block of type ${echoed(block.type)}`);
  }
  // Text blocks join as chat's text parts do.
  const text = texts.join('\n');
  const reasoning = thoughts.length > 0 ? { reasoning: thoughts.join('') } : {};
  if (calls.length > 0)
    messages.push({ role: 'assistant', content: text || null, tool_calls: calls, ...reasoning });
  else if (texts.length > 0 || thoughts.length > 0)
    messages.push({ role: message.role, content: text, ...reasoning });
}

/** A tool_result block as the tool message it is; is_error marks its text as the tool's error. */
function toolMessage(block: ContentBlock, at: string): ChatMessage {
  if (block.tool_use_id === undefined)
    throw invalidRequest(`${at}: a tool_result block needs its tool_use_id.`, `${at}.tool_use_id`);
  let text = '';
  if (typeof block.content === 'string') text = block.content;
  else if (block.content !== undefined)
    text = block.content
      .map((part, k) => {
        const { type, text } = (part ?? {}) as { type?: unknown; text?: unknown };
        if (type !== 'text' || typeof text !== 'string')
          throw notSupported(
            `${at}.content[${k}].type`,
            `A tool_result part of type ${echoed(String(type))}`,
          );
        return text;
      })
      .join('\n');
  return {
    role: 'tool',
    tool_call_id: block.tool_use_id,
    content: block.is_error === true ? `Error: ${text}` : text,
  };
}

function functionTool(tool: AnthropicTool, at: string): FunctionTool {
  if (tool.type !== undefined && tool.type !== 'custom')
    throw notSupported(
      `${at}.type`,
      `Tool of type ${echoed(tool.type)} (Loom runs no server tools; custom tools only)`,
    );
  const known = new Set(['name', 'description', 'input_schema', 'type', 'cache_control', 'strict']);
  const unknown = Object.keys(tool).find((k) => !known.has(k));
  if (unknown !== undefined)
    throw invalidRequest(
      `Unknown field ${at}.${echoed(unknown)} of a tool.`,
      `${at}.${unknown}`,
      'unknown_parameter',
    );
  return {
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      ...(tool.input_schema === undefined ? {} : { parameters: tool.input_schema }),
      // Anthropic's strict tools: their calls follow the schema, as chat's strict functions do.
      ...(tool.strict == null ? {} : { strict: tool.strict }),
    },
  };
}
