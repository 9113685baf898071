import type { LlamaConfig, RopeScaling } from './llama-config.js';

/**
 * RoPE inverse frequencies [headDim/2], as Hugging Face's rope init functions compute them:
 * default: invFreq[i] = 1 / theta^(2i/headDim), each step rounded to f32 like torch's f32 math;
 * linear:  default / factor;
 * llama3:  `_compute_llama3_parameters`: wavelengths longer than original/lowFreqFactor are
 *          divided by factor, shorter than original/highFreqFactor kept, and the band between
 *          blended by smooth = (original/wavelen − lowFreqFactor) / (highFreqFactor − lowFreqFactor).
 * yarn:    `_compute_yarn_parameters`: between the dimensions where the original context turns
 *          beta_fast and beta_slow times, a linear ramp from kept to divided-by-factor frequencies.
 * The llama3 and yarn blends run in f64 and are rounded to f32 once, which can differ from
 * torch's all-f32 arithmetic in the last bit.
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
  // Dynamic NTK is the default rotation within max_position_embeddings, past which Loom serves
  // no context (--max-model-len is refused there).
  if (!scaling || scaling.type === 'dynamic') return invFreq;
  if (scaling.type === 'linear') {
    for (let i = 0; i < half; i++) invFreq[i] = invFreq[i] / scaling.factor;
    return invFreq;
  }
  if (scaling.type === 'yarn') return yarnInvFrequencies(invFreq, config.ropeTheta, dim, scaling);
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

/** A model's rotation: its inverse frequencies, and what cos and sin are multiplied by. */
export interface RopeRotation {
  invFreq: Float32Array;
  attentionScaling: number;
}

export function ropeRotation(config: LlamaConfig): RopeRotation {
  return { invFreq: ropeInvFrequencies(config), attentionScaling: ropeAttentionScaling(config) };
}

/**
 * What cos and sin are multiplied by (HF's `attention_scaling`): YaRN's attention factor, 1 for
 * every other rotation. Scaling both q's and k's rotation scales their products by its square.
 */
export function ropeAttentionScaling(config: LlamaConfig): number {
  return config.ropeScaling?.type === 'yarn' ? config.ropeScaling.attentionFactor : 1;
}

function yarnInvFrequencies(
  extrapolation: Float32Array,
  theta: number,
  dim: number,
  scaling: Extract<RopeScaling, { type: 'yarn' }>,
): Float32Array {
  const half = dim / 2;
  // The dimension in which the original context turns `rotations` times.
  const correctionDim = (rotations: number) =>
    (dim * Math.log(scaling.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) /
    (2 * Math.log(theta));
  let low = correctionDim(scaling.betaFast);
  let high = correctionDim(scaling.betaSlow);
  if (scaling.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // 1 keeps the original frequency (fast dimensions), 0 interpolates it (slow ones).
    const ramp = Math.min(Math.max((Math.fround(i) - low) / (high - low), 0), 1);
    const keep = 1 - ramp;
    const freq = extrapolation[i];
    out[i] = (freq / scaling.factor) * (1 - keep) + freq * keep;
  }
  return out;
}
