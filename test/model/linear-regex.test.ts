import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LinearRegex, RegexSyntaxError } from '../../model/linear-regex.js';

/** [pattern, text, Python 3.11's `re.fullmatch(pattern, text) is not None`], recorded once from Python. */
const PYTHON_CASES = JSON.parse(
  readFileSync(join(import.meta.dirname, 'python-fullmatch-cases.json'), 'utf8'),
) as Array<[string, string, boolean]>;

describe('LinearRegex', () => {
  it("agrees with Python's re.fullmatch on the recorded cases", () => {
    const disagreements = PYTHON_CASES.filter(([p, t, want]) => new LinearRegex(p).fullMatch(t) !== want);
    expect(disagreements).toEqual([]);
    expect(PYTHON_CASES.length).toBeGreaterThan(300);
  });

  it('answers catastrophic-backtracking patterns at once', () => {
    const text = `${'model.layers.10.self_attn.q_proj'.repeat(4)}`;
    for (const pattern of ['(.*.*)*X', '(a|a)*X', '(a*)*b', '((a+)+)+X', '(.*){1,30}X']) {
      const started = performance.now();
      expect(new LinearRegex(pattern).fullMatch(text)).toBe(false);
      expect(new LinearRegex(pattern).fullMatch('a'.repeat(64))).toBe(false);
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  it('refuses by name what would change the answer and is not implemented', () => {
    for (const [pattern, reason] of [
      ['(?=q)q_proj', /lookaround/],
      ['(a)\\1', /backreferences/],
      ['(?i)Q_PROJ', /inline flags/],
      ['a*+', /possessive/],
      ['\\bq', /escape "\\b"/],
      ['*a', /nothing to repeat/],
      ['(a', /missing "\)"/],
      ['a**', /multiple repeat/],
      ['(a{1000}){1000}', /more than \d+ states/],
    ] as const) {
      expect(() => new LinearRegex(pattern), pattern).toThrow(RegexSyntaxError);
      expect(() => new LinearRegex(pattern), pattern).toThrow(reason);
    }
  });
});

describe('LinearRegex, streamed (structured output)', () => {
  const walk = (r: LinearRegex, text: string) => {
    let states = r.streamStart();
    for (const ch of text) states = r.streamStep(states, ch);
    return states;
  };

  it('keeps only states from which a match can still be completed', () => {
    // After "b" the leading loop still reads anything, but "^a" can no longer hold.
    const r = new LinearRegex('[\\s\\S]*^a[\\s\\S]*');
    expect(walk(r, 'b')).toEqual([]);
    expect(r.streamAccepts(walk(r, 'ab'))).toBe(true);
    // Past "$" nothing may be read, so "x$y" matches nothing.
    expect(new LinearRegex('x$y').streamStart()).toEqual([]);
  });

  it('tells the fewest and the most characters still due before a full match', () => {
    const r = new LinearRegex('(ab|c)+');
    expect(r.streamLengths(r.streamStart())).toEqual({ min: 1, max: Number.POSITIVE_INFINITY });
    expect(r.streamLengths(walk(r, 'a'))).toEqual({ min: 1, max: Number.POSITIVE_INFINITY });
    const counted = new LinearRegex('a{2,4}');
    expect(counted.streamLengths(counted.streamStart())).toEqual({ min: 2, max: 4 });
    expect(counted.streamLengths(walk(counted, 'aaa'))).toEqual({ min: 0, max: 1 });
    // An end anchor ends the reading: the loop after it adds nothing.
    const anchored = new LinearRegex('x?$[\\s\\S]*');
    expect(anchored.streamLengths(anchored.streamStart())).toEqual({ min: 0, max: 1 });
  });
});
