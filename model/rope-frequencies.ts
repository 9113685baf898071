import type { LlamaConfig } from './llama-config.js';

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
