import { bf16ToF32, f16ToF32, type TensorDtype } from './float-convert.js';
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
    if (!(v <= MAX_WEIGHT_MAGNITUDE && v >= -MAX_WEIGHT_MAGNITUDE)) refuse(file, tensor, v, firstElement + i);
  }
}

/**
 * The largest F16 / BF16 bit pattern (sign cleared) within MAX_WEIGHT_MAGNITUDE: every finite F16
 * value is (at most 65504); a BF16 value is the top half of an f32, so 2^64 is 0x5f80, and NaN and
 * ±Infinity lie above both.
 */
const HALF_LIMIT = { F16: 0x7bff, BF16: 0x5f80 } as const;

/** checkFiniteWeights for F16 or BF16 bit patterns, without widening them (HALF_LIMIT). */
export function checkFiniteHalfWeights(
  file: string,
  tensor: string,
  bits: Uint16Array,
  dtype: 'F16' | 'BF16',
): void {
  const limit = HALF_LIMIT[dtype];
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & 0x7fff) > limit)
      refuse(file, tensor, dtype === 'F16' ? f16ToF32(bits[i]) : bf16ToF32(bits[i]), i);
  }
}

/** checkFiniteWeights for a tensor as stored: f32 values, or F16/BF16 bit patterns. */
export function checkFiniteStored(
  file: string,
  tensor: string,
  stored: { dtype: TensorDtype; data: Float32Array | Uint16Array },
): void {
  const { dtype, data } = stored;
  if (data instanceof Float32Array) checkFiniteWeights(file, tensor, data);
  else if (dtype !== 'F32') checkFiniteHalfWeights(file, tensor, data, dtype);
  else throw new Error(`tensor "${tensor}": F32 data held as 16-bit patterns`);
}

function refuse(file: string, tensor: string, value: number, element: number): never {
  throw new ModelFormatError(
    file,
    `tensor "${tensor}" holds ${value} at element ${element}; weights must be finite and within ±2^64 (f32 overflows past that)`,
  );
}
