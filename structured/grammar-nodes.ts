import { LinearRegex, RegexSyntaxError } from '../model/linear-regex.js';
import { compileEbnf, type GrammarProgram } from './ebnf-grammar.js';
import type { NumberRange } from './number-range.js';

/**
 * What a structured output may be, as the byte matcher (byte-matcher.ts) walks it: a graph of
 * value nodes, compiled from a JSON Schema (json-schema.ts), from "any JSON object" (json_object
 * mode), or from a list of literal choices (guided_choice). Nodes refer to each other by index,
 * so recursive schemas ($ref to an enclosing definition) are finite graphs.
 */
export type GrammarNode =
  /** Any JSON value. */
  | { kind: 'any' }
  | {
      kind: 'object';
      /** Keys in the order they are written out (JSON Schema's `properties` order, as vLLM's backends). */
      properties: readonly ObjectProperty[];
      /** Node of keys not listed (additionalProperties), or null: none allowed. */
      additional: number | null;
      /** minProperties / maxProperties: how many keys the object has, listed and additional (default 0, ∞). */
      minProperties?: number;
      maxProperties?: number;
      /** The listed keys may come in any order, each at most once (a structural tag's `any_order`). */
      anyOrder?: boolean;
    }
  | {
      kind: 'array';
      /** Nodes of the first items (prefixItems). */
      prefix: readonly number[];
      /** Node of the items after them, or null: none. */
      items: number | null;
      minItems: number;
      maxItems: number;
      /**
       * uniqueItems: no item repeats another. Only for items from a fixed list (a literal node, or
       * a union of one) or strings without pattern or maxLength (json-schema.ts checks).
       */
      uniqueItems?: boolean;
    }
  /**
   * `pattern`: JSON Schema's pattern, a search anywhere in the string's value (its characters
   * after JSON's escapes are read), compiled by patternRegex.
   */
  | { kind: 'string'; minLength: number; maxLength: number; pattern?: LinearRegex | null }
  /** `range`: JSON Schema's bounds (number-range.ts); such a number is written without an exponent. */
  | { kind: 'number'; integer: boolean; range?: NumberRange | null }
  /** Exactly one of these byte strings (enum/const values as compact JSON; true/false/null; choices). */
  | { kind: 'literal'; texts: readonly Uint8Array[] }
  /** Any one of these nodes (anyOf, oneOf, a list of types). */
  | { kind: 'union'; options: readonly number[] }
  /** Text that fully matches a regular expression (guided_regex); only ever the root. */
  | { kind: 'regex'; regex: LinearRegex }
  /** Text a context-free grammar derives (guided_grammar, ebnf-grammar.ts); only ever the root. */
  | { kind: 'cfg'; program: GrammarProgram };

export interface ObjectProperty {
  name: string;
  /** The key as written between its quotes, JSON-escaped UTF-8, one char per byte (as the matcher keeps keys). */
  keyText: string;
  value: number;
  required: boolean;
}

/** A compiled grammar: its nodes, the root's index, and whether the root is JSON (whitespace may lead). */
export interface Grammar {
  readonly nodes: readonly GrammarNode[];
  readonly root: number;
  /** JSON grammars allow whitespace around values; a choice or a regex is matched as its bytes alone. */
  readonly json: boolean;
  /**
   * JSON written one way only (vLLM's disable_any_whitespace, xgrammar's any_whitespace=False):
   * no whitespace but the one space after each `,` and `:`, as Python's json.dumps writes it.
   */
  readonly compact?: boolean;
  /** A grammar that is not JSON but places JSON values inside it (a structural tag's json_schema parts). */
  readonly jsonParts?: boolean;
}

/** A request's structured-output field that cannot be followed, with the field it names. */
export class GuideError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
  }
}

const utf8 = new TextEncoder();

/** Bytes of `value` as compact JSON (how enum and const values are written). */
export function jsonBytes(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

/** The node `node` stands for through unions of one option ($ref, single allOf), cycles aside. */
export function throughUnions(nodes: readonly GrammarNode[], node: number): number {
  let n = node;
  for (let hops = 0; hops < nodes.length; hops++) {
    const g = nodes[n];
    if (g.kind !== 'union' || g.options.length !== 1) return n;
    n = g.options[0];
  }
  return n;
}

/** The grammar of any JSON object (response_format json_object). */
export function jsonObjectGrammar(): Grammar {
  const nodes: GrammarNode[] = [{ kind: 'object', properties: [], additional: 1 }, { kind: 'any' }];
  return { nodes, root: 0, json: true };
}

/** The grammar of exactly one of `choices`, as written (guided_choice). */
export function choiceGrammar(choices: readonly string[], param: string): Grammar {
  if (choices.length === 0) throw new GuideError(`${param} must list at least one choice.`, param);
  if (choices.some((c) => c.length === 0))
    throw new GuideError(`${param} must not contain an empty choice.`, param);
  return { nodes: [{ kind: 'literal', texts: choices.map((c) => utf8.encode(c)) }], root: 0, json: false };
}

/**
 * The grammar of text that fully matches `pattern` (guided_regex), in Python's `re` syntax as
 * model/linear-regex.ts reads it; what it cannot read exactly is refused by name.
 */
export function regexGrammar(pattern: string, param: string): Grammar {
  const regex = compileRegex(
    pattern,
    pattern,
    (why) => `${param}: cannot follow the regular expression ${JSON.stringify(pattern)}: ${why}.`,
    param,
  );
  return { nodes: [{ kind: 'regex', regex }], root: 0, json: false };
}

/** The grammar of text that a GBNF grammar derives from its `root` rule (guided_grammar). */
export function ebnfGrammar(text: string, param: string): Grammar {
  return { nodes: [{ kind: 'cfg', program: compileEbnf(text, param) }], root: 0, json: false };
}

/**
 * JSON Schema's `pattern` (ECMA-262, unanchored: it matches anywhere in the value unless its own
 * anchors say otherwise) as a full match of anything around it. The syntax is read as
 * model/linear-regex.ts reads Python's, which agrees with ECMA-262's on what schemas use
 * (classes, quantifiers, groups, alternation, ^ and $ outside multiline mode); what it cannot
 * read exactly is refused by name.
 */
export function patternRegex(pattern: string, where: string, param: string): LinearRegex {
  return compileRegex(
    `[\\s\\S]*(?:${pattern})[\\s\\S]*`,
    pattern,
    (why) => `${where} has the "pattern" ${JSON.stringify(pattern)}, which Loom cannot follow: ${why}.`,
    param,
  );
}

/** A string `format` Loom generates to (string-formats.ts), as a full match of its expression. */
export function formatRegex(format: string, source: string, param: string): LinearRegex {
  return compileRegex(
    `(?:${source})`,
    source,
    (why) => `${param}: the "format" ${JSON.stringify(format)} does not compile: ${why}.`,
    param,
  );
}

function compileRegex(
  source: string,
  pattern: string,
  message: (why: string) => string,
  param: string,
): LinearRegex {
  // Its parser reads UTF-16 units, the matcher code points: an astral literal would never match.
  if (/[\u{10000}-\u{10ffff}]/u.test(pattern))
    throw new GuideError(`${param}: characters beyond U+FFFF in the pattern are not supported.`, param);
  let regex: LinearRegex;
  try {
    regex = new LinearRegex(source);
  } catch (err) {
    if (err instanceof RegexSyntaxError) throw new GuideError(message(err.message), param);
    throw err;
  }
  // Otherwise the output could start and never end.
  if (regex.streamStart().length === 0) throw new GuideError(message('no text matches it'), param);
  return regex;
}
