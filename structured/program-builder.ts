import type { GrammarProgram, GrammarStep } from './ebnf-grammar.js';
import { GuideError } from './grammar-nodes.js';
import { WatchedStrings } from './watched-strings.js';

type SplitStep = { op: 'split'; next: number; alt: number };

/** Expanded repeats and copies can make a small tag huge; past this it is refused. */
const MAX_STEPS = 50_000;
/**
 * Free text watches its excludes and triggers character by character; building its automaton
 * costs about the square of their total length, so past this many characters it is refused.
 */
const MAX_WATCHED_CHARS = 4_096;
/** Every code point but the UTF-16 surrogates, which UTF-8 cannot carry. */
const ANY_CHAR: readonly number[] = [0, 0xd7ff, 0xe000, 0x10ffff];

/**
 * A grammar program (ebnf-grammar.ts's steps) written back to front, as structural tags
 * (structural-tag.ts) compile to one: each piece is given the step it continues at and returns
 * its entry. Literals, alternatives, loops (a placeholder split set once its body exists), GBNF
 * grammars merged in as rules, and free text over the strings it may not contain.
 */
export class ProgramBuilder {
  readonly steps: GrammarStep[] = [];
  readonly ruleStart: number[] = [];
  readonly ruleNames: string[] = [];

  /** `param`: the request field a refusal names. */
  constructor(private readonly param: string) {}

  /** The program whose root rule starts at what `root` builds (given the root's end step). */
  program(root: (end: number) => number): GrammarProgram {
    this.ruleNames.push('root');
    this.ruleStart.push(-1);
    this.ruleStart[0] = root(this.add({ op: 'end' }));
    return { steps: this.steps, ruleStart: this.ruleStart, ruleNames: this.ruleNames, root: 0 };
  }

  add(step: GrammarStep): number {
    if (this.steps.length >= MAX_STEPS)
      throw new GuideError(
        `${this.param}: the structural tag expands to more than ${MAX_STEPS} steps.`,
        this.param,
      );
    this.steps.push(step);
    return this.steps.length - 1;
  }

  /** A split whose branches are set later (a loop's head, a text state). */
  placeholder(): number {
    return this.add({ op: 'split', next: -1, alt: -1 });
  }

  /** `entries` as alternatives: one step that may go on to any of them. */
  alternatives(entries: readonly number[], into: number | null = null): number {
    if (entries.length === 0) throw new Error('no alternatives');
    let entry = entries[entries.length - 1];
    for (let i = entries.length - 2; i >= 0; i--) {
      if (i === 0 && into !== null) {
        Object.assign(this.steps[into] as SplitStep, { next: entries[0], alt: entry });
        return into;
      }
      entry = this.add({ op: 'split', next: entries[i], alt: entry });
    }
    if (into !== null) {
      Object.assign(this.steps[into] as SplitStep, { next: entry, alt: entry });
      return into;
    }
    return entry;
  }

  /** Steps reading `text` (code point by code point), then `next`. */
  literal(text: string, next: number): number {
    let entry = next;
    const chars = [...text];
    for (let i = chars.length - 1; i >= 0; i--) {
      const cp = chars[i].codePointAt(0)!;
      entry = this.add({ op: 'chars', ranges: [cp, cp], next: entry });
    }
    return entry;
  }

  /** A GBNF grammar's rules added to the program, its root called. */
  grammar(sub: GrammarProgram, next: number): number {
    const stepBase = this.steps.length;
    const ruleBase = this.ruleStart.length;
    if (stepBase + sub.steps.length > MAX_STEPS)
      throw new GuideError(
        `${this.param}: the structural tag expands to more than ${MAX_STEPS} steps.`,
        this.param,
      );
    for (const s of sub.steps) {
      if (s.op === 'end') this.steps.push(s);
      else if (s.op === 'split')
        this.steps.push({ op: 'split', next: s.next + stepBase, alt: s.alt + stepBase });
      else if (s.op === 'call')
        this.steps.push({ op: 'call', rule: s.rule + ruleBase, next: s.next + stepBase });
      else this.steps.push({ ...s, next: s.next + stepBase });
    }
    sub.ruleStart.forEach((start, r) => {
      this.ruleStart.push(start + stepBase);
      this.ruleNames.push(`grammar ${ruleBase}: ${sub.ruleNames[r]}`);
    });
    return this.add({ op: 'call', rule: ruleBase + sub.root, next });
  }

  /**
   * Free text: any characters, as long as none of `excludes` appears in it, then `next`; where
   * one of `triggers` is completed, the text goes on at `dispatch`'s entry for it instead (a
   * trigger with no entry is refused like an exclude). Its states are the suffixes of the text
   * that some of those strings start with; `start` (a placeholder) is made the empty one's.
   */
  freeText(
    excludes: readonly string[],
    dispatch: ReadonlyMap<string, number>,
    next: number,
    start: number = this.placeholder(),
    triggers: readonly string[] = [],
  ): number {
    const refused = new Set(excludes.filter((e) => e !== ''));
    const watched = [...new Set([...refused, ...triggers])].map((s) => [...s]);
    const total = watched.reduce((n, w) => n + w.length, 0);
    if (total > MAX_WATCHED_CHARS)
      throw new GuideError(
        `${this.param}: the structural tag's free text watches ${total} characters of excludes, triggers and ends, more than ${MAX_WATCHED_CHARS}.`,
        this.param,
      );
    const automaton = new WatchedStrings(watched.map((w) => w.join('')));
    const stepOf = new Map<number, number>([[0, start]]);
    const queue = [0];
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head];
      const branches: number[] = [next];
      const targets = new Map<number, number[]>();
      const leads = automaton.leads(node);
      for (const c of leads) {
        const to = automaton.step(node, c);
        const done = automaton.ends[to];
        if (done.length > 0) {
          // A watched string is complete: a trigger goes on into its tags, anything else is refused.
          if (done.some((d) => refused.has(d) || !dispatch.has(d))) continue;
          for (const d of done)
            branches.push(this.add({ op: 'chars', ranges: [c, c], next: dispatch.get(d)! }));
          continue;
        }
        if (!stepOf.has(to)) {
          stepOf.set(to, this.placeholder());
          queue.push(to);
        }
        const list = targets.get(to) ?? [];
        list.push(c);
        targets.set(to, list);
      }
      // Characters that continue no watched string lead back to the empty state.
      const others = withoutChars(ANY_CHAR, leads);
      if (others.length > 0) branches.push(this.add({ op: 'chars', ranges: others, next: start }));
      for (const [to, cps] of targets)
        branches.push(this.add({ op: 'chars', ranges: toRanges(cps), next: stepOf.get(to)! }));
      this.alternatives(branches, stepOf.get(node)!);
    }
    return start;
  }

  /**
   * Free tokens, read whole: any token but `excluded`, then `next`; a token of `dispatch` goes on
   * at its entry instead (the token-level twin of freeText). `start` (a placeholder) is the loop's.
   */
  freeTokens(
    excluded: readonly number[],
    dispatch: ReadonlyMap<number, number>,
    next: number,
    start: number = this.placeholder(),
  ): number {
    const branches = [next];
    for (const [token, entry] of dispatch)
      branches.push(this.add({ op: 'token', ids: [token], exclude: false, next: entry }));
    branches.push(this.add({ op: 'token', ids: excluded, exclude: true, next: start }));
    this.alternatives(branches, start);
    return start;
  }
}

/** Sorted code points as [lo, hi] ranges. */
function toRanges(cps: readonly number[]): number[] {
  const sorted = [...cps].sort((a, b) => a - b);
  const out: number[] = [];
  for (const c of sorted) {
    if (out.length > 0 && c === out[out.length - 1] + 1) out[out.length - 1] = c;
    else out.push(c, c);
  }
  return out;
}

/** `ranges` less the code points `cps`. */
function withoutChars(ranges: readonly number[], cps: readonly number[]): number[] {
  const holes = [...cps].sort((a, b) => a - b);
  const out: number[] = [];
  for (let k = 0; k < ranges.length; k += 2) {
    let lo = ranges[k];
    const hi = ranges[k + 1];
    for (const h of holes) {
      if (h < lo || h > hi) continue;
      if (h > lo) out.push(lo, h - 1);
      lo = h + 1;
    }
    if (lo <= hi) out.push(lo, hi);
  }
  return out;
}
