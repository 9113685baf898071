import type { RopeRotation } from '../../model/rope-frequencies.js';

/**
 * Rotates x[rows, numHeads·headDim] in place, HF's rotate_half convention: element i pairs
 * with i + headDim/2 inside each head, and for angle a = position · invFreq[i]
 *   x[i]          ← x[i]·cos a − x[i+half]·sin a
 *   x[i+half]     ← x[i+half]·cos a + x[i]·sin a
 * The angle is rounded to f32 as HF's f32 `inv_freq @ position_ids` gives it (a product of two
 * f32 values, rounded once); cos and sin are rounded to f32 and multiplied by the attention
 * scaling (YaRN's; 1 otherwise), as HF's are; the rotation runs in f64 and rounds once to f32.
 */

export function applyRope(
  x: Float32Array,
  rows: number,
  numHeads: number,
  headDim: number,
  positions: ArrayLike<number>,
  rope: RopeRotation,
): void {
  const { invFreq, attentionScaling } = rope;
  const half = headDim / 2;
  if (invFreq.length !== half) throw new Error(`applyRope: invFreq has ${invFreq.length}, expected ${half}`);
  if (positions.length < rows) throw new Error(`applyRope: ${positions.length} positions for ${rows} rows`);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const rowWidth = numHeads * headDim;
  for (let r = 0; r < rows; r++) {
    const pos = positions[r];
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]);
      cos[i] = Math.fround(Math.cos(angle)) * attentionScaling;
      sin[i] = Math.fround(Math.sin(angle)) * attentionScaling;
    }
    for (let h = 0; h < numHeads; h++) {
      const base = r * rowWidth + h * headDim;
      for (let i = 0; i < half; i++) {
        const first = x[base + i];
        const second = x[base + i + half];
        x[base + i] = first * cos[i] - second * sin[i];
        x[base + i + half] = second * cos[i] + first * sin[i];
      }
    }
  }
}
