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
