import { type Grammar, GuideError } from '../structured/grammar-nodes.js';
import { compileJsonSchema, compileToolCallsGrammar } from '../structured/json-schema.js';
import { structuralTagGrammar } from '../structured/structural-tag.js';
import { echoed, invalidRequest, notSupported } from './api-error.js';
import type { ChatCompletionRequest, FunctionTool } from './schemas/chat-request.js';
import type { ServingTokenizer } from './serving-stack.js';
import { type ToolCall, ToolCallReader } from './tool-call-stream.js';
import type { AutoToolCallDelta } from './tool-parsers/auto-tool-call-reader.js';
import { autoToolCallReader, type ToolCallParserName } from './tool-parsers/parsers.js';
import { GUIDED_PARSERS, strictCallsTag } from './tool-parsers/strict-calls.js';

/** The arguments' schema of a function defined without `parameters`: it takes none. */
const NO_PARAMETERS = { type: 'object', properties: {} };

/** Guided output read back as tool calls (tool-call-stream.ts). */
export type GuidedToolCallOutput =
  /** tool_choice names a function: the whole output is that function's arguments. */
  | { kind: 'named'; name: string }
  /** tool_choice "required": the output is a JSON array of {"name", "parameters"} calls. */
  | { kind: 'required' };

/** How a choice's output is read back as tool calls. */
export type ToolCallOutput =
  | GuidedToolCallOutput
  /** tool_choice "auto": free text, calls in the model's own format read out of it (tool-parsers/). */
  | { kind: 'auto'; parser: ToolCallParserName; maxCalls: number };

/** A chat request's tool calling, checked: what the template gets and how decoding is guided. */
export interface ToolCalling {
  /** The tools as the chat template gets them (HF's `tools`), or null when there are none. */
  templateTools: FunctionTool[] | null;
  /** How the output becomes tool calls; null: it is the message's text ("none"). */
  output: ToolCallOutput | null;
  /** The grammar the output follows (vLLM guides named and required calls the same way), or null. */
  guide: { param: string; grammar: () => Grammar } | null;
}

/**
 * A request's tools as its chat template gets them (null when there are none), refused when two
 * share a name or the template never writes them (it would drop them without a word).
 */
export function checkedTools(
  tools: readonly FunctionTool[] | null | undefined,
  tokenizer: ServingTokenizer,
): FunctionTool[] | null {
  if (!tools?.length) return null;
  const names = new Set<string>();
  for (const [i, tool] of tools.entries()) {
    if (names.has(tool.function.name))
      throw invalidRequest(
        `tools[${i}]: a function named '${tool.function.name}' is defined twice.`,
        `tools[${i}].function.name`,
      );
    names.add(tool.function.name);
  }
  if (!tokenizer.chatTemplateReads('tools', true))
    throw invalidRequest(
      "This model's chat template does not render `tools`, so the model would never see them: start the server with a --chat-template that writes them.",
      'tools',
      'unsupported_parameter',
    );
  return [...tools];
}

/** parallel_tool_calls: false allows one call at most (OpenAI's default, true: any number). */
function maxCallsOf(body: ChatCompletionRequest): number {
  return body.parallel_tool_calls === false ? 1 : Number.POSITIVE_INFINITY;
}

/**
 * OpenAI's `tools`, `tool_choice` and `parallel_tool_calls` as vLLM serves them: "none" (the
 * default without tools) answers in text with the tools in the prompt (out of it with
 * --exclude-tools-when-tool-choice-none); a named function, or
 * "required", constrains the output to that function's arguments, or to a JSON array of calls,
 * and returns them as `tool_calls`. "auto" (the default with tools) lets the model write text and
 * reads calls in its own format out of it, with the --tool-call-parser the server was started
 * with (and --enable-auto-tool-choice, as vLLM asks); without them it is refused.
 */
export function toolCalling(
  body: ChatCompletionRequest,
  tokenizer: ServingTokenizer,
  /** --tool-call-parser, when --enable-auto-tool-choice is set too; else null ("auto" is refused). */
  parser: ToolCallParserName | null,
  /** --exclude-tools-when-tool-choice-none: "none" keeps the tools out of the prompt too. */
  excludeToolsWhenNone = false,
): ToolCalling {
  if (body.functions != null)
    throw notSupported('functions', "`functions` (OpenAI's deprecated function calling; use `tools`)");
  if (body.function_call != null)
    throw notSupported(
      'function_call',
      "`function_call` (OpenAI's deprecated function calling; use `tool_choice`)",
    );
  const tools = checkedTools(body.tools, tokenizer);
  const choice = body.tool_choice ?? (tools ? 'auto' : 'none');
  if (typeof choice === 'string' && !['none', 'auto', 'required'].includes(choice))
    throw invalidRequest(
      `tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}, got "${echoed(choice)}".`,
      'tool_choice',
    );
  if (!tools) {
    if (choice !== 'none')
      throw invalidRequest('When using `tool_choice`, `tools` must be set.', 'tool_choice');
    return { templateTools: null, output: null, guide: null };
  }
  const parameters = (i: number) => ({
    name: tools[i].function.name,
    parameters: tools[i].function.parameters ?? NO_PARAMETERS,
    param: `tools[${i}].function.parameters`,
  });
  if (choice === 'none')
    return { templateTools: excludeToolsWhenNone ? null : tools, output: null, guide: null };
  if (choice === 'auto') {
    if (!parser)
      throw invalidRequest(
        '"auto" tool choice (the default when tools are given) requires --enable-auto-tool-choice and --tool-call-parser to be set: ask for "required", a named function or "none", or start the server with them.',
        'tool_choice',
        'unsupported_parameter',
      );
    const maxCalls = maxCallsOf(body);
    const output: ToolCallOutput = { kind: 'auto', parser, maxCalls };
    const strict = tools.findIndex((t) => t.function.strict === true);
    if (strict < 0) return { templateTools: tools, output, guide: null };
    // A strict tool's calls follow its schema, as vLLM guides them: free text, and after each
    // opening tag a structural tag (structured/structural-tag.ts) holds the call to the format.
    const guided = tools.map((t, i) => ({
      name: t.function.name,
      // Other tools' calls keep the format, their arguments any object.
      arguments:
        t.function.strict === true
          ? parameters(i).parameters
          : { type: 'object', additionalProperties: true },
    }));
    const tag = strictCallsTag(parser, guided, maxCalls);
    if (!tag)
      throw notSupported(
        `tools[${strict}].function.strict`,
        `A strict tool with tool_choice "auto" and --tool-call-parser ${parser} (its calls can be guided with the ${GUIDED_PARSERS.join(' and ')} parsers; "required" or a named tool_choice guide them with any)`,
      );
    // Each schema is checked on its own first, so an error names its tool.
    tools.forEach((t, i) => {
      if (t.function.strict !== true) return;
      try {
        compileJsonSchema(parameters(i).parameters, parameters(i).param);
      } catch (err) {
        if (err instanceof GuideError) throw invalidRequest(err.message, err.param);
        throw err;
      }
    });
    return {
      templateTools: tools,
      output,
      guide: {
        param: 'tools',
        grammar: () => structuralTagGrammar(tag, 'tools'),
      },
    };
  }
  if (choice === 'required') {
    const maxCalls = maxCallsOf(body);
    return {
      templateTools: tools,
      output: { kind: 'required' },
      guide: {
        param: 'tool_choice',
        grammar: () =>
          compileToolCallsGrammar(
            tools.map((_, i) => parameters(i)),
            maxCalls,
          ),
      },
    };
  }
  const named = typeof choice === 'string' ? '' : choice.function.name;
  const at = tools.findIndex((t) => t.function.name === named);
  if (at < 0)
    throw invalidRequest(`Tool '${echoed(named)}' has not been passed in \`tools\`.`, 'tool_choice');
  const tool = parameters(at);
  return {
    templateTools: tools,
    output: { kind: 'named', name: tool.name },
    guide: { param: 'tool_choice', grammar: () => compileJsonSchema(tool.parameters, tool.param) },
  };
}

/** A choice's output read as a message while it comes: its text, and its tool calls. */
export interface MessageReader {
  push(text: string): AutoToolCallDelta;
  /** The output ended: what was held back is settled. */
  finish(): AutoToolCallDelta;
  readonly content: string;
  readonly calls: readonly ToolCall[];
}

/**
 * The reader of a choice's output: guided calls (tool-call-stream.ts) or free text with calls in
 * it; `streamed` sends free text's calls while they arrive.
 */
export function messageReader(output: ToolCallOutput, streamed: boolean): MessageReader {
  if (output.kind === 'auto') return autoToolCallReader(output.parser, output.maxCalls, streamed);
  const reader = new ToolCallReader(output);
  return {
    push: (text) => ({ content: '', calls: reader.push(text) }),
    finish: () => ({ content: '', calls: [] }),
    content: '',
    get calls() {
      return reader.calls;
    },
  };
}

/**
 * A choice's finish reason with tool calls, as vLLM gives it (following OpenAI): "tool_calls"
 * when "required" ended its array or "auto" read calls; a named function's call keeps "stop"
 * (or "length").
 */
export function toolFinishReason(
  output: ToolCallOutput | null | undefined,
  reason: string | null,
  numCalls: number,
): string | null {
  if (output?.kind === 'required' && reason === 'stop') return 'tool_calls';
  if (output?.kind === 'auto' && reason !== null && numCalls > 0) return 'tool_calls';
  return reason;
}
