import { type Regular, thompson } from './thompson.js';

/**
 * Full-match regular expressions in time linear in the text (a Pike VM over a Thompson NFA), for
 * the regexes PEFT adapter configs carry (`target_modules`, `exclude_modules` as a string). Those
 * arrive in files, soon over HTTP: JavaScript's backtracking RegExp would hang on `(.*.*)*X`,
 * this never backtracks, whatever the pattern.
 *
 * It reads Python's `re` syntax as PEFT's `re.fullmatch` does: literals, `.`, classes with ranges
 * and negation, `\d \w \s` (and their negations), groups (plain, `(?:…)`, `(?P<name>…)`), `|`,
 * `* + ? {m} {m,} {m,n} {,n}` (lazy or not: a full match does not care), `^ $ \A \Z`. Whatever
 * would change what matches and is not here (backreferences, lookaround, inline flags, possessive
 * quantifiers, `\b`) is refused by name, never guessed.
 */

export class RegexSyntaxError extends Error {}

type CharTest = (c: string) => boolean;
type AssertAt = 'start' | 'end' | 'end-or-final-newline';

type Node = Regular<{ kind: 'char'; test: CharTest } | { kind: 'assert'; at: AssertAt }>;

/** Counted repeats are expanded into copies; past this many NFA states the pattern is refused. */
const MAX_STATES = 20_000;

const isDigit: CharTest = (c) => c >= '0' && c <= '9';
const isWord: CharTest = (c) => /^[\p{L}\p{N}_]$/u.test(c);
const isSpace: CharTest = (c) => /^\s$/u.test(c);
const not =
  (test: CharTest): CharTest =>
  (c) =>
    !test(c);
const CLASS_ESCAPES: Record<string, CharTest> = {
  d: isDigit,
  D: not(isDigit),
  w: isWord,
  W: not(isWord),
  s: isSpace,
  S: not(isSpace),
};
const CONTROL_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', f: '\f', v: '\v', a: '\x07' };

class Parser {
  private pos = 0;
  constructor(private readonly source: string) {}

  parse(): Node {
    const node = this.alternation();
    if (this.pos < this.source.length) throw this.error(`unbalanced ")" at position ${this.pos}`);
    return node;
  }

  private error(problem: string): RegexSyntaxError {
    return new RegexSyntaxError(problem);
  }

  private peek(offset = 0): string | undefined {
    return this.source[this.pos + offset];
  }

  private alternation(): Node {
    const options = [this.sequence()];
    while (this.peek() === '|') {
      this.pos++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0] : { kind: 'alt', options };
  }

  private sequence(): Node {
    const items: Node[] = [];
    while (this.pos < this.source.length && this.peek() !== '|' && this.peek() !== ')') {
      items.push(this.quantified(this.atom()));
    }
    return { kind: 'seq', items };
  }

  private quantified(atom: Node): Node {
    const bounds = this.quantifier();
    if (!bounds) return atom;
    if (atom.kind === 'assert') throw this.error('a quantifier follows an anchor');
    if (this.peek() === '?') this.pos++;
    else if (this.peek() === '+') throw this.error('possessive quantifiers are not supported');
    if (this.quantifierAhead()) throw this.error(`multiple repeat at position ${this.pos}`);
    return { kind: 'repeat', item: atom, min: bounds.min, max: bounds.max };
  }

  private quantifierAhead(): boolean {
    const c = this.peek();
    return c === '*' || c === '+' || c === '?' || (c === '{' && this.countedBounds() !== null);
  }

  /** `{m}`, `{m,}`, `{,n}`, `{m,n}` at pos; anything else is a literal brace in Python. */
  private countedBounds(): { min: number; max: number; length: number } | null {
    const m = /^\{(\d*)(,(\d*))?\}/.exec(this.source.slice(this.pos));
    if (!m || (m[1] === '' && m[2] === undefined)) return null;
    const min = m[1] === '' ? 0 : Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
    if (max < min) throw this.error(`min repeat greater than max repeat in ${m[0]}`);
    return { min, max, length: m[0].length };
  }

  private quantifier(): { min: number; max: number } | null {
    const c = this.peek();
    if (c === '*' || c === '+' || c === '?') {
      this.pos++;
      return { min: c === '+' ? 1 : 0, max: c === '?' ? 1 : Number.POSITIVE_INFINITY };
    }
    if (c === '{') {
      const counted = this.countedBounds();
      if (counted) {
        this.pos += counted.length;
        return counted;
      }
    }
    return null;
  }

  private atom(): Node {
    const c = this.source[this.pos++];
    switch (c) {
      case '(':
        return this.group();
      case '[':
        return { kind: 'char', test: this.charClass() };
      case '.':
        return { kind: 'char', test: (ch) => ch !== '\n' };
      case '^':
        return { kind: 'assert', at: 'start' };
      case '$':
        return { kind: 'assert', at: 'end-or-final-newline' };
      case '\\':
        return this.escape();
      case '*':
      case '+':
      case '?':
        throw this.error(`nothing to repeat at position ${this.pos - 1}`);
      case '{':
        if (this.countedBoundsAt(this.pos - 1))
          throw this.error(`nothing to repeat at position ${this.pos - 1}`);
        return literal(c);
      default:
        return literal(c);
    }
  }

  private countedBoundsAt(position: number): boolean {
    const saved = this.pos;
    this.pos = position;
    const found = this.countedBounds() !== null;
    this.pos = saved;
    return found;
  }

  private group(): Node {
    if (this.peek() === '?') {
      const next = this.peek(1);
      if (next === ':') this.pos += 2;
      else if (next === 'P' && this.peek(2) === '<') {
        const close = this.source.indexOf('>', this.pos);
        if (close < 0) throw this.error('unterminated group name');
        this.pos = close + 1;
      } else {
        const what =
          next === '=' || next === '!' || next === '<'
            ? 'lookaround assertions'
            : next === 'P'
              ? 'named backreferences'
              : next === '#'
                ? 'comments'
                : 'inline flags and other (?…) extensions';
        throw this.error(`${what} are not supported`);
      }
    }
    const inner = this.alternation();
    if (this.peek() !== ')') throw this.error('missing ")"');
    this.pos++;
    return inner;
  }

  private escape(): Node {
    const c = this.source[this.pos++];
    if (c === undefined) throw this.error('a pattern cannot end with "\\"');
    if (c === 'A') return { kind: 'assert', at: 'start' };
    if (c === 'Z') return { kind: 'assert', at: 'end' };
    if (c in CLASS_ESCAPES) return { kind: 'char', test: CLASS_ESCAPES[c] };
    if (c in CONTROL_ESCAPES) return literal(CONTROL_ESCAPES[c]);
    if (/[0-9]/.test(c)) throw this.error('backreferences are not supported');
    if (/[A-Za-z]/.test(c)) throw this.error(`the escape "\\${c}" is not supported`);
    return literal(c);
  }

  private classChar(): { test: CharTest; single: string | null } {
    const c = this.source[this.pos++];
    if (c === undefined) throw this.error('unterminated character set');
    if (c !== '\\') return { test: (ch) => ch === c, single: c };
    const e = this.source[this.pos++];
    if (e === undefined) throw this.error('unterminated character set');
    if (e in CLASS_ESCAPES) return { test: CLASS_ESCAPES[e], single: null };
    const ch = CONTROL_ESCAPES[e] ?? e;
    if (!(e in CONTROL_ESCAPES) && /[A-Za-z0-9]/.test(e)) {
      throw this.error(`the escape "\\${e}" is not supported in a character set`);
    }
    return { test: (x) => x === ch, single: ch };
  }

  private charClass(): CharTest {
    const negated = this.peek() === '^';
    if (negated) this.pos++;
    const tests: CharTest[] = [];
    let first = true;
    while (this.peek() !== ']' || first) {
      if (this.peek() === undefined) throw this.error('unterminated character set');
      first = false;
      const from = this.classChar();
      if (this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.pos++;
        const to = this.classChar();
        if (from.single === null || to.single === null) throw this.error('bad character range');
        const [lo, hi] = [from.single, to.single];
        if (lo > hi) throw this.error(`bad character range ${lo}-${hi}`);
        tests.push((ch) => ch >= lo && ch <= hi);
      } else tests.push(from.test);
    }
    this.pos++;
    const inSet = (ch: string) => tests.some((t) => t(ch));
    return negated ? (ch) => !inSet(ch) : inSet;
  }
}

function literal(c: string): Node {
  return { kind: 'char', test: (ch) => ch === c };
}

type State =
  | { op: 'char'; test: CharTest; next: number }
  | { op: 'split'; next: number; alt: number }
  | { op: 'assert'; at: AssertAt; next: number }
  | { op: 'match' };

/** Thompson construction: each node is compiled to states that continue at `next`. */
class Compiler {
  readonly states: State[] = [{ op: 'match' }];

  private add(state: State): number {
    if (this.states.length >= MAX_STATES) {
      throw new RegexSyntaxError(`expands to more than ${MAX_STATES} states (counted repeats too large)`);
    }
    this.states.push(state);
    return this.states.length - 1;
  }

  /** Returns the entry state of `node`, which continues at `next`. */
  compile(node: Node, next: number): number {
    return thompson(
      node,
      next,
      (split) => this.add(split),
      (leaf, then) =>
        leaf.kind === 'char'
          ? this.add({ op: 'char', test: leaf.test, next: then })
          : this.add({ op: 'assert', at: leaf.at, next: then }),
    );
  }
}

/** A compiled pattern; `fullMatch` runs in O(text length × pattern size). */
export class LinearRegex {
  private readonly states: State[];
  private readonly start: number;
  /**
   * States from which a match can still be completed once past the first character: a start
   * anchor no longer holds there, and past an end anchor no character may be read. The streaming
   * form keeps only these, so an empty state set means exactly that no continuation matches
   * (`[\s\S]*^a` keeps its loop alive after "b", yet nothing after it can match).
   */
  private readonly live: Uint8Array;
  private readonly endOk: Uint8Array;
  /** Per state, the fewest and the most characters from it to a full match (Infinity: a loop on the way); made on first use. */
  private lengths: { min: Float64Array; max: Float64Array } | null = null;

  /** Throws RegexSyntaxError with a one-line reason for syntax it cannot read exactly. */
  constructor(readonly source: string) {
    const ast = new Parser(source).parse();
    const compiler = new Compiler();
    this.start = compiler.compile(ast, 0);
    this.states = compiler.states;
    ({ live: this.live, endOk: this.endOk } = liveStates(this.states));
  }

  /** Python's `re.fullmatch(pattern, text) is not None`. */
  fullMatch(text: string): boolean {
    let current = this.reach([this.start], (at) => assertionHolds(at, text, 0));
    for (let i = 0; i < text.length && current.size > 0; i++) {
      const next: number[] = [];
      for (const s of current) {
        const state = this.states[s];
        if (state.op === 'char' && state.test(text[i])) next.push(state.next);
      }
      current = this.reach(next, (at) => assertionHolds(at, text, i + 1));
    }
    return current.has(0);
  }

  /**
   * Matching a text as it grows, one character at a time (structured output's guided_regex):
   * the NFA states before any character. `$`, `\Z` hold only where the text ends (streamAccepts),
   * so `$` before a last newline that the pattern itself then reads is not followed.
   */
  streamStart(): number[] {
    return this.alive(this.reach([this.start], (at) => at === 'start'));
  }

  /**
   * The states after character `ch`; [] where none continues. Structured output passes whole
   * code points (an astral one is two UTF-16 units), as Python's re reads text; fullMatch reads
   * UTF-16 units, which module names never tell apart.
   */
  streamStep(states: readonly number[], ch: string): number[] {
    const next: number[] = [];
    for (const s of states) {
      const state = this.states[s];
      if (state.op === 'char' && state.test(ch)) next.push(state.next);
    }
    // Past the first character no start anchor holds; end anchors wait for streamAccepts.
    return this.alive(this.reach(next, () => false));
  }

  /**
   * The fewest and the most characters that can still be read from `states` before a full match
   * (Infinity: a loop on the way). A length between them is taken to be possible, true unless
   * the pattern counts in steps (`(ab)+` has no odd length).
   */
  streamLengths(states: readonly number[]): { min: number; max: number } {
    this.lengths ??= matchLengths(this.states, this.live, this.endOk);
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const id of states) {
      min = Math.min(min, this.lengths.min[id]);
      max = Math.max(max, this.lengths.max[id]);
    }
    return { min, max };
  }

  private alive(set: Set<number>): number[] {
    return sorted(set).filter((id) => this.live[id] === 1);
  }

  /** Whether a text that reached `states` may end here and be a full match. */
  streamAccepts(states: readonly number[]): boolean {
    return this.reach(states, (at) => at !== 'start').has(0);
  }

  /** `from` and every state reachable from it without reading a character, where `holds` says which assertions pass. */
  private reach(from: readonly number[], holds: (at: AssertAt) => boolean): Set<number> {
    const set = new Set<number>();
    const stack = [...from];
    while (stack.length > 0) {
      const id = stack.pop() as number;
      if (set.has(id)) continue;
      set.add(id);
      const state = this.states[id];
      if (state.op === 'split') stack.push(state.alt, state.next);
      else if (state.op === 'assert' && holds(state.at)) stack.push(state.next);
    }
    return set;
  }
}

/**
 * LinearRegex.live: backwards from the match state along splits, character reads (a class is
 * taken to hold some character) and end anchors, where past an end anchor only splits and
 * further end anchors may lead to the match (`endOk`: the states that reach it so).
 */
function liveStates(states: readonly State[]): { live: Uint8Array; endOk: Uint8Array } {
  const reaches = (ok: Uint8Array, charsToo: boolean) => {
    for (let changed = true; changed; ) {
      changed = false;
      states.forEach((state, id) => {
        if (ok[id]) return;
        const yes =
          state.op === 'match' ||
          (state.op === 'split' && (ok[state.next] === 1 || ok[state.alt] === 1)) ||
          (state.op === 'char' && charsToo && ok[state.next] === 1) ||
          (state.op === 'assert' &&
            state.at !== 'start' &&
            (charsToo ? endOk[state.next] : ok[state.next]) === 1);
        if (yes) {
          ok[id] = 1;
          changed = true;
        }
      });
    }
    return ok;
  };
  const endOk = reaches(new Uint8Array(states.length), false);
  return { live: reaches(new Uint8Array(states.length), true), endOk };
}

/**
 * The edges a streamed match may follow between live states, with the characters each reads:
 * splits (0), character reads (1), and end anchors (0), which lead to the match itself where
 * their next state reaches it without reading: nothing is read past one.
 */
function streamEdges(
  states: readonly State[],
  live: Uint8Array,
  endOk: Uint8Array,
): Array<Array<[number, 0 | 1]>> {
  return states.map((state) => {
    const out: Array<[number, 0 | 1]> = [];
    const add = (to: number, w: 0 | 1) => {
      if (live[to]) out.push([to, w]);
    };
    if (state.op === 'split') {
      add(state.next, 0);
      add(state.alt, 0);
    } else if (state.op === 'char') add(state.next, 1);
    // Past an end anchor nothing more is read: the edge goes straight to the match.
    else if (state.op === 'assert' && state.at !== 'start' && endOk[state.next]) add(0, 0);
    return out;
  });
}

/**
 * LinearRegex.streamLengths' table: the fewest characters to the match by a 0-1 search back from
 * it; the most by the components of the edge graph (Kosaraju's, without recursion): a component
 * with a character read inside it loops, so everything that reaches it has no most.
 */
function matchLengths(
  states: readonly State[],
  live: Uint8Array,
  endOk: Uint8Array,
): { min: Float64Array; max: Float64Array } {
  const n = states.length;
  const edges = streamEdges(states, live, endOk);
  const back: Array<Array<[number, 0 | 1]>> = states.map(() => []);
  edges.forEach((out, from) => {
    for (const [to, w] of out) back[to].push([from, w]);
  });
  const min = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  min[0] = 0;
  const deque: number[] = [0];
  while (deque.length > 0) {
    const at = deque.shift() as number;
    for (const [from, w] of back[at]) {
      if (min[at] + w < min[from]) {
        min[from] = min[at] + w;
        if (w === 0) deque.unshift(from);
        else deque.push(from);
      }
    }
  }
  // Kosaraju: finishing order on the edges, then components on the reversed edges.
  const order: number[] = [];
  const seen = new Uint8Array(n);
  for (let root = 0; root < n; root++) {
    if (seen[root]) continue;
    seen[root] = 1;
    const stack: Array<[number, number]> = [[root, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const out = edges[top[0]];
      if (top[1] < out.length) {
        const to = out[top[1]++][0];
        if (!seen[to]) {
          seen[to] = 1;
          stack.push([to, 0]);
        }
      } else {
        order.push(top[0]);
        stack.pop();
      }
    }
  }
  const comp = new Int32Array(n).fill(-1);
  const members: number[][] = [];
  for (let i = order.length - 1; i >= 0; i--) {
    if (comp[order[i]] >= 0) continue;
    const c = members.length;
    const list: number[] = [];
    const stack = [order[i]];
    comp[order[i]] = c;
    while (stack.length > 0) {
      const at = stack.pop() as number;
      list.push(at);
      for (const [from] of back[at])
        if (comp[from] < 0) {
          comp[from] = c;
          stack.push(from);
        }
    }
    members.push(list);
  }
  // Components come out sources first: the most is settled from the last one back.
  const compMax = new Float64Array(members.length).fill(Number.NEGATIVE_INFINITY);
  for (let c = members.length - 1; c >= 0; c--) {
    let most = members[c].includes(0) ? 0 : Number.NEGATIVE_INFINITY;
    for (const at of members[c])
      for (const [to, w] of edges[at]) {
        if (comp[to] === c) {
          if (w === 1) most = Number.POSITIVE_INFINITY;
        } else most = Math.max(most, w + compMax[comp[to]]);
      }
    compMax[c] = most;
  }
  const max = new Float64Array(n);
  for (let id = 0; id < n; id++) max[id] = compMax[comp[id]];
  return { min, max };
}

function sorted(set: Set<number>): number[] {
  return [...set].sort((a, b) => a - b);
}

function assertionHolds(at: AssertAt, text: string, pos: number): boolean {
  if (at === 'start') return pos === 0;
  if (at === 'end') return pos === text.length;
  return pos === text.length || (pos === text.length - 1 && text[pos] === '\n');
}
