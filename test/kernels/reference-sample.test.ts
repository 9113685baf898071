import { describe, expect, it } from 'vitest';
import { argmax, keptTokens, sampleToken } from '../../kernels/sample.js';
import { seededUniform } from './reference-harness.js';

const logits = new Float32Array([1.5, -0.5, 3.0, 0.25, 3.0, 2.0, -4.0, 0.0]);
const GREEDY = 2; // 3.0 appears at 2 and 4: the lower index wins

function softmax(row: ArrayLike<number>, temperature: number): number[] {
  const scaled = Array.from(row, (v) => v / temperature);
  const max = Math.max(...scaled);
  const e = scaled.map((v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** The sampling rule restated the slow, obvious way: sort the whole vocabulary every time. */
function naiveSample(row: Float32Array, params: Parameters<typeof sampleToken>[1], uniform: number): number {
  const p = softmax(row, params.temperature);
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  let kept = params.topK > 0 ? order.slice(0, params.topK) : order;
  if (params.topP < 1) {
    const keptTotal = kept.reduce((acc, i) => acc + p[i], 0);
    let cumulative = 0;
    for (const [n, i] of kept.entries()) {
      cumulative += p[i] / keptTotal;
      if (cumulative >= params.topP) {
        kept = kept.slice(0, n + 1);
        break;
      }
    }
  }
  const mass = kept.reduce((acc, i) => acc + p[i], 0);
  let cumulative = 0;
  for (const i of kept) {
    cumulative += p[i];
    if (uniform * mass < cumulative) return i;
  }
  return kept[kept.length - 1];
}

function frequencies(row: Float32Array, params: Parameters<typeof sampleToken>[1], draws: number): number[] {
  const counts = new Array<number>(row.length).fill(0);
  const uniform = seededUniform(1234);
  for (let i = 0; i < draws; i++) counts[sampleToken(row, params, uniform())] += 1;
  return counts.map((c) => c / draws);
}

describe('argmax', () => {
  it('returns the lowest index among ties', () => {
    expect(argmax(logits)).toBe(GREEDY);
    expect(argmax(new Float32Array([-1, -1, -1]))).toBe(0);
  });
});

describe('sampleToken', () => {
  it('temperature 0 is greedy whatever the uniform', () => {
    for (const u of [0, 0.3, 0.999])
      expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, u)).toBe(GREEDY);
  });

  it('top-k 1 and a tiny top-p equal greedy at any temperature', () => {
    for (const u of [0, 0.5, 0.999999]) {
      expect(sampleToken(logits, { temperature: 1.7, topK: 1, topP: 1 }, u)).toBe(GREEDY);
      expect(sampleToken(logits, { temperature: 1.7, topK: 0, topP: 1e-6 }, u)).toBe(GREEDY);
    }
  });

  it('inverse CDF walks candidates in descending probability, ties to the lower index', () => {
    // p(2) = p(4) ≈ 0.366 each: uniform just below p(2) picks 2, just above picks 4.
    const p = softmax(logits, 1);
    const params = { temperature: 1, topK: 0, topP: 1 };
    expect(sampleToken(logits, params, 0)).toBe(2);
    expect(sampleToken(logits, params, p[2] - 1e-6)).toBe(2);
    expect(sampleToken(logits, params, p[2] + 1e-6)).toBe(4);
    expect(sampleToken(logits, params, p[2] + p[4] + 1e-6)).toBe(5);
    expect(sampleToken(logits, params, 0.999999)).toBe(6);
  });

  it('draw frequencies match softmax(logits / T)', () => {
    const draws = 20000;
    for (const temperature of [0.7, 1, 2]) {
      const freq = frequencies(logits, { temperature, topK: 0, topP: 1 }, draws);
      const p = softmax(logits, temperature);
      // 4 standard deviations of a binomial proportion, plus a floor for tiny p.
      for (const [i, pi] of p.entries()) {
        expect(Math.abs(freq[i] - pi)).toBeLessThan(4 * Math.sqrt((pi * (1 - pi)) / draws) + 1e-3);
      }
    }
  });

  it('top-k keeps the k most likely tokens, renormalised', () => {
    const draws = 20000;
    const freq = frequencies(logits, { temperature: 1, topK: 3, topP: 1 }, draws);
    const kept = [2, 4, 5];
    const p = softmax(
      kept.map((i) => logits[i]),
      1,
    );
    freq.forEach((f, i) => {
      const k = kept.indexOf(i);
      if (k < 0) expect(f).toBe(0);
      else expect(Math.abs(f - p[k])).toBeLessThan(0.015);
    });
  });

  it('top-p keeps the shortest prefix reaching p, renormalised', () => {
    const p = softmax(logits, 1);
    // Sorted: 2, 4 (≈0.366 each), 5 (≈0.135), 0 (≈0.082)…; top-p just above p2+p4 also needs 5.
    const topP = p[2] + p[4] + 1e-4;
    const freq = frequencies(logits, { temperature: 1, topK: 0, topP }, 20000);
    const keptTotal = p[2] + p[4] + p[5];
    freq.forEach((f, i) => {
      if (![2, 4, 5].includes(i)) expect(f).toBe(0);
      else expect(Math.abs(f - p[i] / keptTotal)).toBeLessThan(0.015);
    });
    // Exactly reaching p stops there: p2 + p4 keeps two tokens.
    const two = frequencies(logits, { temperature: 1, topK: 0, topP: (p[2] + p[4]) * (1 - 1e-9) }, 2000);
    expect(two[5]).toBe(0);
  });

  it('top-p applies to the top-k renormalised distribution', () => {
    // top-k 2 leaves p = 0.5/0.5; top-p 0.5 then keeps only the first (index 2).
    for (const u of [0, 0.4, 0.9])
      expect(sampleToken(logits, { temperature: 1, topK: 2, topP: 0.5 }, u)).toBe(2);
  });

  it('lower temperature concentrates mass on the argmax, higher spreads it', () => {
    const row = new Float32Array([2, 1, 0, -1]);
    const draws = 5000;
    const cold = frequencies(row, { temperature: 0.25, topK: 0, topP: 1 }, draws);
    const warm = frequencies(row, { temperature: 1, topK: 0, topP: 1 }, draws);
    const hot = frequencies(row, { temperature: 4, topK: 0, topP: 1 }, draws);
    expect(cold[0]).toBeGreaterThan(warm[0]);
    expect(warm[0]).toBeGreaterThan(hot[0]);
    expect(hot[3]).toBeGreaterThan(warm[3]);
    expect(cold[0]).toBeGreaterThan(0.95);
  });

  it('agrees with the obvious full-sort rule on random rows, peaked and flat', () => {
    const random = seededUniform(77);
    for (let trial = 0; trial < 300; trial++) {
      const spread = [0.5, 3, 30][trial % 3];
      const row = Float32Array.from({ length: 200 }, () => Math.round((random() - 0.5) * spread * 8) / 8);
      const params = {
        temperature: [0.3, 1, 2.5][(trial % 5) % 3],
        topK: [0, 1, 5, 50][trial % 4],
        topP: [1, 0.9, 0.5, 0.99][(trial % 7) % 4],
      };
      const uniform = trial % 10 === 0 ? 0.9999999 : random();
      expect(sampleToken(row, params, uniform)).toBe(naiveSample(row, params, uniform));
    }
  });

  it('never picks a masked (-Infinity) token, even at the top of the uniform range', () => {
    const masked = new Float32Array([0.5, Number.NEGATIVE_INFINITY, 0.2, Number.NEGATIVE_INFINITY]);
    for (const params of [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 1, topK: 4, topP: 1 },
      { temperature: 3, topK: 0, topP: 0.999 },
    ]) {
      for (const u of [0, 0.5, 1 - 2 ** -53]) expect([0, 2]).toContain(sampleToken(masked, params, u));
    }
  });

  it('rejects a uniform outside [0, 1)', () => {
    expect(() => sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, 1)).toThrow();
    expect(() => sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, -0.1)).toThrow();
  });
});

describe('sampleToken with min_p', () => {
  it('drops tokens below min_p times the top probability before top-k and top-p see the rest', () => {
    const row = new Float32Array([2.0, 1.0, 0.0, -1.0, 1.9]);
    const p = softmax(row, 1);
    // min_p 0.3 keeps 0 (p/p_max 1), 4 (0.905), 1 (0.368); drops 2 (0.135) and 3 (0.050).
    const kept = [0, 4, 1];
    const mass = kept.reduce((a, i) => a + p[i], 0);
    const seen = new Set<number>();
    for (let u = 0; u < 1; u += 0.01)
      seen.add(sampleToken(row, { temperature: 1, topK: 0, topP: 1, minP: 0.3 }, u));
    expect([...seen].sort()).toEqual([0, 1, 4]);
    // The inverse CDF runs over the kept tokens renormalised: just past p(0)+p(4) of the kept mass is 1.
    const edge = (p[0] + p[4]) / mass;
    expect(sampleToken(row, { temperature: 1, topK: 0, topP: 1, minP: 0.3 }, edge - 1e-6)).toBe(4);
    expect(sampleToken(row, { temperature: 1, topK: 0, topP: 1, minP: 0.3 }, edge + 1e-6)).toBe(1);
    // top-p over what min_p kept: 0.5 of the kept mass is reached by token 0 and 4 together.
    for (let u = 0; u < 1; u += 0.05)
      expect([0, 4]).toContain(sampleToken(row, { temperature: 1, topK: 0, topP: 0.5, minP: 0.3 }, u));
    // Temperature scales what min_p compares: at T = 4 every token is within 0.3 of the top one.
    const hot = new Set<number>();
    for (let u = 0; u < 1; u += 0.01)
      hot.add(sampleToken(row, { temperature: 4, topK: 0, topP: 1, minP: 0.3 }, u));
    expect(hot.size).toBe(5);
    // Greedy ignores it; 0 and absent are off.
    expect(sampleToken(row, { temperature: 0, topK: 0, topP: 1, minP: 0.9 }, 0.5)).toBe(0);
    expect(sampleToken(row, { temperature: 1, topK: 0, topP: 1, minP: 0 }, 0.999)).toBe(
      sampleToken(row, { temperature: 1, topK: 0, topP: 1 }, 0.999),
    );
  });
});

describe('typical decoding (typicalP)', () => {
  /** HF's TypicalLogitsWarper restated over a whole row: the tokens it keeps. */
  function naiveTypical(row: Float32Array, temperature: number, mass: number): number[] {
    const p = softmax(row, temperature);
    const entropy = -p.reduce((acc, q) => acc + (q > 0 ? q * Math.log(q) : 0), 0);
    const distance = p.map((q) => Math.abs(-Math.log(q) - entropy));
    const sorted = Array.from(row.keys()).sort((a, b) => distance[a] - distance[b] || a - b);
    let cumulative = 0;
    let last = sorted.length - 1;
    for (const [i, t] of sorted.entries()) {
      cumulative += p[t];
      if (cumulative >= mass) {
        last = i;
        break;
      }
    }
    return Array.from(row.keys()).filter((t) => distance[t] <= distance[sorted[last]]);
  }

  it('keeps the tokens HF keeps, and draws each as often as its renormalised probability', () => {
    const rand = seededUniform(7);
    for (const [temperature, mass] of [
      [1, 0.5],
      [0.7, 0.9],
      [1.5, 0.2],
    ]) {
      const row = Float32Array.from({ length: 40 }, () => (rand() - 0.5) * 10);
      const params = { temperature, topK: 0, topP: 1, typicalP: mass };
      const kept = [...keptTokens(row, params)].sort((a, b) => a - b);
      expect(kept).toEqual(naiveTypical(row, temperature, mass));
      const p = softmax(row, temperature);
      const keptMass = kept.reduce((acc, t) => acc + p[t], 0);
      const draws = new Map<number, number>();
      const n = 20_000;
      for (let i = 0; i < n; i++) {
        const token = sampleToken(row, params, (i + 0.5) / n);
        draws.set(token, (draws.get(token) ?? 0) + 1);
      }
      expect([...draws.keys()].every((t) => kept.includes(t))).toBe(true);
      for (const t of kept) expect((draws.get(t) ?? 0) / n).toBeCloseTo(p[t] / keptMass, 3);
    }
  });

  it('keeps at least one token, and runs after top-k', () => {
    const row = new Float32Array([5, 4, 3, 2, 1, 0]);
    expect(keptTokens(row, { temperature: 1, topK: 0, topP: 1, typicalP: 1e-9 })).toHaveLength(1);
    const afterTopK = keptTokens(row, { temperature: 1, topK: 2, topP: 1, typicalP: 0.99 });
    expect([...afterTopK].every((t) => t < 2)).toBe(true);
  });
});
