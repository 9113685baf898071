import { compileEbnf } from './ebnf-grammar.js';
import { type Grammar, type GrammarNode, GuideError, regexGrammar } from './grammar-nodes.js';
import { addJsonSchema } from './json-schema.js';
import { ProgramBuilder } from './program-builder.js';
import type { TokenVocabulary } from './token-vocabulary.js';

/**
 * Structural tags (vLLM's `structural_tag`, xgrammar's format): an output described as a tree of
 * formats, free text where it may be anything and a JSON Schema, regex or grammar where it is a
 * tool call or an answer. Two shapes reach Loom, as vLLM takes them:
 *
 * - the first one, `{"structures": [{"begin", "schema", "end"}], "triggers": [...]}`: free text in
 *   which a trigger starts one of the structures whose `begin` it opens (a triggered_tags below);
 * - `{"type": "structural_tag", "format": {...}}`, one format object that nests others:
 *   const_string, json_schema (JSON style), grammar (GBNF), regex, any_text (excludes), sequence,
 *   or, optional, plus, star, repeat, tag, triggered_tags, tags_with_separator and dispatch, and
 *   the token-level ones: token, exclude_token, any_tokens, token_triggered_tags, token_dispatch,
 *   and tags that begin or end with a token.
 *
 * Everything compiles to one grammar program (ebnf-grammar.ts's steps) whose `value` steps hold
 * the JSON Schemas and regexes, so the byte matcher runs the whole output as one pushdown
 * automaton. Free text is an automaton over the strings it may not contain (its excludes, the
 * triggers, the `end` of an enclosing tag: xgrammar's end detection), each state the longest
 * suffix of the text that some of them start with; a completed trigger leads into its tags, a
 * completed exclude is refused. A token-level format reads whole tokens (a `token` step of the
 * program), named by id or by their text (the first id whose text it is, special tokens such as
 * "<|eot_id|>" included), whatever their bytes; free tokens stop at the enclosing tag's end token
 * as free text stops at its end string (xgrammar's end detection, within one level only). A JSON
 * Schema with `any_order` takes its objects' listed keys in any order, each at most once and the
 * required ones all (xgrammar's grammar only counts the keys). Non-JSON styles and the length
 * limits of any_text are refused by name, as are fields a format does not have.
 */

type Format = Record<string, unknown>;

/** Each format's fields besides `type`. */
const FIELDS: Readonly<Record<string, readonly string[]>> = {
  const_string: ['value'],
  json_schema: ['json_schema', 'style', 'any_order'],
  grammar: ['grammar'],
  regex: ['pattern'],
  any_text: ['excludes', 'max_tokens', 'max_chars'],
  sequence: ['elements'],
  or: ['elements'],
  optional: ['content'],
  plus: ['content'],
  star: ['content'],
  repeat: ['content', 'min', 'max'],
  tag: ['begin', 'content', 'end'],
  triggered_tags: ['triggers', 'tags', 'at_least_one', 'stop_after_first', 'excludes'],
  tags_with_separator: ['tags', 'separator', 'at_least_one', 'stop_after_first'],
  dispatch: ['rules', 'loop', 'excludes'],
  token: ['token'],
  exclude_token: ['exclude_tokens'],
  any_tokens: ['exclude_tokens', 'max_tokens'],
  token_triggered_tags: ['trigger_tokens', 'tags', 'exclude_tokens', 'at_least_one', 'stop_after_first'],
  token_dispatch: ['rules', 'loop', 'exclude_tokens'],
};

/**
 * The grammar of a structural tag, given as its parsed JSON. `vocabulary`: the tokenizer's, which
 * token-level formats name tokens in (null: they may name ids only, unchecked).
 */
export function structuralTagGrammar(
  spec: unknown,
  param: string,
  vocabulary: (() => TokenVocabulary) | null = null,
): Grammar {
  return new StructuralTagCompiler(param, vocabulary).compile(spec);
}

class StructuralTagCompiler {
  /** Node 0 is the root (the program, set last); JSON Schemas and regexes are added after it. */
  private readonly nodes: GrammarNode[] = [{ kind: 'any' }];
  private readonly out: ProgramBuilder;
  /** The request's names of the tags made from the first shape's structures. */
  private readonly tagPaths = new WeakMap<Format, string>();

  constructor(
    private readonly param: string,
    private readonly vocabulary: (() => TokenVocabulary) | null,
  ) {
    this.out = new ProgramBuilder(param);
  }

  compile(spec: unknown): Grammar {
    if (!isObject(spec)) this.fail('', 'must be a JSON object');
    const format = this.topFormat(spec);
    const program = this.out.program((end) => this.format(format, 'format', end, [], []));
    this.nodes[0] = { kind: 'cfg', program };
    const jsonParts = this.nodes.some((n) => n.kind !== 'cfg' && n.kind !== 'regex');
    return { nodes: this.nodes, root: 0, json: false, jsonParts };
  }

  /** The format a request's structural tag stands for (its first shape is a triggered_tags). */
  private topFormat(spec: Format): Format {
    if ('structures' in spec || 'triggers' in spec) {
      this.onlyFields(spec, ['type', 'structures', 'triggers'], '');
      if (spec.type !== undefined && spec.type !== 'structural_tag')
        this.fail('type', `must be "structural_tag", got ${JSON.stringify(spec.type)}`);
      const structures = this.list(spec.structures, 'structures');
      const tags = structures.map((s, i) => {
        if (!isObject(s)) this.fail(`structures[${i}]`, 'must be an object');
        this.onlyFields(s, ['begin', 'schema', 'end'], `structures[${i}]`);
        const tag: Format = {
          type: 'tag',
          begin: s.begin,
          // vLLM lets the schema be null: any JSON value.
          content: { type: 'json_schema', json_schema: s.schema ?? true },
          end: s.end,
        };
        this.tagPaths.set(tag, `structures[${i}]`);
        return tag;
      });
      return { type: 'triggered_tags', triggers: spec.triggers, tags };
    }
    this.onlyFields(spec, ['type', 'format'], '');
    if (spec.type !== 'structural_tag')
      this.fail('type', `must be "structural_tag" (with a "format"), got ${JSON.stringify(spec.type)}`);
    if (!isObject(spec.format)) this.fail('format', 'must be a format object');
    return spec.format;
  }

  private fail(path: string, what: string): never {
    throw new GuideError(`${this.param}: the structural tag's ${path || 'value'} ${what}.`, this.param);
  }

  private onlyFields(f: Format, known: readonly string[], path: string): void {
    for (const key of Object.keys(f))
      if (!known.includes(key)) this.fail(path ? `${path}.${key}` : key, 'is not a field Loom knows there');
  }

  private string(value: unknown, path: string, empty = true): string {
    if (typeof value !== 'string') this.fail(path, 'must be a string');
    if (!empty && value.length === 0) this.fail(path, 'must not be empty');
    return value;
  }

  private list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'must be an array');
    return value;
  }

  private strings(value: unknown, path: string, empty = true): string[] {
    if (value == null) return [];
    return this.list(value, path).map((v, i) => this.string(v, `${path}[${i}]`, empty));
  }

  /** A token given by id or by its text, as its id. */
  private token(value: unknown, path: string): number {
    const vocabulary = this.vocabulary?.();
    if (typeof value === 'string') {
      if (!vocabulary)
        this.fail(path, 'names a token by its text, which needs a tokenizer here: give its id');
      const id = vocabulary.idOf(value);
      if (id === undefined)
        this.fail(path, `(${JSON.stringify(value)}) is not the text of any token of the vocabulary`);
      return id;
    }
    if (!Number.isInteger(value) || (value as number) < 0)
      this.fail(path, "must be a token id (an integer ≥ 0) or a token's text");
    if (vocabulary && !vocabulary.has(value as number))
      this.fail(path, `(${value}) is not a token id of the vocabulary`);
    return value as number;
  }

  private tokens(value: unknown, path: string): number[] {
    if (value == null) return [];
    return this.list(value, path).map((v, i) => this.token(v, `${path}[${i}]`));
  }

  /** A `{"type": "token", "token": ...}` object's token, as a tag's begin or end gives one. */
  private tokenFormat(f: Format, path: string): number {
    if (f.type !== 'token') this.fail(`${path}.type`, 'must be "token" (or the begin or end be a string)');
    this.onlyFields(f, ['type', ...FIELDS.token], path);
    return this.token(f.token, `${path}.token`);
  }

  private flag(value: unknown, path: string, otherwise: boolean): boolean {
    if (value == null) return otherwise;
    if (typeof value !== 'boolean') this.fail(path, 'must be a boolean');
    return value;
  }

  /**
   * The entry of `f`'s steps, which continue at `next`. `ends`: the end strings of the nearest tag
   * around `f`, which an unlimited format (any_text, triggered_tags, dispatch) inside it, wherever
   * it stands, stops at (xgrammar's end detection walks up to that tag); `endTokens`: that tag's
   * end token, which a token-level one (exclude_token, any_tokens, token_triggered_tags,
   * token_dispatch) stops at.
   */
  private format(
    f: unknown,
    path: string,
    next: number,
    ends: readonly string[],
    endTokens: readonly number[],
  ): number {
    if (!isObject(f)) this.fail(path, 'must be a format object');
    const type = f.type;
    if (typeof type !== 'string') this.fail(`${path}.type`, 'must be a string');
    const fields = FIELDS[type];
    if (!fields) this.fail(`${path}.type`, `names a format Loom does not know ("${type}")`);
    this.onlyFields(f, ['type', ...fields], path);
    switch (type) {
      case 'const_string':
        return this.out.literal(this.string(f.value, `${path}.value`), next);
      case 'json_schema': {
        if (f.style != null && f.style !== 'json')
          this.fail(`${path}.style`, `is "${String(f.style)}": Loom writes JSON Schemas as JSON only`);
        const anyOrder = this.flag(f.any_order, `${path}.any_order`, false);
        if (f.json_schema === undefined) this.fail(`${path}.json_schema`, 'is required');
        const first = this.nodes.length;
        const node = addJsonSchema(f.json_schema, this.param, this.nodes);
        // Every object of this schema takes its keys in any order, each once and the required all.
        if (anyOrder)
          for (let i = first; i < this.nodes.length; i++) {
            const n = this.nodes[i];
            if (n.kind === 'object') this.nodes[i] = { ...n, anyOrder: true };
          }
        return this.out.add({ op: 'value', node, next });
      }
      case 'grammar':
        return this.out.grammar(compileEbnf(this.string(f.grammar, `${path}.grammar`), this.param), next);
      case 'regex': {
        const g = regexGrammar(this.string(f.pattern, `${path}.pattern`), this.param);
        const node = this.nodes.push(g.nodes[g.root]) - 1;
        return this.out.add({ op: 'value', node, next });
      }
      case 'any_text':
        for (const limit of ['max_tokens', 'max_chars'])
          if (f[limit] != null) this.fail(`${path}.${limit}`, 'is not supported by Loom (leave it out)');
        return this.out.freeText([...this.strings(f.excludes, `${path}.excludes`), ...ends], new Map(), next);
      case 'sequence': {
        const elements = this.list(f.elements, `${path}.elements`);
        let entry = next;
        for (let i = elements.length - 1; i >= 0; i--)
          entry = this.format(elements[i], `${path}.elements[${i}]`, entry, ends, endTokens);
        return entry;
      }
      case 'or': {
        const elements = this.list(f.elements, `${path}.elements`);
        if (elements.length === 0) this.fail(`${path}.elements`, 'must not be empty');
        return this.out.alternatives(
          elements.map((e, i) => this.format(e, `${path}.elements[${i}]`, next, ends, endTokens)),
        );
      }
      case 'optional':
        return this.out.alternatives([
          this.format(f.content, `${path}.content`, next, ends, endTokens),
          next,
        ]);
      case 'star':
        return this.repeat(f.content, `${path}.content`, 0, Number.POSITIVE_INFINITY, next, ends, endTokens);
      case 'plus':
        return this.repeat(f.content, `${path}.content`, 1, Number.POSITIVE_INFINITY, next, ends, endTokens);
      case 'repeat': {
        const min = f.min as number;
        const max = f.max as number;
        if (!Number.isInteger(min) || min < 0) this.fail(`${path}.min`, 'must be an integer ≥ 0');
        if (!Number.isInteger(max) || (max < min && max !== -1))
          this.fail(`${path}.max`, 'must be an integer ≥ min, or -1 (no limit)');
        return this.repeat(
          f.content,
          `${path}.content`,
          min,
          max === -1 ? Number.POSITIVE_INFINITY : max,
          next,
          ends,
          endTokens,
        );
      }
      case 'tag':
        return this.tag(f, path, next);
      case 'triggered_tags':
        return this.triggeredTags(f, path, next, ends);
      case 'tags_with_separator':
        return this.tagsWithSeparator(f, path, next);
      case 'dispatch':
        return this.dispatch(f, path, next, ends, endTokens);
      case 'token':
        return this.out.add({
          op: 'token',
          ids: [this.token(f.token, `${path}.token`)],
          exclude: false,
          next,
        });
      case 'exclude_token': {
        const ids = [...this.tokens(f.exclude_tokens, `${path}.exclude_tokens`), ...endTokens];
        return this.out.add({ op: 'token', ids, exclude: true, next });
      }
      case 'any_tokens':
        return this.anyTokens(f, path, next, endTokens);
      case 'token_triggered_tags':
        return this.tokenTriggeredTags(f, path, next, endTokens);
      case 'token_dispatch':
        return this.tokenDispatch(f, path, next, ends, endTokens);
    }
    throw new Error(`unhandled format ${type}`);
  }

  private repeat(
    content: unknown,
    path: string,
    min: number,
    max: number,
    next: number,
    ends: readonly string[],
    endTokens: readonly number[],
  ): number {
    const one = (then: number) => this.format(content, path, then, ends, endTokens);
    let entry = next;
    if (max === Number.POSITIVE_INFINITY) {
      const loop = this.out.placeholder();
      this.out.alternatives([one(loop), next], loop);
      entry = loop;
    } else for (let i = min; i < max; i++) entry = this.out.alternatives([one(entry), next]);
    for (let i = 0; i < min; i++) entry = one(entry);
    return entry;
  }

  /**
   * A tag's begin, content and end, each of the two a string (end: or several) or a token;
   * `afterBegin`: how much of the begin was read already (a trigger: characters, or 1 for a token).
   */
  private tag(f: unknown, path: string, next: number, afterBegin = 0): number {
    if (!isObject(f)) this.fail(path, 'must be a tag object');
    if (f.type !== undefined && f.type !== 'tag') this.fail(`${path}.type`, 'must be "tag"');
    this.onlyFields(f, ['type', ...FIELDS.tag], path);
    let content: number;
    if (isObject(f.end)) {
      const endToken = this.tokenFormat(f.end, `${path}.end`);
      const end = this.out.add({ op: 'token', ids: [endToken], exclude: false, next });
      content = this.format(f.content, `${path}.content`, end, [], [endToken]);
    } else {
      const ends = typeof f.end === 'string' ? [f.end] : this.strings(f.end, `${path}.end`);
      if (ends.length === 0)
        this.fail(`${path}.end`, 'must be a string, a non-empty array of strings or a token');
      if (ends.every((e) => e === '') && isUnlimited(f.content) && !isExcluded(f.content))
        this.fail(
          `${path}.end`,
          'must hold a non-empty string: the content is unlimited (free text or tokens, or a repeat), so only its end can close the tag',
        );
      const end = this.out.alternatives([...new Set(ends)].map((e) => this.out.literal(e, next)));
      content = this.format(
        f.content,
        `${path}.content`,
        end,
        ends.filter((e) => e !== ''),
        [],
      );
    }
    if (isObject(f.begin)) {
      const begin = this.tokenFormat(f.begin, `${path}.begin`);
      return afterBegin > 0
        ? content
        : this.out.add({ op: 'token', ids: [begin], exclude: false, next: content });
    }
    const begin = this.string(f.begin, `${path}.begin`);
    return this.out.literal([...begin].slice(afterBegin).join(''), content);
  }

  private tagList(value: unknown, path: string): Format[] {
    const tags = this.list(value, path);
    return tags.map((t, i) => {
      if (!isObject(t)) this.fail(`${path}[${i}]`, 'must be a tag object');
      return t;
    });
  }

  private tagPath(t: Format, fallback: string): string {
    return this.tagPaths.get(t) ?? fallback;
  }

  private triggeredTags(f: Format, path: string, next: number, ends: readonly string[]): number {
    const triggers = this.strings(f.triggers, `${path}.triggers`, false);
    if (triggers.length === 0) this.fail(`${path}.triggers`, 'must list at least one trigger');
    const tags = this.tagList(f.tags, `${path}.tags`);
    const atLeastOne = this.flag(f.at_least_one, `${path}.at_least_one`, false);
    const stopAfterFirst = this.flag(f.stop_after_first, `${path}.stop_after_first`, false);
    if (tags.length === 0 && atLeastOne) this.fail(`${path}.tags`, 'is empty while at_least_one is true');
    // Each tag opens with exactly one trigger, which dispatches to it.
    const byTrigger = new Map<string, Array<{ tag: Format; path: string }>>(triggers.map((t) => [t, []]));
    tags.forEach((tag, i) => {
      const p = this.tagPath(tag, `${path}.tags[${i}]`);
      const begin = this.string(tag.begin, `${p}.begin`);
      const opening = triggers.filter((t) => begin.startsWith(t));
      if (opening.length !== 1)
        this.fail(
          `${p}.begin`,
          opening.length === 0
            ? `(${JSON.stringify(begin)}) starts with none of the triggers`
            : `(${JSON.stringify(begin)}) starts with several triggers (${opening.map((t) => JSON.stringify(t)).join(', ')})`,
        );
      byTrigger.get(opening[0])!.push({ tag, path: p });
    });
    const textStart = this.out.placeholder();
    const after = stopAfterFirst ? next : textStart;
    const dispatch = new Map<string, number>();
    for (const [trigger, opened] of byTrigger)
      if (opened.length > 0)
        dispatch.set(
          trigger,
          this.out.alternatives(opened.map((o) => this.tag(o.tag, o.path, after, [...trigger].length))),
        );
    const excludes = [...this.strings(f.excludes, `${path}.excludes`), ...ends];
    this.out.freeText(excludes, dispatch, next, textStart, triggers);
    if (!atLeastOne) return textStart;
    return this.out.alternatives(
      tags.map((tag, i) => this.tag(tag, this.tagPath(tag, `${path}.tags[${i}]`), after)),
    );
  }

  private tagsWithSeparator(f: Format, path: string, next: number): number {
    const tags = this.tagList(f.tags, `${path}.tags`);
    if (tags.length === 0) this.fail(`${path}.tags`, 'must list at least one tag');
    const separator = this.string(f.separator, `${path}.separator`);
    const atLeastOne = this.flag(f.at_least_one, `${path}.at_least_one`, false);
    const stopAfterFirst = this.flag(f.stop_after_first, `${path}.stop_after_first`, false);
    const oneTag = (then: number) =>
      this.out.alternatives(tags.map((tag, i) => this.tag(tag, `${path}.tags[${i}]`, then)));
    let list: number;
    if (stopAfterFirst) list = oneTag(next);
    else {
      // tag (separator tag)*
      const more = this.out.placeholder();
      const tagThenMore = oneTag(more);
      this.out.alternatives([this.out.literal(separator, tagThenMore), next], more);
      list = tagThenMore;
    }
    return atLeastOne ? list : this.out.alternatives([list, next]);
  }

  private dispatch(
    f: Format,
    path: string,
    next: number,
    ends: readonly string[],
    endTokens: readonly number[],
  ): number {
    const textStart = this.out.placeholder();
    const dispatch = this.dispatchRules(f, path, textStart, next, ends, endTokens, 'pattern', (v, p) =>
      this.string(v, p, false),
    );
    const excludes = [...this.strings(f.excludes, `${path}.excludes`), ...ends];
    this.out.freeText(excludes, dispatch, next, textStart, [...dispatch.keys()]);
    return textStart;
  }

  /**
   * A dispatch's rules, `[pattern, format]` pairs (a string, or a token), as each pattern's entry:
   * its format, which goes on at the free text's `textStart` when the dispatch loops, else `next`.
   */
  private dispatchRules<K>(
    f: Format,
    path: string,
    textStart: number,
    next: number,
    ends: readonly string[],
    endTokens: readonly number[],
    what: 'pattern' | 'token',
    pattern: (value: unknown, path: string) => K,
  ): Map<K, number> {
    const after = this.flag(f.loop, `${path}.loop`, true) ? textStart : next;
    const dispatch = new Map<K, number>();
    this.list(f.rules, `${path}.rules`).forEach((rule, i) => {
      if (!Array.isArray(rule) || rule.length !== 2)
        this.fail(`${path}.rules[${i}]`, `must be a [${what}, format] pair`);
      const key = pattern(rule[0], `${path}.rules[${i}][0]`);
      if (dispatch.has(key))
        this.fail(`${path}.rules[${i}][0]`, `repeats the ${what} ${JSON.stringify(key)}`);
      dispatch.set(key, this.format(rule[1], `${path}.rules[${i}][1]`, after, ends, endTokens));
    });
    return dispatch;
  }

  /** Tokens but the excluded ones and the enclosing tag's end token, any number, or at most max_tokens. */
  private anyTokens(f: Format, path: string, next: number, endTokens: readonly number[]): number {
    const ids = [...this.tokens(f.exclude_tokens, `${path}.exclude_tokens`), ...endTokens];
    if (f.max_tokens == null) return this.out.freeTokens(ids, new Map(), next);
    const max = f.max_tokens as number;
    if (!Number.isInteger(max) || max < 0) this.fail(`${path}.max_tokens`, 'must be an integer ≥ 0');
    let entry = next;
    for (let i = 0; i < max; i++)
      entry = this.out.alternatives([this.out.add({ op: 'token', ids, exclude: true, next: entry }), next]);
    return entry;
  }

  /**
   * Free tokens until a trigger token, which opens the tags that begin with it (their begin is
   * that token), as triggered_tags does with strings.
   */
  private tokenTriggeredTags(f: Format, path: string, next: number, endTokens: readonly number[]): number {
    const triggers = this.tokens(f.trigger_tokens, `${path}.trigger_tokens`);
    if (triggers.length === 0) this.fail(`${path}.trigger_tokens`, 'must list at least one token');
    const tags = this.tagList(f.tags, `${path}.tags`);
    const atLeastOne = this.flag(f.at_least_one, `${path}.at_least_one`, false);
    const stopAfterFirst = this.flag(f.stop_after_first, `${path}.stop_after_first`, false);
    if (tags.length === 0 && atLeastOne) this.fail(`${path}.tags`, 'is empty while at_least_one is true');
    const byTrigger = new Map<number, Array<{ tag: Format; path: string }>>(triggers.map((t) => [t, []]));
    tags.forEach((tag, i) => {
      const p = `${path}.tags[${i}]`;
      if (!isObject(tag.begin))
        this.fail(
          `${p}.begin`,
          'must be a token (a tag of token_triggered_tags begins with its trigger token)',
        );
      const begin = this.tokenFormat(tag.begin, `${p}.begin`);
      const opened = byTrigger.get(begin);
      if (!opened) this.fail(`${p}.begin`, `(token ${begin}) is none of the trigger_tokens`);
      opened.push({ tag, path: p });
    });
    const textStart = this.out.placeholder();
    const after = stopAfterFirst ? next : textStart;
    const dispatch = new Map<number, number>();
    for (const [trigger, opened] of byTrigger)
      if (opened.length > 0)
        dispatch.set(trigger, this.out.alternatives(opened.map((o) => this.tag(o.tag, o.path, after, 1))));
    // A trigger that opens no tag is refused like an exclude.
    const excluded = [...triggers, ...this.tokens(f.exclude_tokens, `${path}.exclude_tokens`), ...endTokens];
    this.out.freeTokens(excluded, dispatch, next, textStart);
    if (!atLeastOne) return textStart;
    return this.out.alternatives(tags.map((tag, i) => this.tag(tag, `${path}.tags[${i}]`, after)));
  }

  /** Free tokens until one of the rules' tokens, which the rule's format follows, as dispatch does with strings. */
  private tokenDispatch(
    f: Format,
    path: string,
    next: number,
    ends: readonly string[],
    endTokens: readonly number[],
  ): number {
    const textStart = this.out.placeholder();
    const dispatch = this.dispatchRules(f, path, textStart, next, ends, endTokens, 'token', (v, p) =>
      this.token(v, p),
    );
    const excluded = [
      ...dispatch.keys(),
      ...this.tokens(f.exclude_tokens, `${path}.exclude_tokens`),
      ...endTokens,
    ];
    this.out.freeTokens(excluded, dispatch, next, textStart);
    return textStart;
  }
}

/**
 * Whether a format can take output without bound (xgrammar's IsUnlimited): free text or tokens,
 * any repeat without a maximum, and what holds one of them that its own excludes do not stop.
 */
function isUnlimited(f: unknown): boolean {
  if (!isObject(f)) return false;
  switch (f.type) {
    case 'any_text':
    case 'any_tokens':
    case 'triggered_tags':
    case 'token_triggered_tags':
    case 'dispatch':
    case 'token_dispatch':
    case 'tags_with_separator':
    case 'star':
    case 'plus':
      return true;
    case 'sequence':
    case 'or':
      return Array.isArray(f.elements) && f.elements.some((e) => isUnlimited(e) && !isExcluded(e));
    case 'optional':
      return isUnlimited(f.content);
    case 'repeat':
      return f.max === -1 || (f.max !== 0 && isUnlimited(f.content));
    default:
      return false;
  }
}

/** Whether an unlimited format has excludes of its own that can stop it (xgrammar's IsExcluded). */
function isExcluded(f: unknown): boolean {
  if (!isObject(f)) return false;
  const listed = (v: unknown) => Array.isArray(v) && v.length > 0;
  switch (f.type) {
    case 'any_text':
    case 'triggered_tags':
    case 'dispatch':
      return listed(f.excludes);
    case 'any_tokens':
    case 'token_triggered_tags':
    case 'token_dispatch':
      return listed(f.exclude_tokens);
    default:
      return false;
  }
}

function isObject(v: unknown): v is Format {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
