import { ModelFormatError } from './model-format-error.js';

/**
 * The largest weight magnitude Loom serves: 2^64, about the square root of f32's largest value.
 * A weight this big overflows f32 as soon as it meets another factor of its size (RMSNorm squares
 * activations, attention multiplies q by k), so a file holding one is corrupt or hostile; real
 * checkpoints stay below ~1e4.
 */
export const MAX_WEIGHT_MAGNITUDE = 2 ** 64;

/**
 * Refuses a tensor holding NaN, ±Infinity or a magnitude past MAX_WEIGHT_MAGNITUDE, naming the
 * file, the tensor and the first bad element. One pass, no allocation: cheap next to the read.
 * `data` may be a chunk of the tensor that starts at element `firstElement`.
 */
export function checkFiniteWeights(file: string, tensor: string, data: Float32Array, firstElement = 0): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // Written so that NaN fails the test too.
    if (!(v <= MAX_WEIGHT_MAGNITUDE && v >= -MAX_WEIGHT_MAGNITUDE)) {
      throw new ModelFormatError(
        file,
        `tensor "${tensor}" holds ${v} at element ${firstElement + i}; weights must be finite and within ±2^64 (f32 overflows past that)`,
      );
    }
  }
}
