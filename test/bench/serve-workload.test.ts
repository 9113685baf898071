import { describe, expect, it } from 'vitest';
import { assignAdapters } from '../../bench/serve/adapter-assignment.js';
import { arrivalOffsets, gammaDraw } from '../../bench/serve/arrivals.js';
import { lengthRange } from '../../bench/serve/random-dataset.js';
import { parseServeBenchArgs, type ServeBenchArgs } from '../../bench/serve/serve-args.js';
import { buildWorkload } from '../../bench/serve/workload.js';
import { mulberry32 } from '../../scheduler/prng.js';

function moments(values: number[]): { mean: number; cv: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  return { mean, cv: Math.sqrt(variance) / mean };
}

function gaps(offsets: number[]): number[] {
  return offsets.slice(1).map((t, i) => t - offsets[i]);
}

describe('gammaDraw', () => {
  it.each([0.3, 1, 4])('has mean shape·scale and variance shape·scale² (shape %s)', (shape) => {
    const uniform = mulberry32(7);
    const scale = 2.5;
    const draws = Array.from({ length: 40_000 }, () => gammaDraw(uniform, shape, scale));
    const { mean, cv } = moments(draws);
    expect(mean).toBeCloseTo(shape * scale, 0);
    expect(Math.abs(mean / (shape * scale) - 1)).toBeLessThan(0.03);
    expect(Math.abs(cv - 1 / Math.sqrt(shape))).toBeLessThan(0.05);
    expect(Math.min(...draws)).toBeGreaterThan(0);
  });

  it('refuses a shape or scale that is not positive', () => {
    expect(() => gammaDraw(mulberry32(1), 0, 1)).toThrow(/shape > 0/);
    expect(() => gammaDraw(mulberry32(1), 1, -1)).toThrow(/scale > 0/);
  });
});

describe('arrivalOffsets', () => {
  it('is a Poisson process at burstiness 1: exponential gaps of mean 1/rate (cv 1)', () => {
    const offsets = arrivalOffsets(mulberry32(3), 20_000, 8);
    expect(offsets[0]).toBe(0);
    const { mean, cv } = moments(gaps(offsets));
    expect(Math.abs(mean * 8 - 1)).toBeLessThan(0.03);
    expect(Math.abs(cv - 1)).toBeLessThan(0.04);
  });

  it.each([0.25, 4])('keeps the rate and has cv = 1/√burstiness (burstiness %s)', (burstiness) => {
    const { mean, cv } = moments(gaps(arrivalOffsets(mulberry32(5), 20_000, 2, burstiness)));
    expect(Math.abs(mean * 2 - 1)).toBeLessThan(0.05);
    expect(Math.abs(cv - 1 / Math.sqrt(burstiness))).toBeLessThan(0.06);
  });

  it('sends everything at once at rate inf, and repeats itself for one seed', () => {
    expect(arrivalOffsets(mulberry32(1), 5, Number.POSITIVE_INFINITY)).toEqual([0, 0, 0, 0, 0]);
    expect(arrivalOffsets(mulberry32(9), 50, 3)).toEqual(arrivalOffsets(mulberry32(9), 50, 3));
    expect(arrivalOffsets(mulberry32(9), 50, 3)).not.toEqual(arrivalOffsets(mulberry32(10), 50, 3));
  });

  it('refuses rates and burstiness that are not positive', () => {
    expect(() => arrivalOffsets(mulberry32(1), 3, 0)).toThrow(/request rate/);
    expect(() => arrivalOffsets(mulberry32(1), 3, 1, 0)).toThrow(/burstiness/);
  });
});

describe('assignAdapters', () => {
  const names = ['a', 'b', 'c', 'd'];
  const counts = (picked: string[]) => names.map((n) => picked.filter((p) => p === n).length / picked.length);

  it('cycles through the names in round-robin', () => {
    expect(assignAdapters(mulberry32(1), names, 6, 'round-robin')).toEqual(['a', 'b', 'c', 'd', 'a', 'b']);
  });

  it('spreads uniformly at random', () => {
    for (const share of counts(assignAdapters(mulberry32(2), names, 40_000, 'random')))
      expect(Math.abs(share - 0.25)).toBeLessThan(0.01);
  });

  it.each([0.3, 1, 2])("follows S-LoRA's power law: P(index = k) = ((k+1)/n)^α − (k/n)^α (α %s)", (alpha) => {
    const shares = counts(assignAdapters(mulberry32(4), names, 40_000, 'power-law', alpha));
    shares.forEach((share, k) => {
      const expected = ((k + 1) / 4) ** alpha - (k / 4) ** alpha;
      expect(Math.abs(share - expected)).toBeLessThan(0.012);
    });
  });

  it('refuses an empty list and a non-positive alpha', () => {
    expect(() => assignAdapters(mulberry32(1), [], 3, 'random')).toThrow(/at least one/);
    expect(() => assignAdapters(mulberry32(1), names, 3, 'power-law', 0)).toThrow(/lora-alpha/);
  });
});

describe('lengthRange', () => {
  it("is vLLM's [⌊len·(1−r)⌋, ⌈len·(1+r)⌉] with a floor", () => {
    expect(lengthRange(100, 0, 1)).toEqual([100, 100]);
    expect(lengthRange(100, 0.25, 1)).toEqual([75, 125]);
    expect(lengthRange(3, 0.9, 1)).toEqual([1, 6]);
    expect(() => lengthRange(10, 1, 1)).toThrow(/range-ratio/);
    expect(() => lengthRange(0, 0, 1)).toThrow(/integer/);
  });
});

describe('buildWorkload', () => {
  const args = (extra: string[]): ServeBenchArgs =>
    parseServeBenchArgs(['--num-prompts', '200', '--random-range-ratio', '0.5', ...extra]) as ServeBenchArgs;
  const vocabulary = { vocabSize: 50, decode: null };

  it('draws the same prompts, lengths and adapters at every rate; only arrivals change', () => {
    const flags = ['--lora-modules', 'x', 'y', '--random-input-len', '20', '--random-output-len', '8'];
    const slow = buildWorkload(args(flags), 'base', 1, vocabulary);
    const fast = buildWorkload(args(flags), 'base', 50, vocabulary);
    const strip = (w: typeof slow) => w.map(({ offsetSeconds: _, ...rest }) => rest);
    expect(strip(fast)).toEqual(strip(slow));
    expect(fast.at(-1)!.offsetSeconds).toBeLessThan(slow.at(-1)!.offsetSeconds);
    for (const r of slow) {
      expect(r.promptIds.length).toBeGreaterThanOrEqual(10);
      expect(r.promptIds.length).toBeLessThanOrEqual(30);
      expect(r.outputLen).toBeGreaterThanOrEqual(4);
      expect(r.outputLen).toBeLessThanOrEqual(12);
      expect(Math.max(...r.promptIds)).toBeLessThan(50);
      expect(['x', 'y']).toContain(r.model);
    }
    expect(buildWorkload(args([...flags, '--seed', '1']), 'base', 1, vocabulary)[0].promptIds).not.toEqual(
      slow[0].promptIds,
    );
  });

  it('begins every prompt with the same --random-prefix-len tokens, leaving the rest of the draws as they were', () => {
    const flags = ['--random-input-len', '20'];
    const plain = buildWorkload(args(flags), 'base', 1, vocabulary);
    const prefixed = buildWorkload(args([...flags, '--random-prefix-len', '12']), 'base', 1, vocabulary);
    const prefix = prefixed[0].promptIds.slice(0, 12);
    expect(new Set(prefix).size).toBeGreaterThan(1);
    prefixed.forEach((r, i) => {
      expect(r.promptIds.slice(0, 12)).toEqual(prefix);
      expect(r.promptIds.slice(12)).toEqual(plain[i].promptIds);
    });
    expect(() => args(['--random-prefix-len', '-1'])).toThrow(/--random-prefix-len/);
  });

  it('asks for the base model without --lora-modules, and gives text when asked to decode', () => {
    const workload = buildWorkload(args([]), 'base', 1, { vocabSize: 50, decode: (ids) => ids.join(' ') });
    expect(new Set(workload.map((r) => r.model))).toEqual(new Set(['base']));
    expect(workload[0].promptText).toBe(workload[0].promptIds.join(' '));
  });
});
