import { ByteMatcher, type Stack } from './byte-matcher.js';
import type { Grammar } from './grammar-nodes.js';
import type { TokenVocabulary } from './token-vocabulary.js';
import { utf8Lead } from './utf8-chars.js';

/**
 * The vocabulary as a trie of the bytes each token adds (model/token-bytes.ts), so the tokens a
 * grammar state allows are found in one walk that shares each prefix's matching among all the
 * tokens that start with it. Built once per tokenizer.
 */
export class VocabularyTrie {
  /** Per node: its children's first byte and node index, flattened (CSR). */
  private readonly childStart: Int32Array;
  private readonly childByte: Uint8Array;
  private readonly childNode: Int32Array;
  /** Per node: the tokens whose bytes end at it. */
  private readonly tokensAt: ReadonlyArray<readonly number[] | undefined>;
  /** Tokens whose bytes are plain string characters (byte-matcher.ts stringRoom), ascending, and their character counts. */
  readonly plainIds: Int32Array;
  readonly plainChars: Int32Array;
  /** Tokens with bytes that are not all plain string characters, ascending. */
  readonly otherIds: Int32Array;

  /** The bytes each token adds (null: a special token), by id. */
  constructor(readonly tokenBytes: ReadonlyArray<Uint8Array | null>) {
    const children: Array<Map<number, number>> = [new Map()];
    const tokensAt: number[][] = [];
    tokenBytes.forEach((bytes, id) => {
      if (!bytes || bytes.length === 0) return;
      let node = 0;
      for (const b of bytes) {
        let next = children[node].get(b);
        if (next === undefined) {
          next = children.length;
          children.push(new Map());
          children[node].set(b, next);
        }
        node = next;
      }
      tokensAt[node] ??= [];
      tokensAt[node].push(id);
    });
    this.childStart = new Int32Array(children.length + 1);
    let total = 0;
    children.forEach((c, i) => {
      this.childStart[i] = total;
      total += c.size;
    });
    this.childStart[children.length] = total;
    this.childByte = new Uint8Array(total);
    this.childNode = new Int32Array(total);
    children.forEach((c, i) => {
      let at = this.childStart[i];
      for (const [b, n] of [...c].sort((x, y) => x[0] - y[0])) {
        this.childByte[at] = b;
        this.childNode[at++] = n;
      }
    });
    this.tokensAt = tokensAt;
    const plainIds: number[] = [];
    const plainChars: number[] = [];
    const otherIds: number[] = [];
    tokenBytes.forEach((bytes, id) => {
      if (!bytes || bytes.length === 0) return;
      const chars = plainCharacters(bytes);
      if (chars >= 0) {
        plainIds.push(id);
        plainChars.push(chars);
      } else otherIds.push(id);
    });
    this.plainIds = Int32Array.from(plainIds);
    this.plainChars = Int32Array.from(plainChars);
    this.otherIds = Int32Array.from(otherIds);
  }

  /**
   * Tokens allowed where the state is inside a string with `room` characters left: the plain
   * ones that fit, and of the rest those whose bytes the matcher takes one by one (a closing
   * quote and what follows it, an escape, a character split across tokens).
   */
  allowedInString(matcher: ByteMatcher, states: readonly Stack[], room: number): Int32Array {
    const allowed = new Int32Array(this.plainIds.length + this.otherIds.length);
    let n = 0;
    if (room === Number.POSITIVE_INFINITY) {
      allowed.set(this.plainIds);
      n = this.plainIds.length;
    } else {
      for (let i = 0; i < this.plainIds.length; i++)
        if (this.plainChars[i] <= room) allowed[n++] = this.plainIds[i];
    }
    for (const id of this.otherIds) {
      let at: readonly Stack[] = states;
      for (const b of this.tokenBytes[id] as Uint8Array) {
        at = matcher.feed(at, b);
        if (at.length === 0) break;
      }
      if (at.length > 0) allowed[n++] = id;
    }
    return allowed.slice(0, n);
  }

  /** Tokens whose whole byte string `matcher` accepts from `states`. */
  allowedTokens(matcher: ByteMatcher, states: readonly Stack[]): number[] {
    const allowed: number[] = [];
    const visit = (node: number, at: readonly Stack[]) => {
      for (let c = this.childStart[node]; c < this.childStart[node + 1]; c++) {
        const next = matcher.feed(at, this.childByte[c]);
        if (next.length === 0) continue;
        const child = this.childNode[c];
        const ids = this.tokensAt[child];
        if (ids) for (const id of ids) allowed.push(id);
        visit(child, next);
      }
    };
    visit(0, states);
    return allowed;
  }
}

/**
 * Characters of `bytes` when all of them are plain JSON string characters (0x20..0x7f but quote
 * and backslash, and whole UTF-8 sequences of 2 to 4 bytes); -1 otherwise.
 */
function plainCharacters(bytes: Uint8Array): number {
  let chars = 0;
  for (let i = 0; i < bytes.length; chars++) {
    const b = bytes[i++];
    if (b < 0x80) {
      if (b < 0x20 || b === 0x22 || b === 0x5c) return -1;
      continue;
    }
    const lead = utf8Lead(b);
    if (!lead || i + lead.cont > bytes.length) return -1;
    if (bytes[i] < lead.lo || bytes[i] > lead.hi) return -1;
    for (let k = 1; k < lead.cont; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return -1;
    i += lead.cont;
  }
  return chars;
}

/** Masks one grammar asks, by state key: choices of a request and later steps in the same state reuse them. */
const MASK_CACHE_ENTRIES = 512;

/**
 * A request's structured output: its grammar over the vocabulary. Each choice keeps its own
 * GuideState; the masks of states already seen are shared.
 */
export class TokenGuide implements Guide {
  private readonly matcher: ByteMatcher;
  private readonly masks = new Map<string, { tokens: Int32Array; wholeTokens: boolean }>();

  constructor(
    grammar: Grammar,
    private readonly trie: VocabularyTrie,
    /** The tokens by id, which token-level steps take whole (made once per tokenizer, on first need). */
    private readonly vocabulary: () => TokenVocabulary,
  ) {
    this.matcher = new ByteMatcher(grammar);
  }

  start(): GuideState {
    return new GuideState(this, this.matcher.start());
  }

  /** The bytes token `id` adds to the text; null for a special token. */
  bytesOf(id: number): Uint8Array | null {
    return this.trie.tokenBytes[id] ?? null;
  }

  /**
   * The state after token `id`: read by its bytes, or whole where a token-level step takes it. A
   * special token no step takes (it has no bytes) leaves the state as it was.
   */
  advance(states: readonly Stack[], id: number): readonly Stack[] {
    const whole = this.matcher.feedToken(states, id);
    const bytes = this.trie.tokenBytes[id];
    if (!bytes) return whole.length > 0 ? whole : states;
    return this.matcher.union(this.advanceBytes(states, bytes), whole);
  }

  /** The state after `bytes`. */
  advanceBytes(states: readonly Stack[], bytes: ArrayLike<number>): readonly Stack[] {
    let at = states;
    for (let i = 0; i < bytes.length; i++) {
      at = this.matcher.feed(at, bytes[i]);
      if (at.length === 0) break;
    }
    return at;
  }

  /**
   * `tokens` and the end tokens not among them: one with bytes may be, and one without only where
   * a token-level step took tokens whole (`wholeTokens`), so the others need no search.
   */
  withEnds(tokens: Int32Array, endTokens: readonly number[], wholeTokens: boolean): Int32Array {
    const ends = endTokens.filter(
      (t) => !((this.trie.tokenBytes[t] != null || wholeTokens) && tokens.includes(t)),
    );
    const all = new Int32Array(tokens.length + ends.length);
    all.set(tokens);
    all.set(ends, tokens.length);
    return all;
  }

  /**
   * Tokens that may come next (distinct, in no set order), whether the output may end here, and
   * whether a token-level step takes some of them whole.
   */
  next(states: readonly Stack[]): { tokens: Int32Array; canEnd: boolean; wholeTokens: boolean } {
    const canEnd = this.matcher.canEnd(states);
    const key = this.matcher.stateKey(states);
    let mask = this.masks.get(key);
    if (mask) {
      this.masks.delete(key); // most recently used last
    } else {
      const room = this.matcher.stringRoom(states);
      const byBytes =
        room === null
          ? Int32Array.from(this.trie.allowedTokens(this.matcher, states))
          : this.trie.allowedInString(this.matcher, states, room);
      const steps = this.matcher.tokenSteps(states);
      mask = steps
        ? { tokens: this.withWholeTokens(byBytes, steps), wholeTokens: true }
        : { tokens: byBytes, wholeTokens: false };
    }
    this.masks.set(key, mask);
    if (this.masks.size > MASK_CACHE_ENTRIES) this.masks.delete(this.masks.keys().next().value as string);
    return { ...mask, canEnd };
  }

  /** `byBytes` and the tokens token-level steps take: their ids, and all but what every excluding step excludes. */
  private withWholeTokens(
    byBytes: Int32Array,
    steps: { ids: readonly number[]; excluded: ReadonlyArray<readonly number[]> },
  ): Int32Array {
    const vocabulary = this.vocabulary();
    const taken = new Set<number>(byBytes);
    for (const id of steps.ids) if (vocabulary.has(id)) taken.add(id);
    if (steps.excluded.length > 0) {
      // A token is taken unless every excluding step excludes it.
      let common = new Set(steps.excluded[0]);
      for (const list of steps.excluded.slice(1)) common = new Set(list.filter((id) => common.has(id)));
      for (const id of vocabulary.allBut([...common])) taken.add(id);
    }
    return Int32Array.from(taken);
  }
}

/** A guide as sampling uses it: one cursor per choice. */
export interface Guide {
  start(): GuideCursor;
}

/** One choice's place in its guide. */
export interface GuideCursor {
  /** A generated token. */
  advance(id: number): void;
  readonly isDead: boolean;
  /** The tokens that may be sampled next; null when the guide constrains nothing yet. */
  allowedTokens(endTokens: readonly number[]): Int32Array | null;
}

/** One choice's place in its structured output. */
export class GuideState implements GuideCursor {
  constructor(
    private readonly guide: TokenGuide,
    private states: readonly Stack[],
  ) {}

  /** A generated token. */
  advance(id: number): void {
    this.states = this.guide.advance(this.states, id);
  }

  /** Bytes of the output that are not a whole token (the rest of one the guide began inside). */
  advanceBytes(bytes: ArrayLike<number>): void {
    this.states = this.guide.advanceBytes(this.states, bytes);
  }

  /** No byte string continues the output and it may not end: the grammar has been left. */
  get isDead(): boolean {
    return this.states.length === 0;
  }

  /**
   * The tokens that may be sampled next: those whose bytes continue the output, plus `endTokens`
   * where the output may end. A state nothing continues (only after a token the mask did not
   * allow) lets the output end.
   */
  allowedTokens(endTokens: readonly number[]): Int32Array {
    if (this.states.length === 0) return Int32Array.from(endTokens);
    const next = this.guide.next(this.states);
    const { canEnd } = next;
    let { tokens } = next;
    // As in xgrammar, a token-level step never takes an end token: it ends the output, only where it may end.
    if (next.wholeTokens && !canEnd && endTokens.length > 0)
      tokens = tokens.filter((t) => !endTokens.includes(t));
    if (!canEnd && tokens.length > 0) return tokens;
    return this.guide.withEnds(tokens, endTokens, next.wholeTokens);
  }
}
