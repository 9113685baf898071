import { type Regular, thompson } from '../model/thompson.js';
import { GuideError } from './grammar-nodes.js';

/**
 * A context-free grammar in GBNF, the EBNF dialect of llama.cpp's grammars that vLLM's
 * guided_grammar takes (xgrammar's default backend reads it): rules `name ::= body`, the output
 * derived from `root`; in a body, "strings" and 'strings', character classes `[a-z]`, `[^"\\]`,
 * `.` (any character), rule names, grouping, `|`, and the repeats `*`, `+`, `?`, `{m}`, `{m,}`,
 * `{m,n}`; `#` comments. A body may run over several lines: a rule ends where the next `name ::=`
 * begins. Characters are code points, matched against the output's UTF-8.
 *
 * It is compiled to one Thompson NFA over all rules, whose steps read a character class, split,
 * call a rule (returning to `next`) or end the rule: the byte matcher runs it as a pushdown
 * automaton, one stack of return states per live path. Left recursion (a rule that can reach
 * itself before reading a character) and rules that can never end are refused by name, so every
 * state the matcher reaches can still complete.
 */
export type GrammarStep =
  /** Reads one character in `ranges` (sorted, disjoint [lo, hi] code point pairs, flat). */
  | { op: 'chars'; ranges: readonly number[]; next: number }
  | { op: 'split'; next: number; alt: number }
  | { op: 'call'; rule: number; next: number }
  | { op: 'end' }
  /**
   * A value of grammar node `node` (a JSON value, or a regex), then `next`: structural tags
   * (structural-tag.ts) place JSON Schemas and regexes inside a grammar this way; GBNF has none.
   */
  | { op: 'value'; node: number; next: number }
  /**
   * Reads one whole token, whatever its bytes: one of `ids`, or with `exclude` any token but
   * those (structural tags' token-level formats; GBNF has none). A token is read by its bytes or
   * whole, never partly each way, so a stack reaching this step inside a token dies there.
   */
  | { op: 'token'; ids: readonly number[]; exclude: boolean; next: number };

export interface GrammarProgram {
  readonly steps: readonly GrammarStep[];
  /** Each rule's first step. */
  readonly ruleStart: readonly number[];
  readonly ruleNames: readonly string[];
  readonly root: number;
}

/** Expanded repeats can make a small grammar huge; past this it is refused. */
const MAX_STEPS = 50_000;
const MAX_CODE_POINT = 0x10ffff;
/** Every code point but the UTF-16 surrogates, which UTF-8 cannot carry. */
const ANY: readonly number[] = [0, 0xd7ff, 0xe000, MAX_CODE_POINT];
const IDENTITY_ESCAPES = '\\"\'[]-^/.()|*+?{}# ';

type Expr = Regular<{ kind: 'chars'; ranges: number[] } | { kind: 'ref'; name: string; at: number }>;

type Token =
  | { t: 'name'; value: string; at: number }
  | { t: 'defines'; at: number }
  | { t: 'expr'; expr: Expr; at: number }
  | { t: 'op'; value: '(' | ')' | '|' | '*' | '+' | '?'; at: number }
  | { t: 'count'; min: number; max: number; at: number };

export function compileEbnf(text: string, param: string): GrammarProgram {
  return new EbnfCompiler(text, param).compile();
}

class EbnfCompiler {
  private pos = 0;
  private readonly steps: GrammarStep[] = [];

  constructor(
    private readonly text: string,
    private readonly param: string,
  ) {}

  private fail(why: string): never {
    throw new GuideError(`${this.param}: cannot follow the grammar: ${why}.`, this.param);
  }

  compile(): GrammarProgram {
    const tokens = this.tokenize();
    const rules = new Map<string, Expr>();
    let i = 0;
    while (i < tokens.length) {
      const name = tokens[i];
      if (name.t !== 'name' || tokens[i + 1]?.t !== 'defines')
        this.fail(`expected "name ::=" at offset ${name.at}`);
      let end = i + 2;
      while (end < tokens.length && !(tokens[end].t === 'name' && tokens[end + 1]?.t === 'defines')) end++;
      if (rules.has(name.value)) this.fail(`rule "${name.value}" is defined twice`);
      rules.set(name.value, new BodyParser(tokens.slice(i + 2, end), (why) => this.fail(why)).parse(name.at));
      i = end;
    }
    if (!rules.has('root')) this.fail('it has no rule "root"');
    const names = [...rules.keys()];
    const index = new Map(names.map((n, k) => [n, k]));
    for (const body of rules.values())
      forEachRef(body, (ref) => {
        if (!index.has(ref.name)) this.fail(`rule "${ref.name}" (offset ${ref.at}) is not defined`);
      });
    const ends = names.map(() => this.add({ op: 'end' }));
    const ruleStart = names.map((n, k) => this.emit(rules.get(n)!, ends[k], index));
    const program: GrammarProgram = {
      steps: this.steps,
      ruleStart,
      ruleNames: names,
      root: index.get('root')!,
    };
    checkProductive(program, (why) => this.fail(why));
    checkNoLeftRecursion(program, (why) => this.fail(why));
    return program;
  }

  private add(step: GrammarStep): number {
    if (this.steps.length >= MAX_STEPS) this.fail(`it expands to more than ${MAX_STEPS} steps`);
    this.steps.push(step);
    return this.steps.length - 1;
  }

  /** Steps for `e` that continue at `next`; returns its entry. */
  private emit(e: Expr, next: number, index: ReadonlyMap<string, number>): number {
    return thompson(
      e,
      next,
      (split) => this.add(split),
      (leaf, then) =>
        leaf.kind === 'chars'
          ? this.add({ op: 'chars', ranges: leaf.ranges, next: then })
          : this.add({ op: 'call', rule: index.get(leaf.name)!, next: then }),
    );
  }

  private tokenize(): Token[] {
    const out: Token[] = [];
    const s = this.text;
    while (this.pos < s.length) {
      const at = this.pos;
      const c = s[this.pos];
      if (/\s/.test(c)) this.pos++;
      else if (c === '#') while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      else if (s.startsWith('::=', this.pos)) {
        out.push({ t: 'defines', at });
        this.pos += 3;
      } else if (/[A-Za-z0-9_-]/.test(c)) {
        const m = /^[A-Za-z0-9_-]+/.exec(s.slice(this.pos)) as RegExpExecArray;
        out.push({ t: 'name', value: m[0], at });
        this.pos += m[0].length;
      } else if (c === '"' || c === "'") out.push({ t: 'expr', expr: this.literal(c), at });
      else if (c === '[') out.push({ t: 'expr', expr: this.charClass(), at });
      else if (c === '.') {
        out.push({ t: 'expr', expr: { kind: 'chars', ranges: [...ANY] }, at });
        this.pos++;
      } else if (c === '(' && s[this.pos + 1] === '=') this.fail('lookahead assertions are not supported');
      else if ('()|*+?'.includes(c)) {
        out.push({ t: 'op', value: c as '(' | ')' | '|' | '*' | '+' | '?', at });
        this.pos++;
      } else if (c === '{') {
        const m = /^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/.exec(s.slice(this.pos));
        if (!m) this.fail(`a malformed repeat count at offset ${at}`);
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
        if (max < min)
          this.fail(`the repeat {${m[1]},${m[3]}} at offset ${at} has its maximum below its minimum`);
        out.push({ t: 'count', min, max, at });
        this.pos += m[0].length;
      } else this.fail(`unexpected ${JSON.stringify(c)} at offset ${at}`);
    }
    return out;
  }

  private literal(quote: string): Expr {
    const start = this.pos++;
    const items: Expr[] = [];
    while (this.text[this.pos] !== quote) {
      if (this.pos >= this.text.length || this.text[this.pos] === '\n')
        this.fail(`the string at offset ${start} is not closed`);
      const cp = this.char();
      items.push({ kind: 'chars', ranges: [cp, cp] });
    }
    this.pos++;
    if (items.length === 0) return { kind: 'seq', items: [] };
    return items.length === 1 ? items[0] : { kind: 'seq', items };
  }

  private charClass(): Expr {
    const start = this.pos++;
    const negated = this.text[this.pos] === '^';
    if (negated) this.pos++;
    const ranges: Array<[number, number]> = [];
    while (this.text[this.pos] !== ']') {
      if (this.pos >= this.text.length) this.fail(`the character class at offset ${start} is not closed`);
      const lo = this.char();
      let hi = lo;
      if (this.text[this.pos] === '-' && this.text[this.pos + 1] !== ']') {
        this.pos++;
        hi = this.char();
        if (hi < lo) this.fail(`the range at offset ${start} runs backwards`);
      }
      ranges.push([lo, hi]);
    }
    this.pos++;
    const merged = mergeRanges(ranges);
    return { kind: 'chars', ranges: negated ? complement(merged) : merged };
  }

  /** One character of a string or class, its escape decoded. */
  private char(): number {
    const s = this.text;
    const c = s.codePointAt(this.pos)!;
    if (c !== 0x5c) {
      this.pos += c > 0xffff ? 2 : 1;
      return c;
    }
    const e = s[this.pos + 1];
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, '0': 0, f: 12, v: 11, b: 8, a: 7 };
    if (e in simple) {
      this.pos += 2;
      return simple[e];
    }
    const hexLength = { x: 2, u: 4, U: 8 }[e as 'x' | 'u' | 'U'];
    if (hexLength) {
      const hex = s.slice(this.pos + 2, this.pos + 2 + hexLength);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== hexLength)
        this.fail(`a malformed \\${e} escape at offset ${this.pos}`);
      const cp = Number.parseInt(hex, 16);
      if (cp > MAX_CODE_POINT || (cp >= 0xd800 && cp <= 0xdfff))
        this.fail(`\\${e}${hex} at offset ${this.pos} is not a character UTF-8 can carry`);
      this.pos += 2 + hexLength;
      return cp;
    }
    if (e === undefined) this.fail('the grammar ends in a backslash');
    // Punctuation escapes stand for themselves; a letter (\d, \w) would mean a class GBNF lacks.
    if (!IDENTITY_ESCAPES.includes(e)) this.fail(`unknown escape "\\${e}" at offset ${this.pos}`);
    this.pos += 2;
    return e.codePointAt(0)!;
  }
}

/** alternatives := sequence ('|' sequence)*; sequence := (atom repeat*)*; atom := expr | name | '(' alternatives ')'. */
class BodyParser {
  private i = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly fail: (why: string) => never,
  ) {}

  parse(at: number): Expr {
    const e = this.alternatives();
    if (this.i < this.tokens.length) this.fail(`unexpected ")" at offset ${this.tokens[this.i].at}`);
    if (this.tokens.length === 0) this.fail(`the rule at offset ${at} has an empty body`);
    return e;
  }

  private alternatives(): Expr {
    const options = [this.sequence()];
    while (this.peekOp('|')) {
      this.i++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0] : { kind: 'alt', options };
  }

  private sequence(): Expr {
    const items: Expr[] = [];
    for (;;) {
      const tok = this.tokens[this.i];
      if (!tok || (tok.t === 'op' && (tok.value === '|' || tok.value === ')'))) break;
      let item: Expr;
      if (tok.t === 'expr') {
        item = tok.expr;
        this.i++;
      } else if (tok.t === 'name') {
        item = { kind: 'ref', name: tok.value, at: tok.at };
        this.i++;
      } else if (tok.t === 'op' && tok.value === '(') {
        this.i++;
        item = this.alternatives();
        if (!this.peekOp(')')) this.fail(`the group at offset ${tok.at} is not closed`);
        this.i++;
      } else this.fail(`nothing to repeat at offset ${tok.at}`);
      for (;;) {
        const r = this.tokens[this.i];
        if (r?.t === 'op' && (r.value === '*' || r.value === '+' || r.value === '?')) {
          const [min, max] = r.value === '*' ? [0, Infinity] : r.value === '+' ? [1, Infinity] : [0, 1];
          item = { kind: 'repeat', item, min, max };
        } else if (r?.t === 'count') item = { kind: 'repeat', item, min: r.min, max: r.max };
        else break;
        this.i++;
      }
      items.push(item);
    }
    return items.length === 1 ? items[0] : { kind: 'seq', items };
  }

  private peekOp(value: string): boolean {
    const tok = this.tokens[this.i];
    return tok?.t === 'op' && tok.value === value;
  }
}

function forEachRef(e: Expr, visit: (ref: Extract<Expr, { kind: 'ref' }>) => void): void {
  if (e.kind === 'ref') visit(e);
  else if (e.kind === 'seq') for (const x of e.items) forEachRef(x, visit);
  else if (e.kind === 'alt') for (const x of e.options) forEachRef(x, visit);
  else if (e.kind === 'repeat') forEachRef(e.item, visit);
}

function mergeRanges(ranges: Array<[number, number]>): number[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of sorted) {
    if (out.length > 0 && lo <= out[out.length - 1] + 1)
      out[out.length - 1] = Math.max(out[out.length - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

/** Every character UTF-8 can carry that `ranges` lacks. */
function complement(ranges: readonly number[]): number[] {
  const out: number[] = [];
  let from = 0;
  for (let k = 0; k < ranges.length; k += 2) {
    if (ranges[k] > from) out.push(from, ranges[k] - 1);
    from = ranges[k + 1] + 1;
  }
  if (from <= MAX_CODE_POINT) out.push(from, MAX_CODE_POINT);
  // Less the surrogates.
  const pairs: Array<[number, number]> = [];
  for (let k = 0; k < out.length; k += 2) {
    for (const [lo, hi] of [
      [out[k], Math.min(out[k + 1], 0xd7ff)],
      [Math.max(out[k], 0xe000), out[k + 1]],
    ])
      if (lo <= hi) pairs.push([lo, hi]);
  }
  return mergeRanges(pairs);
}

/** Whether some code point in [first, last] is in `ranges`. */
export function rangesMeet(ranges: readonly number[], first: number, last: number): boolean {
  for (let k = 0; k < ranges.length; k += 2) if (ranges[k] <= last && ranges[k + 1] >= first) return true;
  return false;
}

/** Marks rules whose start `holds`, again and again while marking one lets another hold. */
function markUntilStable(p: GrammarProgram, marked: Uint8Array, holds: (start: number) => boolean): void {
  for (let changed = true; changed; ) {
    changed = false;
    p.ruleStart.forEach((start, r) => {
      if (!marked[r] && holds(start)) {
        marked[r] = 1;
        changed = true;
      }
    });
  }
}

/**
 * The steps reached from `start` through splits, and through the other steps `onward` lets pass
 * (it names where they lead; an end leads nowhere).
 */
function visitSteps(
  p: GrammarProgram,
  start: number,
  onward: (step: Exclude<GrammarStep, { op: 'split' }>) => readonly number[],
): Set<number> {
  const seen = new Set<number>();
  const stack = [start];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    const step = p.steps[s];
    if (step.op === 'split') stack.push(step.next, step.alt);
    else stack.push(...onward(step));
  }
  return seen;
}

/**
 * Every rule can end (derive some text): otherwise the matcher could lead the output into a rule
 * it can never leave. A character class with no character counts as never ending.
 */
function checkProductive(p: GrammarProgram, fail: (why: string) => never): void {
  const ends = new Uint8Array(p.ruleNames.length);
  /** Whether the rule's end is reachable from `start`, through the rules known to end so far. */
  const reachesEnd = (start: number): boolean =>
    [
      ...visitSteps(p, start, (step) => {
        if (step.op === 'chars') return step.ranges.length > 0 ? [step.next] : [];
        return step.op === 'call' && ends[step.rule] ? [step.next] : [];
      }),
    ].some((s) => p.steps[s].op === 'end');
  markUntilStable(p, ends, (start) => reachesEnd(start));
  const stuck = p.ruleNames.filter((_, r) => !ends[r]);
  if (stuck.length > 0) fail(`rule ${stuck.map((n) => `"${n}"`).join(', ')} can never end`);
}

/** No rule reaches a call of itself before reading a character (through rules that can be empty). */
function checkNoLeftRecursion(p: GrammarProgram, fail: (why: string) => never): void {
  const nullable = new Uint8Array(p.ruleNames.length);
  /** The rules called from `start` before any character, and whether the rule can end so. */
  const leading = (start: number): { calls: Set<number>; empty: boolean } => {
    const calls = new Set<number>();
    let empty = false;
    for (const s of visitSteps(p, start, (step) =>
      step.op === 'call' && nullable[step.rule] ? [step.next] : [],
    )) {
      const step = p.steps[s];
      if (step.op === 'end') empty = true;
      else if (step.op === 'call') calls.add(step.rule);
    }
    return { calls, empty };
  };
  markUntilStable(p, nullable, (start) => leading(start).empty);
  const first = p.ruleStart.map((start) => leading(start).calls);
  p.ruleNames.forEach((name, r) => {
    const seen = new Set<number>();
    const stack = [...first[r]];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x === r) fail(`rule "${name}" is left-recursive (it can reach itself before reading a character)`);
      if (seen.has(x)) continue;
      seen.add(x);
      stack.push(...first[x]);
    }
  });
}
