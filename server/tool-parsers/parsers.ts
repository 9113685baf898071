import type { AutoToolCallReader } from './auto-tool-call-reader.js';
import { HermesReader } from './hermes.js';
import { Llama3JsonReader } from './llama3-json.js';
import { MistralReader } from './mistral.js';
import { PythonicReader } from './pythonic.js';

/** The model formats `--tool-call-parser` reads (vLLM's parser names). */
export const TOOL_CALL_PARSERS = ['hermes', 'llama3_json', 'mistral', 'pythonic', 'llama4_pythonic'] as const;
export type ToolCallParserName = (typeof TOOL_CALL_PARSERS)[number];

/**
 * A reader of one choice's output in the parser's format; parallel_tool_calls: false gives
 * maxCalls 1. `streamed`: the calls are sent while they arrive (AutoToolCallReader).
 */
export function autoToolCallReader(
  parser: ToolCallParserName,
  maxCalls = Number.POSITIVE_INFINITY,
  streamed = false,
): AutoToolCallReader {
  const reader = {
    hermes: () => new HermesReader(),
    llama3_json: () => new Llama3JsonReader(),
    mistral: () => new MistralReader(),
    pythonic: () => new PythonicReader(false),
    llama4_pythonic: () => new PythonicReader(true),
  }[parser]();
  reader.maxCalls = maxCalls;
  reader.streamsCalls = streamed;
  return reader;
}

/**
 * Whether the parser's calls start at a special token (Hermes' `<tool_call>`, Mistral's
 * `[TOOL_CALLS]`), which the text must then keep: as vLLM's parsers adjust the request, the
 * default of skip_special_tokens becomes false (a client that sets it is followed).
 */
export function parserReadsSpecialTokens(parser: ToolCallParserName): boolean {
  return parser === 'hermes' || parser === 'mistral';
}
