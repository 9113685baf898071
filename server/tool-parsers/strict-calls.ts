import type { ToolCallParserName } from './parsers.js';

/** A function the model may call, and the schema its arguments are held to. */
export interface GuidedFunction {
  name: string;
  arguments: unknown;
}

const LLAMA_PYTHON_TAG = '<|python_tag|>';

/** The parsers whose calls a structural tag can hold to the tools' schemas. */
export const GUIDED_PARSERS: readonly ToolCallParserName[] = ['hermes', 'llama3_json'];

/**
 * Strict tools under tool_choice "auto", as vLLM guides them: a structural tag
 * (structured/structural-tag.ts) in which the model's text stays free and its calls, in the
 * parser's own format, name a listed tool and give a strict tool's arguments by its schema (the
 * others' any object); with parallel_tool_calls false, one call at most. Each tag accepts only
 * what the parser reads back as calls. Null for a parser it cannot be written for.
 */
export function strictCallsTag(
  parser: ToolCallParserName,
  tools: readonly GuidedFunction[],
  maxCalls: number,
): object | null {
  if (parser === 'hermes') return hermesCalls(tools, maxCalls);
  if (parser === 'llama3_json') return llama3JsonCalls(tools, maxCalls);
  return null;
}

const SPACE = { type: 'regex', pattern: '\\s*' };

/**
 * Hermes: free text, and after each `<tool_call>` one call `{"name": <a tool's name>,
 * "arguments": <its arguments>}` up to `</tool_call>` (whitespace around the object as
 * templates write it); nothing after the first call without parallel calls.
 */
function hermesCalls(tools: readonly GuidedFunction[], maxCalls: number): object {
  return {
    type: 'structural_tag',
    format: {
      type: 'triggered_tags',
      triggers: ['<tool_call>'],
      tags: tools.map((t) => ({
        type: 'tag',
        begin: '<tool_call>',
        content: {
          type: 'sequence',
          elements: [
            SPACE,
            { type: 'const_string', value: `{"name": ${JSON.stringify(t.name)}, "arguments": ` },
            { type: 'json_schema', json_schema: t.arguments },
            { type: 'const_string', value: '}' },
            SPACE,
          ],
        },
        end: '</tool_call>',
      })),
      stop_after_first: maxCalls === 1,
    },
  };
}

/**
 * Llama 3.1's JSON calls: an output that starts with `{` is calls, `{"name": <a tool's name>,
 * "parameters": <its arguments>}` separated by `; `; any other output is text, which then may
 * not start with `{` (nor with `<|python_tag|>`, which would make it calls too).
 */
function llama3JsonCalls(tools: readonly GuidedFunction[], maxCalls: number): object {
  const call = tools.map((t) => ({
    type: 'tag',
    begin: `{"name": ${JSON.stringify(t.name)}, "parameters": `,
    content: { type: 'json_schema', json_schema: t.arguments },
    end: '}',
  }));
  const calls = {
    type: 'sequence',
    elements: [
      SPACE,
      {
        type: 'tags_with_separator',
        tags: call,
        separator: '; ',
        at_least_one: true,
        stop_after_first: maxCalls === 1,
      },
      SPACE,
    ],
  };
  return {
    type: 'structural_tag',
    format: { type: 'or', elements: [calls, { type: 'regex', pattern: notCallsText() }] },
  };
}

/**
 * Text the llama3_json reader keeps as text: after any leading whitespace, nothing or a first
 * character that is not `{`, and no start of `<|python_tag|>` read whole (each of its prefixes
 * may end the text, or be followed by a character that leaves it).
 */
function notCallsText(): string {
  const chars = [...LLAMA_PYTHON_TAG];
  const literal = (c: string) => c.replace(/[\\^$.*+?()[\]{}|-]/g, '\\$&');
  const options = [`[^\\s{${literal(chars[0])}][\\s\\S]*`];
  for (let k = 1; k < chars.length; k++)
    options.push(`${chars.slice(0, k).map(literal).join('')}(?:[^${literal(chars[k])}][\\s\\S]*)?`);
  return `\\s*(?:${options.join('|')})?`;
}
