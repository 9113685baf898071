import { UnsupportedTokenizerError } from '../model/token-bytes.js';
import {
  choiceGrammar,
  ebnfGrammar,
  type Grammar,
  GuideError,
  jsonObjectGrammar,
  regexGrammar,
} from '../structured/grammar-nodes.js';
import { compileJsonSchema } from '../structured/json-schema.js';
import { type TokenByteSource, tokenGuide, tokenVocabulary } from '../structured/request-guide.js';
import { structuralTagGrammar } from '../structured/structural-tag.js';
import type { TokenGuide } from '../structured/token-guide.js';
import { invalidRequest, notSupported } from './api-error.js';

/** OpenAI's response_format, and vLLM's structural_tag kind of it (structural-tag.ts has both shapes). */
export interface ResponseFormat {
  type: string;
  json_schema?: {
    name: string;
    description?: string | null;
    schema?: unknown;
    strict?: boolean | null;
  } | null;
  format?: unknown;
  structures?: unknown;
  triggers?: unknown;
}

/** vLLM's structured_outputs (StructuredOutputsParams). */
export interface StructuredOutputsBody {
  json?: unknown;
  json_object?: boolean | null;
  choice?: string[] | null;
  regex?: string | null;
  grammar?: string | null;
  structural_tag?: string | null;
  disable_any_whitespace?: boolean | null;
  disable_additional_properties?: boolean | null;
  whitespace_pattern?: string | null;
  disable_fallback?: boolean | null;
}

/** The request fields that ask for structured output. */
export interface StructuredOutputFields {
  response_format?: ResponseFormat | null;
  guided_json?: unknown;
  guided_choice?: string[] | null;
  guided_regex?: string | null;
  guided_grammar?: string | null;
  structured_outputs?: StructuredOutputsBody | null;
}

/**
 * The request's structured output as a guide over the vocabulary, or null when it asks none.
 * OpenAI's response_format (json_object, json_schema) and vLLM's guided_json, guided_choice,
 * guided_regex, guided_grammar and structured_outputs {json, json_object, choice, regex,
 * grammar, structural_tag} and response_format's structural_tag; one kind per request, as vLLM
 * requires. What Loom cannot follow (whitespace patterns) is refused by name.
 */
export function structuredOutputGuide(
  body: StructuredOutputFields,
  tokenizer: TokenByteSource,
  /** Another field's grammar (chat's tool_choice: server/tool-calls.ts), one kind among the others. */
  other: { param: string; grammar: () => Grammar } | null = null,
): TokenGuide | null {
  const asked: Array<[string, () => Grammar]> = [];
  const vocabulary = () => tokenVocabulary(tokenizer);
  if (other) asked.push([other.param, other.grammar]);
  const rf = body.response_format;
  if (rf && rf.type !== 'text') {
    if (rf.type === 'json_object') asked.push(['response_format', jsonObjectGrammar]);
    else if (rf.type === 'json_schema') {
      const schema = rf.json_schema?.schema;
      if (schema == null)
        throw invalidRequest(
          'response_format.json_schema.schema is required for type "json_schema".',
          'response_format',
        );
      asked.push(['response_format', () => compileJsonSchema(schema, 'response_format')]);
    } else if (rf.type === 'structural_tag') {
      const { json_schema, ...tag } = rf;
      if (json_schema != null)
        throw invalidRequest(
          'response_format.json_schema is only allowed with type "json_schema".',
          'response_format',
        );
      asked.push(['response_format', () => structuralTagGrammar(tag, 'response_format', vocabulary)]);
    } else throw notSupported('response_format', `A response_format of type "${rf.type}"`);
  } else if (rf?.json_schema != null) {
    throw invalidRequest(
      'response_format.json_schema is only allowed with type "json_schema".',
      'response_format',
    );
  }
  if (rf && rf.type !== 'structural_tag')
    for (const field of ['format', 'structures', 'triggers'] as const)
      if (rf[field] != null)
        throw invalidRequest(
          `response_format.${field} is only allowed with type "structural_tag".`,
          'response_format',
        );
  if (body.guided_json != null)
    asked.push(['guided_json', () => schemaGrammar(body.guided_json, 'guided_json')]);
  if (body.guided_regex != null)
    asked.push(['guided_regex', () => regexGrammar(body.guided_regex!, 'guided_regex')]);
  if (body.guided_choice != null)
    asked.push(['guided_choice', () => choiceGrammar(body.guided_choice!, 'guided_choice')]);
  if (body.guided_grammar != null)
    asked.push(['guided_grammar', () => ebnfGrammar(body.guided_grammar!, 'guided_grammar')]);
  const so = body.structured_outputs;
  if (so) {
    if (so.whitespace_pattern != null)
      throw notSupported('structured_outputs', 'structured_outputs.whitespace_pattern');
    if (so.disable_additional_properties === false)
      throw notSupported(
        'structured_outputs',
        'structured_outputs.disable_additional_properties: false (objects allow only the keys their schema lists)',
      );
    if (so.json != null)
      asked.push(['structured_outputs', () => schemaGrammar(so.json, 'structured_outputs')]);
    if (so.json_object) asked.push(['structured_outputs', jsonObjectGrammar]);
    if (so.regex != null)
      asked.push(['structured_outputs', () => regexGrammar(so.regex!, 'structured_outputs')]);
    if (so.choice != null)
      asked.push(['structured_outputs', () => choiceGrammar(so.choice!, 'structured_outputs')]);
    if (so.grammar != null)
      asked.push(['structured_outputs', () => ebnfGrammar(so.grammar!, 'structured_outputs')]);
    if (so.structural_tag != null)
      asked.push([
        'structured_outputs',
        () =>
          structuralTagGrammar(
            jsonText(so.structural_tag!, 'structured_outputs', 'structured_outputs.structural_tag'),
            'structured_outputs',
            vocabulary,
          ),
      ]);
  }
  if (asked.length === 0) {
    if (so?.disable_any_whitespace)
      throw invalidRequest(
        'structured_outputs.disable_any_whitespace shapes structured JSON output, and the request asks for none.',
        'structured_outputs',
      );
    return null;
  }
  if (asked.length > 1)
    throw invalidRequest(
      `Only one kind of structured output may be requested, got ${asked.map(([f]) => f).join(' and ')}.`,
      asked[1][0],
    );
  const [param, grammar] = asked[0];
  try {
    let g = grammar();
    if (so?.disable_any_whitespace) {
      // vLLM's option shapes JSON only; on a choice, regex or grammar it would change nothing.
      if (!g.json && !g.jsonParts)
        throw notSupported(
          'structured_outputs',
          `structured_outputs.disable_any_whitespace with output that is not JSON (${param} asks for a choice, a regex, a grammar or a structural tag without JSON; the option shapes JSON only)`,
        );
      g = { ...g, compact: true };
    }
    return tokenGuide(tokenizer, g);
  } catch (err) {
    if (err instanceof GuideError) throw invalidRequest(err.message, err.param);
    if (err instanceof UnsupportedTokenizerError)
      throw notSupported(param, `Structured output with this model (${err.message})`);
    throw err;
  }
}

/** The grammar of a schema given as an object, or as its JSON text (vLLM accepts both). */
function schemaGrammar(value: unknown, param: string): Grammar {
  return compileJsonSchema(typeof value === 'string' ? jsonText(value, param, param) : value, param);
}

/** A field's JSON text, parsed (structural_tag is always text: vLLM json.loads it). */
function jsonText(text: string, param: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new GuideError(`${field} is a string that is not JSON.`, param);
  }
}
