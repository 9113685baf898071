import type { LlamaConfig } from '../../model/llama-config.js';

/**
 * RoPE inverse frequencies [headDim/2], as Hugging Face's rope init functions compute them:
 * default: invFreq[i] = 1 / theta^(2i/headDim), each step rounded to f32 like torch's f32 math;
 * linear:  default / factor;
 * llama3:  `_compute_llama3_parameters`: wavelengths longer than original/lowFreqFactor are
 *          divided by factor, shorter than original/highFreqFactor kept, and the band between
 *          blended by smooth = (original/wavelen − lowFreqFactor) / (highFreqFactor − lowFreqFactor).
 * The llama3 blend runs in f64 and is rounded to f32 once, which can differ from torch's
 * all-f32 arithmetic in the last bit.
 */
export function ropeInvFrequencies(config: LlamaConfig): Float32Array {
  const dim = config.headDim;
  const half = dim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround((2 * i) / dim);
    invFreq[i] = 1 / Math.fround(config.ropeTheta ** exponent);
  }
  const scaling = config.ropeScaling;
  if (!scaling) return invFreq;
  if (scaling.type === 'linear') {
    for (let i = 0; i < half; i++) invFreq[i] = invFreq[i] / scaling.factor;
    return invFreq;
  }
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: original } = scaling;
  const lowFreqWavelen = original / lowFreqFactor;
  const highFreqWavelen = original / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = invFreq[i];
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen > lowFreqWavelen) {
      invFreq[i] = freq / factor;
    } else if (wavelen >= highFreqWavelen) {
      const smooth = (original / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      invFreq[i] = ((1 - smooth) * freq) / factor + smooth * freq;
    }
  }
  return invFreq;
}

/**
 * Rotates x[rows, numHeads·headDim] in place, HF's rotate_half convention: element i pairs
 * with i + headDim/2 inside each head, and for angle a = position · invFreq[i]
 *   x[i]          ← x[i]·cos a − x[i+half]·sin a
 *   x[i+half]     ← x[i+half]·cos a + x[i]·sin a
 * The angle is rounded to f32 as HF's f32 `inv_freq @ position_ids` gives it (a product of two
 * f32 values, rounded once); cos, sin and the rotation then run in f64 and round once to f32.
 */
export function applyRope(
  x: Float32Array,
  rows: number,
  numHeads: number,
  headDim: number,
  positions: ArrayLike<number>,
  invFreq: Float32Array,
): void {
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
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
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
