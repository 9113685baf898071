import type { LinearRegex } from '../model/linear-regex.js';
import { type GrammarProgram, type GrammarStep, rangesMeet } from './ebnf-grammar.js';
import { type Grammar, type GrammarNode, throughUnions } from './grammar-nodes.js';
import {
  isWs,
  LEX_START,
  lexKey,
  lexString,
  NUMBER_ENDS,
  type NumberPhase,
  numberStart,
  numberStep,
  QUOTE,
  type StringLex,
} from './json-lex.js';
import { type NumberRange, rangeHolds, rangeReachable } from './number-range.js';
import { listedKeys, type ObjectSpec } from './object-keys.js';
import { partialRange, regexMayRead, utf8Step } from './utf8-chars.js';

/**
 * A pushdown matcher over the bytes of a structured output: which bytes may come next, given
 * those so far. Its state is a set of stacks (a union keeps one per live option) of immutable
 * frames, so a state is shared freely between the vocabulary walk's branches (token-guide.ts)
 * and never copied. JSON is matched as RFC 8259 writes it, UTF-8 checked inside strings.
 */

/** JSON whitespace between tokens, at most this many bytes in a row (a model could loop on it forever). */
export const MAX_WHITESPACE_RUN = 32;

/**
 * A `pattern` string's \u escapes stay below U+1000 (control characters and the first scripts):
 * their feasibility is then a range of at most 4,096 characters, and no surrogate pair needs
 * joining. Every other character is still written, as itself in UTF-8.
 */
const PATTERN_ESCAPE_LIMIT = 0x1000;

type ObjectPhase = 'open' | 'comma' | 'key' | 'colon' | 'after';

type Frame =
  /** `sep`: the spaces compact JSON writes before this value (1 after `:` and `,`, 0 at the root). */
  | { readonly t: 'value'; readonly node: number; readonly ws: number; readonly sep: 0 | 1 }
  | {
      readonly t: 'object';
      readonly node: number;
      readonly phase: ObjectPhase;
      /** Index of the first listed property that may still be written (listed order). */
      readonly next: number;
      /** With any_order: '1' at each listed property written ('' before any). */
      readonly written: string;
      readonly ws: number;
      /** In 'key': the key's bytes so far (one char per byte) and its lexer; in 'colon': the property (-1: additional). */
      readonly key: string;
      readonly lex: StringLex;
      readonly prop: number;
      /** Keys written so far, listed and additional (minProperties / maxProperties count them). */
      readonly count: number;
    }
  | {
      readonly t: 'array';
      readonly node: number;
      readonly phase: 'open' | 'after';
      readonly count: number;
      readonly ws: number;
      /**
       * uniqueItems: the items written so far (literalItem, numberItem, or "s" and a string
       * item's value), else null.
       */
      readonly seen: readonly string[] | null;
    }
  /** `rx`: a `pattern` string's regex states after the characters read (null: no pattern). */
  | {
      readonly t: 'string';
      readonly node: number;
      readonly lex: StringLex;
      readonly rx: readonly number[] | null;
      /** An item of a uniqueItems array: its value's characters so far, else null. */
      readonly value: string | null;
    }
  /**
   * `node` -1: a number of an 'any' value. A node with a range (number-range.ts) keeps the
   * number's `text` so far and takes no exponent; others keep no text.
   */
  | {
      readonly t: 'number';
      readonly node: number;
      readonly integer: boolean;
      readonly phase: NumberPhase;
      readonly text: string;
    }
  /**
   * A regex root: its NFA states, and a UTF-8 character in progress (`cont` bytes still due, the
   * next within [lo, hi], its code point so far in `cp`).
   */
  | {
      readonly t: 'regex';
      readonly node: number;
      readonly states: readonly number[];
      readonly cont: number;
      readonly lo: number;
      readonly hi: number;
      readonly cp: number;
      /**
       * A regex a grammar placed that has read nothing yet: where it may match the empty text,
       * the grammar went on past it already (cfgEnter), so it does not end before a byte too.
       */
      readonly fresh?: boolean;
    }
  /**
   * A grammar root (ebnf-grammar.ts): at a `chars` step, with a UTF-8 character in progress as in
   * a regex frame; below it on the stack, the return steps of the rules it is inside.
   */
  | {
      readonly t: 'cfg';
      readonly step: number;
      readonly cont: number;
      readonly lo: number;
      readonly hi: number;
      readonly cp: number;
    }
  /** `node` -1: true/false/null of an 'any' value; `live`: indices of the texts still matching. */
  | { readonly t: 'literal'; readonly node: number; readonly pos: number; readonly live: readonly number[] }
  /**
   * Where a grammar goes on after a value one of its `value` steps placed (a structural tag's JSON
   * or regex part): a step that need not read a character itself, entered when the value is done.
   */
  | { readonly t: 'resume'; readonly step: number }
  /** At a grammar's `token` step: it reads a whole token (feedToken), never a byte. */
  | { readonly t: 'token'; readonly step: number };

export interface Stack {
  readonly frame: Frame;
  /** The enclosing frame, already in its state after this value; null: this is the root value. */
  readonly up: Stack | null;
  /** Memoized state key. */
  key?: string;
}

/** Distinct states a matcher keeps for reuse before it starts over (each is a few small objects). */
const MAX_INTERNED_STATES = 100_000;

const NO_STATES: readonly Stack[] = [];

/** The root value is complete: only the end of the output may follow. */
export const DONE: Stack = { frame: { t: 'literal', node: -2, pos: 0, live: [] }, up: null, key: 'done' };

const JSON_LITERALS = [
  new TextEncoder().encode('true'),
  new TextEncoder().encode('false'),
  new TextEncoder().encode('null'),
];

export class ByteMatcher {
  private readonly nodes: readonly GrammarNode[];
  /** feed's results, by state object and byte (states are immutable, so they never go stale). */
  private readonly transitions = new WeakMap<readonly Stack[], Map<number, readonly Stack[]>>();
  private readonly interned = new Map<string, readonly Stack[]>();
  private readonly objectSpecs = new Map<number, ObjectSpec>();
  /** A literal node's distinct values, for the uniqueItems arrays of its items. */
  private readonly distinctItems = new Map<number, number>();

  /** Compact JSON (Grammar.compact): whitespace only as json.dumps's separators write it. */
  private readonly compact: boolean;

  /** The grammar has `token` steps (a structural tag's token-level formats); else tokens are only bytes. */
  private readonly readsTokens: boolean;

  constructor(readonly grammar: Grammar) {
    this.nodes = grammar.nodes;
    this.compact = grammar.compact === true;
    const root = grammar.nodes[grammar.root];
    this.readsTokens = root.kind === 'cfg' && root.program.steps.some((step) => step.op === 'token');
  }

  /**
   * How many whitespace bytes like `b` may stand where compact JSON writes `sep` spaces
   * (MAX_WHITESPACE_RUN of any kind otherwise).
   */
  private wsLimit(b: number, sep: 0 | 1): number {
    if (!this.compact) return MAX_WHITESPACE_RUN;
    return b === 0x20 ? sep : 0;
  }

  /** The state before any byte. */
  start(): readonly Stack[] {
    const g = this.grammar;
    const root = this.nodes[g.root];
    if (root.kind === 'regex')
      return [
        {
          frame: { t: 'regex', node: g.root, states: root.regex.streamStart(), cont: 0, lo: 0, hi: 0, cp: 0 },
          up: null,
        },
      ];
    if (root.kind === 'cfg') {
      const out: Stack[] = [];
      this.cfgEnter(root.program.ruleStart[root.program.root], null, out, new Set());
      return out;
    }
    return [
      { frame: g.json ? { t: 'value', node: g.root, ws: 0, sep: 0 } : this.literalStart(g.root), up: null },
    ];
  }

  /** Whether the output may end in this state (the root value is complete). */
  canEnd(states: readonly Stack[]): boolean {
    return states.some((s) => this.mayEnd(s));
  }

  /** Whether the output may end with this stack: its value is complete, and so is everything around it. */
  private mayEnd(s: Stack): boolean {
    if (s === DONE) return true;
    const f = s.frame;
    switch (f.t) {
      case 'number':
        return this.numberMayEnd(f) && this.mayEnd(pop(s));
      case 'regex':
        return f.cont === 0 && this.regexOf(f.node).streamAccepts(f.states) && this.mayEnd(pop(s));
      case 'resume': {
        const here: Stack[] = [];
        this.cfgEnter(f.step, s.up, here, new Set());
        return here.includes(DONE);
      }
      default:
        return false;
    }
  }

  /** The states after byte `b`; none: `b` may not come next. */
  feed(states: readonly Stack[], b: number): readonly Stack[] {
    // The hot path of every vocabulary walk: a known transition is found without making a closure.
    const known = this.transitions.get(states)?.get(b);
    if (known) return known;
    return this.transition(states, b, (s, out) => this.feedOne(s, b, out));
  }

  /**
   * The states after token `id` read whole, by the stacks at a `token` step that takes it (the
   * other stacks read a token by its bytes, through feed); none: no such step takes it.
   */
  feedToken(states: readonly Stack[], id: number): readonly Stack[] {
    if (!this.readsTokens) return NO_STATES;
    // Token transitions share the byte transitions' table under negative keys.
    return this.transition(states, -1 - id, (stack, out) => {
      for (const s of this.atTokenSteps(stack)) {
        const step = this.program().steps[s.frame.step] as Extract<GrammarStep, { op: 'token' }>;
        if (step.ids.includes(id) !== step.exclude) this.cfgEnter(step.next, s.up, out, new Set());
      }
    });
  }

  /** The stacks of `s` at a `token` step: itself, or where a finished value's grammar goes on. */
  private atTokenSteps(s: Stack): Array<Stack & { frame: { t: 'token' } }> {
    const isAt = (t: Stack): t is Stack & { frame: { t: 'token' } } => t !== DONE && t.frame.t === 'token';
    if (s === DONE || s.frame.t !== 'resume') return isAt(s) ? [s] : [];
    const here: Stack[] = [];
    this.cfgEnter(s.frame.step, s.up, here, new Set());
    return here.filter(isAt);
  }

  /**
   * The tokens the `token` steps of this state take whole: `ids`, and every token but each list
   * of `excluded` (one per excluding step); null where no stack is at such a step.
   */
  tokenSteps(states: readonly Stack[]): { ids: number[]; excluded: Array<readonly number[]> } | null {
    if (!this.readsTokens) return null;
    let found: { ids: number[]; excluded: Array<readonly number[]> } | null = null;
    for (const s of states.flatMap((stack) => this.atTokenSteps(stack))) {
      const step = this.program().steps[s.frame.step] as Extract<GrammarStep, { op: 'token' }>;
      found ??= { ids: [], excluded: [] };
      if (step.exclude) found.excluded.push(step.ids);
      else found.ids.push(...step.ids);
    }
    return found;
  }

  /** The states of `a` and `b` together. */
  union(a: readonly Stack[], b: readonly Stack[]): readonly Stack[] {
    if (a.length === 0) return b;
    if (b.length === 0) return a;
    return this.intern(this.dedupe([...a, ...b]));
  }

  private transition(
    states: readonly Stack[],
    key: number,
    feedOne: (s: Stack, out: Stack[]) => void,
  ): readonly Stack[] {
    let row = this.transitions.get(states);
    const known = row?.get(key);
    if (known) return known;
    const out: Stack[] = [];
    for (const s of states) feedOne(s, out);
    const next = out.length === 0 ? NO_STATES : this.intern(this.dedupe(out));
    if (!row) {
      row = new Map();
      this.transitions.set(states, row);
    }
    row.set(key, next);
    return next;
  }

  /**
   * One object per distinct state (by stateKey), so a walk that comes back to a state it has
   * been in (a loop over a character class, a string's body) finds its transitions already made:
   * a vocabulary walk then costs a lookup per trie node there, not a matcher step.
   */
  private intern(states: Stack[]): readonly Stack[] {
    const key = this.stateKey(states);
    const known = this.interned.get(key);
    if (known) return known;
    if (this.interned.size >= MAX_INTERNED_STATES) this.interned.clear();
    this.interned.set(key, states);
    return states;
  }

  /**
   * Characters a string may still take when the state is inside one at a character boundary
   * (a string value, or an additional object key), with nothing else possible; else null. Any
   * byte string of that many plain characters (no quote, backslash or control character, whole
   * UTF-8 characters) then keeps the state inside the string: token-guide.ts allows such tokens
   * without walking their bytes.
   */
  stringRoom(states: readonly Stack[]): number | null {
    if (states.length !== 1 || states[0] === DONE) return null;
    const f = states[0].frame;
    const plain = (l: StringLex) => !l.esc && l.hex === 0 && l.cont === 0;
    if (f.t === 'string' && f.rx === null && plain(f.lex)) {
      const n = this.nodes[f.node];
      return n.kind === 'string' ? n.maxLength - f.lex.len : Number.POSITIVE_INFINITY;
    }
    if (f.t === 'object' && f.phase === 'key' && f.key === UNLISTED_KEY && plain(f.lex))
      return Number.POSITIVE_INFINITY;
    return null;
  }

  /** A key naming the state: equal keys accept the same byte strings. */
  stateKey(states: readonly Stack[]): string {
    if (states.length === 1) return this.stackKey(states[0]);
    return [...new Set(states.map((s) => this.stackKey(s)))].sort().join('#');
  }

  /** The state with duplicate stacks (equal keys) dropped. */
  dedupe(states: Stack[]): Stack[] {
    if (states.length < 2) return states;
    const seen = new Map<string, Stack>();
    for (const s of states) {
      const k = this.stackKey(s);
      if (!seen.has(k)) seen.set(k, s);
    }
    return [...seen.values()];
  }

  private stackKey(s: Stack): string {
    if (s.key === undefined) s.key = `${this.frameKey(s.frame)}|${s.up ? this.stackKey(s.up) : ''}`;
    return s.key;
  }

  private frameKey(f: Frame): string {
    switch (f.t) {
      case 'value':
        return `v${f.node},${f.ws},${f.sep}`;
      case 'object': {
        const o = this.objectSpec(f.node);
        // Without maxProperties, every count past minProperties accepts the same.
        const count = o.maxProperties === Infinity ? Math.min(f.count, o.minProperties) : f.count;
        return `o${f.node},${f.phase},${f.next},${f.written},${f.ws},${f.prop},${count},${lexKey(f.lex, 0, Infinity)},${f.key}`;
      }
      case 'array': {
        const a = this.arraySpec(f.node);
        // Past the prefix and minItems, with no maxItems, every count accepts the same.
        const count =
          a.maxItems === Infinity ? Math.min(f.count, Math.max(a.prefix.length, a.minItems) + 1) : f.count;
        // A uniqueItems array's items written so far decide what may come; their order does not.
        const seen = f.seen ? `|${JSON.stringify([...f.seen].sort())}` : '';
        return `a${f.node},${f.phase},${count},${f.ws}${seen}`;
      }
      case 'string': {
        const n = this.nodes[f.node];
        const [min, max] = n.kind === 'string' ? [n.minLength, n.maxLength] : [0, Infinity];
        // A character's bits matter only while it is being read.
        const partial = f.lex.cont > 0 || f.lex.hex > 0 ? `,${f.lex.cp}` : '';
        const rx = f.rx ? `,${f.rx.join(' ')}${partial}` : '';
        const value = f.value === null ? '' : `|${JSON.stringify(f.value)}`;
        return `s${f.node},${lexKey(f.lex, min, max)}${rx}${value}`;
      }
      case 'number':
        return `n${f.node},${f.integer ? 'i' : 'f'}${f.phase},${f.text}`;
      case 'literal':
        return `l${f.node},${f.pos},${f.live.join(' ')}`;
      case 'regex':
        return `r${f.node},${f.states.join(' ')},${f.cont},${f.lo}-${f.hi},${f.cp}${f.fresh ? ',f' : ''}`;
      case 'cfg':
        return `g${f.step},${f.cont},${f.lo}-${f.hi},${f.cp}`;
      case 'resume':
        return `R${f.step}`;
      case 'token':
        return `T${f.step}`;
    }
  }

  private feedOne(s: Stack, b: number, out: Stack[]): void {
    if (s === DONE) return;
    const f = s.frame;
    switch (f.t) {
      case 'token':
        return; // it reads a whole token (feedToken), never a byte
      case 'value':
        if (isWs(b)) {
          if (f.ws < this.wsLimit(b, f.sep)) out.push({ frame: { ...f, ws: f.ws + 1 }, up: s.up });
        } else if (!this.compact || f.ws === f.sep) this.begin(f.node, b, s.up, out);
        return;
      case 'object':
        this.feedObject(f, s, b, out);
        return;
      case 'array':
        this.feedArray(f, s, b, out);
        return;
      case 'string': {
        const n = this.nodes[f.node];
        const [min, max] = n.kind === 'string' ? [n.minLength, n.maxLength] : [0, Infinity];
        const lex = lexString(f.lex, b, max);
        const pattern = f.rx && this.patternOf(f.node);
        if (lex === 'close') {
          if (f.lex.len >= min && (!pattern || pattern.streamAccepts(f.rx!))) {
            const up = f.value === null ? pop(s) : this.itemDone(s, `s${f.value}`);
            if (up) out.push(up);
          }
        } else if (lex) {
          const rx = pattern ? patternStep(pattern, f.rx!, lex) : null;
          const boundary = lex.cont === 0 && lex.hex === 0 && !lex.esc;
          if (pattern && (!rx || (boundary && !lengthsFit(pattern, rx, lex.len, min, max)))) return;
          const value = f.value !== null && boundary ? f.value + String.fromCodePoint(lex.cp) : f.value;
          out.push({ frame: { ...f, lex, rx, value }, up: s.up });
        }
        return;
      }
      case 'number': {
        const phase = numberStep(f.phase, b, f.integer);
        const seen = seenBy(s.up);
        const next = phase && this.numberFrame(f.node, f.integer, phase, f.text, b, seen);
        if (next) out.push({ frame: next, up: s.up });
        else if (!phase && this.numberMayEnd(f)) {
          // A number ends at the byte after it, which its array then reads.
          const up = seen === null ? pop(s) : this.itemDone(s, numberItem(f.text));
          if (up) this.feedOne(up, b, out);
        }
        return;
      }
      case 'regex': {
        // A regex inside a grammar may end before `b`, which what follows it then reads.
        if (s.up !== null && !f.fresh && f.cont === 0 && this.regexOf(f.node).streamAccepts(f.states))
          this.feedOne(s.up, b, out);
        const char = utf8Step(f, b);
        if (!char) return;
        if (char.cont > 0) {
          // A character in progress is taken only if one it can still become continues the match.
          const [first, last] = partialRange(char);
          if (!regexMayRead(this.regexOf(f.node), f.states, first, last)) return;
          out.push({ frame: { ...f, ...char, fresh: false }, up: s.up });
          return;
        }
        // One character per code point, as Python's re reads text.
        const states = this.regexOf(f.node).streamStep(f.states, String.fromCodePoint(char.cp));
        if (states.length === 0) return;
        out.push({ frame: { ...f, states, cont: 0, lo: 0, hi: 0, cp: 0, fresh: false }, up: s.up });
        return;
      }
      case 'cfg': {
        const step = this.program().steps[f.step] as Extract<GrammarStep, { op: 'chars' }>;
        const char = utf8Step(f, b);
        if (!char) return;
        if (char.cont > 0) {
          const [first, last] = partialRange(char);
          if (rangesMeet(step.ranges, first, last)) out.push({ frame: { ...f, ...char }, up: s.up });
        } else if (rangesMeet(step.ranges, char.cp, char.cp)) this.cfgEnter(step.next, s.up, out, new Set());
        return;
      }
      case 'resume': {
        const here: Stack[] = [];
        this.cfgEnter(f.step, s.up, here, new Set());
        for (const t of here) this.feedOne(t, b, out);
        return;
      }
      case 'literal': {
        const texts = this.literalTexts(f.node);
        // An item of a uniqueItems array follows only the values not written yet.
        const seen = seenBy(s.up);
        let ends: number | null = null;
        const live: number[] = [];
        for (const i of f.live) {
          const t = texts[i];
          if (t[f.pos] !== b || seen?.includes(literalItem(t))) continue;
          if (t.length === f.pos + 1) ends = i;
          else live.push(i);
        }
        if (ends !== null) out.push(seen ? (this.itemDone(s, literalItem(texts[ends])) as Stack) : pop(s));
        if (live.length > 0) out.push({ frame: { ...f, pos: f.pos + 1, live }, up: s.up });
        return;
      }
    }
  }

  /** A value of `node` whose first byte is `b` (no whitespace before it). */
  private begin(node: number, b: number, up: Stack | null, out: Stack[]): void {
    const n = this.nodes[node];
    switch (n.kind) {
      case 'union':
        for (const o of n.options) this.begin(o, b, up, out);
        return;
      case 'literal':
        this.feedOne({ frame: this.literalStart(node), up }, b, out);
        return;
      case 'string':
        if (b === QUOTE) {
          const rx = n.pattern ? n.pattern.streamStart() : null;
          if (n.pattern && !lengthsFit(n.pattern, rx!, 0, n.minLength, n.maxLength)) return;
          out.push({ frame: { t: 'string', node, lex: LEX_START, rx, value: seenBy(up) ? '' : null }, up });
        }
        return;
      case 'number': {
        const phase = numberStart(b);
        const frame = phase && this.numberFrame(node, n.integer, phase, '', b, seenBy(up));
        if (frame) out.push({ frame, up });
        return;
      }
      case 'object':
        if (b === 0x7b) out.push({ frame: openObject(node), up });
        return;
      case 'array':
        if (b === 0x5b) {
          const seen = n.uniqueItems ? [] : null;
          out.push({ frame: { t: 'array', node, phase: 'open', count: 0, ws: 0, seen }, up });
        }
        return;
      case 'any': {
        if (b === 0x7b) out.push({ frame: openObject(node), up });
        else if (b === 0x5b)
          out.push({ frame: { t: 'array', node, phase: 'open', count: 0, ws: 0, seen: null }, up });
        else if (b === QUOTE)
          out.push({ frame: { t: 'string', node, lex: LEX_START, rx: null, value: null }, up });
        else {
          const phase = numberStart(b);
          if (phase) out.push({ frame: { t: 'number', node: -1, integer: false, phase, text: '' }, up });
          else this.feedOne({ frame: this.literalStart(-1), up }, b, out);
        }
        return;
      }
    }
  }

  private rangeOf(node: number): NumberRange | null {
    const n = node >= 0 ? this.nodes[node] : null;
    return n?.kind === 'number' ? (n.range ?? null) : null;
  }

  /**
   * The number frame after byte `b` put it in `phase`; null where the number's range cannot be
   * reached from there (or `b` starts an exponent, which a ranged number does not take).
   */
  private numberFrame(
    node: number,
    integer: boolean,
    phase: NumberPhase,
    text: string,
    b: number,
    seen: readonly string[] | null,
  ): Frame | null {
    const range = this.rangeOf(node);
    if (!range) {
      if (seen === null) return { t: 'number', node, integer, phase, text: '' };
      // An item of a uniqueItems array keeps its text, to be told from the items before it. Only
      // an integer 0 can take no more characters: where 0 is written already it cannot start.
      if (phase === 'zero' && integer && seen.includes(NUMBER_ZERO_ITEM)) return null;
      return { t: 'number', node, integer, phase, text: text + String.fromCharCode(b) };
    }
    if (phase === 'e') return null;
    const next = text + String.fromCharCode(b);
    return rangeReachable(range, next) ? { t: 'number', node, integer, phase, text: next } : null;
  }

  /** Whether the number may end here: a complete number, inside its range if it has one. */
  private numberMayEnd(f: Extract<Frame, { t: 'number' }>): boolean {
    if (!NUMBER_ENDS.has(f.phase)) return false;
    const range = this.rangeOf(f.node);
    return !range || rangeHolds(range, f.text);
  }

  private patternOf(node: number): LinearRegex | null {
    const n = this.nodes[node];
    return n.kind === 'string' ? (n.pattern ?? null) : null;
  }

  private program(): GrammarProgram {
    return (this.nodes[this.grammar.root] as { program: GrammarProgram }).program;
  }

  /**
   * The stacks at grammar step `step` inside the rules of `up`, each at a step that reads a
   * character, following splits, entering called rules (their return steps pushed) and leaving
   * ended ones; DONE where the root rule ends. `seen` cuts loops of steps that read nothing.
   */
  private cfgEnter(step: number, up: Stack | null, out: Stack[], seen: Set<string>): void {
    const key = `${step}|${up ? this.stackKey(up) : ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    const p = this.program();
    const at = p.steps[step];
    switch (at.op) {
      case 'chars':
        out.push({ frame: { t: 'cfg', step, cont: 0, lo: 0, hi: 0, cp: 0 }, up });
        return;
      case 'token':
        out.push({ frame: { t: 'token', step }, up });
        return;
      case 'split':
        this.cfgEnter(at.next, up, out, seen);
        this.cfgEnter(at.alt, up, out, seen);
        return;
      case 'call': {
        const back: Stack = { frame: { t: 'cfg', step: at.next, cont: 0, lo: 0, hi: 0, cp: 0 }, up };
        this.cfgEnter(p.ruleStart[at.rule], back, out, seen);
        return;
      }
      case 'end':
        if (up === null) out.push(DONE);
        else this.cfgEnter((up.frame as { step: number }).step, up.up, out, seen);
        return;
      case 'value': {
        // The value's frame, above the step after it; a regex that matches the empty text may also be skipped.
        const back: Stack = { frame: { t: 'resume', step: at.next }, up };
        const node = this.nodes[at.node];
        if (node.kind === 'regex') {
          const states = node.regex.streamStart();
          out.push({
            frame: { t: 'regex', node: at.node, states, cont: 0, lo: 0, hi: 0, cp: 0, fresh: true },
            up: back,
          });
          if (node.regex.streamAccepts(states)) this.cfgEnter(at.next, up, out, seen);
        } else out.push({ frame: { t: 'value', node: at.node, ws: 0, sep: 0 }, up: back });
        return;
      }
    }
  }

  private regexOf(node: number): LinearRegex {
    return (this.nodes[node] as { regex: LinearRegex }).regex;
  }

  /**
   * The stack a finished item of a uniqueItems array returns to, its value recorded there; null
   * where it repeats an earlier item (refused: a string item can then go on, a literal item was
   * never led there).
   */
  private itemDone(s: Stack, value: string): Stack | null {
    const up = s.up as Stack;
    const f = up.frame as Extract<Frame, { t: 'array' }>;
    if (f.seen!.includes(value)) return null;
    return { frame: { ...f, seen: [...f.seen!, value] }, up: up.up };
  }

  /** Items a uniqueItems array of literal items can still take (distinct values not written yet). */
  private itemsLeft(f: Extract<Frame, { t: 'array' }>, item: number | null): number {
    if (f.seen === null || item === null) return Number.POSITIVE_INFINITY;
    const n = throughUnions(this.nodes, item);
    if (this.nodes[n].kind !== 'literal') return Number.POSITIVE_INFINITY; // strings: always another one
    let distinct = this.distinctItems.get(n);
    if (distinct === undefined) {
      distinct = new Set(this.literalTexts(n).map(literalItem)).size;
      this.distinctItems.set(n, distinct);
    }
    return distinct - f.seen.length;
  }

  private literalTexts(node: number): readonly Uint8Array[] {
    return node === -1 ? JSON_LITERALS : (this.nodes[node] as { texts: readonly Uint8Array[] }).texts;
  }

  private literalStart(node: number): Frame {
    return { t: 'literal', node, pos: 0, live: this.literalTexts(node).map((_, i) => i) };
  }

  /** An object node's keys and bounds (an 'any' value's object: any keys), made once per node. */
  private objectSpec(node: number): ObjectSpec {
    let spec = this.objectSpecs.get(node);
    if (!spec) {
      const n = this.nodes[node];
      const properties = n.kind === 'object' ? n.properties : [];
      const requiredFrom = new Array<number>(properties.length + 1).fill(0);
      for (let i = properties.length - 1; i >= 0; i--)
        requiredFrom[i] = requiredFrom[i + 1] + (properties[i].required ? 1 : 0);
      spec =
        n.kind === 'object'
          ? {
              properties,
              additional: n.additional,
              minProperties: n.minProperties ?? 0,
              maxProperties: n.maxProperties ?? Infinity,
              requiredFrom,
              anyOrder: n.anyOrder === true,
            }
          : {
              properties,
              additional: node,
              minProperties: 0,
              maxProperties: Infinity,
              requiredFrom,
              anyOrder: false,
            };
      this.objectSpecs.set(node, spec);
    }
    return spec;
  }

  private arraySpec(node: number): {
    prefix: readonly number[];
    items: number | null;
    minItems: number;
    maxItems: number;
  } {
    const n = this.nodes[node];
    return n.kind === 'array' ? n : { prefix: [], items: node, minItems: 0, maxItems: Infinity };
  }

  private feedObject(f: Extract<Frame, { t: 'object' }>, s: Stack, b: number, out: Stack[]): void {
    const spec = this.objectSpec(f.node);
    const props = spec.properties;
    const listed = listedKeys(f, spec);
    /**
     * Whether the object can still be finished within minProperties / maxProperties once key `j`
     * (-1: an additional one) is written: as its key number count + 1, with the listed properties
     * that could still come after it (the required ones must fit under the maximum; all of them,
     * and any additional keys, may be needed to reach the minimum).
     */
    const fits = (j: number): boolean => {
      const count = f.count + 1;
      const left = listed.left(j);
      const most = spec.additional !== null ? Infinity : count + left.listed;
      return count + left.required <= spec.maxProperties && most >= spec.minProperties;
    };
    const listedFits = (j: number) => fits(j);
    const additionalFits = spec.additional !== null && fits(-1);
    const anyListed = listed.candidates.some(listedFits);
    const mayClose = listed.complete && f.count >= spec.minProperties;
    const mayAddKey = anyListed || additionalFits;
    // Compact JSON has one space after a comma and none anywhere else in an object.
    const sep = f.phase === 'comma' ? 1 : 0;
    const ws = () => {
      if (f.ws < this.wsLimit(b, sep)) out.push({ frame: { ...f, ws: f.ws + 1 }, up: s.up });
    };
    if (this.compact && !isWs(b) && f.phase !== 'key' && f.ws !== sep) return;
    switch (f.phase) {
      case 'open':
      case 'comma':
        if (isWs(b)) ws();
        else if (b === QUOTE && mayAddKey) {
          // With no listed names, every key is additional from its first byte.
          const key = props.length === 0 ? UNLISTED_KEY : '';
          out.push({ frame: { ...f, phase: 'key', key, lex: LEX_START, ws: 0 }, up: s.up });
        } else if (b === 0x7d && f.phase === 'open' && mayClose) out.push(pop(s));
        return;
      case 'key': {
        const lex = lexString(f.lex, b, Infinity);
        if (lex === null) return;
        const inRange = (raw: string, exact: boolean) => {
          for (const j of listed.candidates) {
            const name = props[j].keyText;
            if ((exact ? name === raw : name.startsWith(raw)) && listedFits(j)) return j;
          }
          return -1;
        };
        if (lex === 'close') {
          if (f.key === UNLISTED_KEY) {
            out.push({ frame: { ...f, phase: 'colon', prop: -1, ws: 0 }, up: s.up });
            return;
          }
          const j = inRange(f.key, true);
          if (j >= 0) out.push({ frame: { ...f, phase: 'colon', prop: j, ws: 0 }, up: s.up });
          else if (additionalFits && !props.some((p) => p.keyText === f.key))
            out.push({ frame: { ...f, phase: 'colon', prop: -1, ws: 0 }, up: s.up });
          return;
        }
        if (f.key === UNLISTED_KEY) {
          out.push({ frame: { ...f, lex }, up: s.up });
          return;
        }
        // The key's bytes are kept while they may still spell a listed name; past that it can
        // only be an additional key, whose bytes no longer matter (its states then share one key).
        const key = f.key + String.fromCharCode(b);
        if (props.some((p) => p.keyText.startsWith(key))) {
          if (inRange(key, false) >= 0 || additionalFits) out.push({ frame: { ...f, key, lex }, up: s.up });
        } else if (additionalFits) out.push({ frame: { ...f, key: UNLISTED_KEY, lex }, up: s.up });
        return;
      }
      case 'colon':
        if (isWs(b)) ws();
        else if (b === 0x3a) {
          const value = f.prop >= 0 ? props[f.prop].value : (spec.additional as number);
          const after: Stack = {
            frame: {
              ...f,
              phase: 'after',
              ...listed.written(f.prop),
              key: '',
              lex: LEX_START,
              prop: -1,
              ws: 0,
              count: f.count + 1,
            },
            up: s.up,
          };
          out.push({ frame: { t: 'value', node: value, ws: 0, sep: 1 }, up: after });
        }
        return;
      case 'after':
        if (isWs(b)) ws();
        else if (b === 0x2c && mayAddKey) out.push({ frame: { ...f, phase: 'comma', ws: 0 }, up: s.up });
        else if (b === 0x7d && mayClose) out.push(pop(s));
        return;
    }
  }

  private feedArray(f: Extract<Frame, { t: 'array' }>, s: Stack, b: number, out: Stack[]): void {
    const a = this.arraySpec(f.node);
    const itemNode = (i: number) => (i < a.prefix.length ? a.prefix[i] : a.items);
    if (isWs(b)) {
      // Compact JSON has no whitespace in an array but the space after a comma (the item's value frame).
      if (f.ws < this.wsLimit(b, 0)) out.push({ frame: { ...f, ws: f.ws + 1 }, up: s.up });
      return;
    }
    const close = b === 0x5d;
    if (close) {
      if (f.count >= a.minItems) out.push(pop(s));
      return;
    }
    const item = itemNode(f.count);
    if (f.count >= a.maxItems || item === null || this.itemsLeft(f, item) <= 0) return;
    const after: Stack = { frame: { ...f, phase: 'after', count: f.count + 1, ws: 0 }, up: s.up };
    if (f.phase === 'open') this.begin(item, b, after, out);
    else if (b === 0x2c) out.push({ frame: { t: 'value', node: item, ws: 0, sep: 1 }, up: after });
  }
}

/**
 * A `pattern` string's regex states after the byte that left the lexer at `lex`: stepped by the
 * character it completed, or kept while a character (UTF-8 bytes, an escape) is still being
 * written and some character it can become may be read next; null where none can.
 */
function patternStep(
  regex: LinearRegex,
  states: readonly number[],
  lex: StringLex,
): readonly number[] | null {
  // Every character an escape can stand for, one-letter ones included, is below the limit.
  if (lex.esc) return regexMayRead(regex, states, 0, PATTERN_ESCAPE_LIMIT - 1) ? states : null;
  if (lex.hex > 0) {
    const span = 16 ** lex.hex;
    const first = lex.cp * span;
    if (first >= PATTERN_ESCAPE_LIMIT) return null;
    const last = Math.min(first + span, PATTERN_ESCAPE_LIMIT) - 1;
    return regexMayRead(regex, states, first, last) ? states : null;
  }
  if (lex.cont > 0) {
    const [first, last] = partialRange(lex);
    return regexMayRead(regex, states, first, last) ? states : null;
  }
  const next = regex.streamStep(states, String.fromCodePoint(lex.cp));
  return next.length > 0 ? next : null;
}

/**
 * Whether a `pattern` string of `len` characters, its regex at `states`, can still close within
 * its length bounds: some full match is that many characters away (LinearRegex.streamLengths).
 */
function lengthsFit(
  regex: LinearRegex,
  states: readonly number[],
  len: number,
  min: number,
  max: number,
): boolean {
  if (states.length === 0) return false;
  const left = regex.streamLengths(states);
  return len + left.min <= max && len + left.max >= min;
}

/** An object key that can no longer be a listed property's name (an additional one). */
const UNLISTED_KEY = '\uffff';

function openObject(node: number): Frame {
  return {
    t: 'object',
    node,
    phase: 'open',
    next: 0,
    written: '',
    ws: 0,
    key: '',
    lex: LEX_START,
    prop: -1,
    count: 0,
  };
}

/** The items written so far when `up` is a uniqueItems array waiting for its next item, else null. */
function seenBy(up: Stack | null): readonly string[] | null {
  return up && up !== DONE && up.frame.t === 'array' ? up.frame.seen : null;
}

/**
 * A number item's value as a uniqueItems array records it: 1, 1.0 and 10e-1 are one value. The
 * exponent is kept as a number, never applied: a model may write 1e99999999.
 */
function numberItem(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text) as RegExpExecArray;
  const frac = m[3] ?? '';
  const digits = (m[2] + frac).replace(/^0+/, '');
  const significant = digits.replace(/0+$/, '');
  if (significant === '') return 'n0';
  const exponent = BigInt(m[4] ?? 0) - BigInt(frac.length) + BigInt(digits.length - significant.length);
  return `n${m[1]}${significant}e${exponent}`;
}
const NUMBER_ZERO_ITEM = numberItem('0');

const literalItems = new WeakMap<Uint8Array, string>();

/**
 * A literal item's value as a uniqueItems array records it (its canonical JSON text), made once
 * per text: the matcher asks for it on every byte of such an item.
 */
function literalItem(text: Uint8Array): string {
  let item = literalItems.get(text);
  if (item === undefined) {
    item = `l${String.fromCharCode(...text)}`;
    literalItems.set(text, item);
  }
  return item;
}

function pop(s: Stack): Stack {
  return s.up ?? DONE;
}
