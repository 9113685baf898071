import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../model/float-convert.js';
import type { LlamaConfig } from '../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../model/llama-modules.js';
import type { ModelWeights } from '../model/model-weights.js';

/**
 * Low-precision storage of the base model's linear weights, made at load from the f32 weights (no
 * offline step); the onnx engine and the webgpu engine take every format (the same codes and
 * scales; webgpu unpacks them in its gemm kernels). The embedding, the norms, the page pool
 * and LoRA A/B stay f32.
 *
 * - `f16` / `bf16`: each weight rounded to nearest even; onnxruntime's CPU MatMul has no x86 f16
 *   kernel, so the graph casts each weight to f32 just before its Gemm (bench/onnx-weight-formats.ts).
 * - `int8` / `int4`: block-wise symmetric quantization along K (the input features) in blocks of
 *   BLOCK_SIZE, one f32 scale per block, codes stored as unsigned with the implicit zero point
 *   2^(bits-1), packed low-first: exactly com.microsoft `MatMulNBits`'s layout
 *   (B `[N, kBlocks, blockSize·bits/8]`, scales `[N·kBlocks]`), so the weight goes into ORT as is.
 */
export const WEIGHT_FORMATS = ['f32', 'f16', 'bf16', 'int8', 'int4'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];

export type QuantizedFormat = 'int8' | 'int4';

export const QUANTIZED_BITS: Record<QuantizedFormat, 4 | 8> = { int8: 8, int4: 4 };

/**
 * K elements per scale (bench/results/onnx-weight-formats.md has the sizes tried): int4 keeps
 * llama.cpp q4_0's 32, since at 4 bits one outlier in a wide block costs the others most of
 * their 16 levels; int8 takes 128, whose scales add 3 % to the bytes a decode step reads (12.5 %
 * at 32) and whose MatMulNBits prefill ran ~1.3× faster, while 255 levels keep the error at 32's.
 */
export const BLOCK_SIZE: Record<QuantizedFormat, number> = { int8: 128, int4: 32 };

export function isQuantized(format: WeightFormat): format is QuantizedFormat {
  return format === 'int8' || format === 'int4';
}

/** Bytes an [outFeatures, inFeatures] weight takes in `format` (scales included). */
export function weightBytes(format: WeightFormat, outFeatures: number, inFeatures: number): number {
  if (format === 'f32') return outFeatures * inFeatures * 4;
  if (format === 'f16' || format === 'bf16') return outFeatures * inFeatures * 2;
  const blockSize = BLOCK_SIZE[format];
  return outFeatures * numBlocks(inFeatures, blockSize) * ((blockSize * QUANTIZED_BITS[format]) / 8 + 4);
}

/** Bytes of every decoder layer's linear weights in `format` (lm_head not included). */
export function layerLinearBytes(config: LlamaConfig, format: WeightFormat): number {
  let bytes = 0;
  for (const m of TARGET_MODULES) {
    const { outFeatures, inFeatures } = moduleShape(config, m);
    bytes += config.numLayers * weightBytes(format, outFeatures, inFeatures);
  }
  return bytes;
}

/** Bytes of the weights a decode step reads in `format`: every linear layer's, and lm_head's. */
export function decodeWeightBytes(config: LlamaConfig, format: WeightFormat): number {
  return weightBytes(format, config.vocabSize, config.hiddenSize) + layerLinearBytes(config, format);
}

/** A [N, K] weight in MatMulNBits's layout. */
export interface BlockQuantizedWeight {
  bits: 4 | 8;
  blockSize: number;
  outFeatures: number;
  inFeatures: number;
  /** uint8 [N, kBlocks, blockSize·bits/8]: unsigned codes, low bits first. */
  codes: Uint8Array;
  /** f32 [N · kBlocks]. */
  scales: Float32Array;
}

export function numBlocks(inFeatures: number, blockSize: number): number {
  return Math.ceil(inFeatures / blockSize);
}

/**
 * Quantizes a row-major [outFeatures, inFeatures] weight. Each block's scale maps the element of
 * largest magnitude m onto the most negative code (scale = m / −2^(bits−1), llama.cpp q4_0's
 * choice), so every code is used and m itself is exact; the price is that a value of m's opposite
 * sign within half a step of |m| clamps to the top code (an error up to one step, not half).
 * A block past K's end is padded with zeros. An all-zero block
 * gets scale 0. A non-finite weight is refused: one would turn a whole block's outputs into NaN.
 */
export function quantizeBlockwise(
  weight: Float32Array,
  outFeatures: number,
  inFeatures: number,
  bits: 4 | 8,
  blockSize: number,
): BlockQuantizedWeight {
  if (weight.length !== outFeatures * inFeatures)
    throw new Error(`weight has ${weight.length} elements, expected ${outFeatures}×${inFeatures}`);
  if (!Number.isInteger(blockSize) || blockSize < 2 || blockSize % 2 !== 0)
    throw new Error(`block size ${blockSize} is not an even positive integer`);
  const kBlocks = numBlocks(inFeatures, blockSize);
  const blobBytes = (blockSize * bits) / 8;
  const codes = new Uint8Array(outFeatures * kBlocks * blobBytes);
  const scales = new Float32Array(outFeatures * kBlocks);
  const zero = 1 << (bits - 1);
  const maxCode = (1 << bits) - 1;
  for (let n = 0; n < outFeatures; n++) {
    const row = n * inFeatures;
    for (let b = 0; b < kBlocks; b++) {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, inFeatures);
      let extreme = 0;
      for (let k = start; k < end; k++) {
        const v = weight[row + k];
        if (!Number.isFinite(v)) throw new Error(`weight row ${n} column ${k} is ${v}: cannot quantize it`);
        if (Math.abs(v) > Math.abs(extreme)) extreme = v;
      }
      const scale = extreme === 0 ? 0 : extreme / -zero;
      const block = n * kBlocks + b;
      scales[block] = scale;
      const inverse = scale === 0 ? 0 : 1 / scale;
      const blob = block * blobBytes;
      for (let i = 0; i < blockSize; i++) {
        const k = start + i;
        const v = k < end ? weight[row + k] : 0;
        const code = Math.min(maxCode, Math.max(0, Math.round(v * inverse) + zero));
        if (bits === 8) codes[blob + i] = code;
        else codes[blob + (i >> 1)] |= i & 1 ? code << 4 : code;
      }
    }
  }
  return { bits, blockSize, outFeatures, inFeatures, codes, scales };
}

/** The f32 weight a quantized one stands for: (code − 2^(bits−1)) · scale, as MatMulNBits computes it. */
export function dequantizeBlockwise(q: BlockQuantizedWeight): Float32Array {
  const { bits, blockSize, outFeatures, inFeatures } = q;
  const kBlocks = numBlocks(inFeatures, blockSize);
  const blobBytes = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  const out = new Float32Array(outFeatures * inFeatures);
  for (let n = 0; n < outFeatures; n++) {
    for (let k = 0; k < inFeatures; k++) {
      const b = Math.floor(k / blockSize);
      const i = k - b * blockSize;
      const block = n * kBlocks + b;
      const byte = q.codes[block * blobBytes + (bits === 8 ? i : i >> 1)];
      const code = bits === 8 ? byte : i & 1 ? byte >> 4 : byte & 0xf;
      out[n * inFeatures + k] = (code - zero) * q.scales[block];
    }
  }
  return out;
}

/**
 * IEEE half bits of each element (round to nearest even). A finite value past f16's range (it
 * would round to ±Inf, and every output it touches with it) is refused, naming `name`.
 */
export function toFloat16(weight: Float32Array, name = 'weight'): Uint16Array {
  const out = new Uint16Array(weight.length);
  for (let i = 0; i < weight.length; i++) {
    const bits = f32ToF16(weight[i]);
    if ((bits & 0x7fff) === 0x7c00 && Number.isFinite(weight[i]))
      throw new Error(
        `${name}[${i}] = ${weight[i]} is outside the f16 range (±65504): store the weights as bf16 or f32`,
      );
    out[i] = bits;
  }
  return out;
}

/** bfloat16 bits of each element (round to nearest even). */
export function toBfloat16(weight: Float32Array): Uint16Array {
  const out = new Uint16Array(weight.length);
  for (let i = 0; i < weight.length; i++) out[i] = f32ToBf16(weight[i]);
  return out;
}

/** The largest finite f16. */
const F16_MAX = 65504;

/**
 * bf16-rounded values held as f16 bits (onnxruntime's CPU MatMul has f16 kernels, none for bf16).
 * Exact for 2^-17 ≤ |w| ≤ 65504 (bf16's 8 significant bits fit f16's 11, down to its subnormals);
 * smaller magnitudes land on f16's 2^-24 grid (an error under 3e-8). A bf16 value past f16's range
 * is refused: it would become Inf.
 */
export function toBfloat16AsFloat16(weight: Float32Array, name = 'weight'): Uint16Array {
  const out = new Uint16Array(weight.length);
  for (let i = 0; i < weight.length; i++) {
    const v = bf16ToF32(f32ToBf16(weight[i]));
    if (!(Math.abs(v) <= F16_MAX))
      throw new Error(
        `${name}[${i}] = ${weight[i]} is outside the f16 range that holds bf16 weights on the onnx engine`,
      );
    out[i] = f32ToF16(v);
  }
  return out;
}

/** The f32 values a weight stored in `format` computes with: the oracle the engine is tested against. */
export function roundTripWeight(
  weight: Float32Array,
  outFeatures: number,
  inFeatures: number,
  format: WeightFormat,
): Float32Array {
  switch (format) {
    case 'f32':
      return weight;
    case 'f16':
      return Float32Array.from(toFloat16(weight), f16ToF32);
    case 'bf16':
      return Float32Array.from(toBfloat16AsFloat16(weight), f16ToF32);
    default:
      return dequantizeBlockwise(
        quantizeBlockwise(weight, outFeatures, inFeatures, QUANTIZED_BITS[format], BLOCK_SIZE[format]),
      );
  }
}

/**
 * The model an engine storing its linear weights (lm_head included) in `format` computes with, in
 * f32: what the reference engine runs to check the onnx engine's low-precision weights.
 */
export function roundTripModel(weights: ModelWeights, format: WeightFormat): ModelWeights {
  const c = weights.config;
  return {
    ...weights,
    lmHead: roundTripWeight(weights.lmHead, c.vocabSize, c.hiddenSize, format),
    layers: weights.layers.map((layer) => {
      const linear = {} as Record<TargetModule, Float32Array>;
      for (const m of TARGET_MODULES) {
        const { outFeatures, inFeatures } = moduleShape(c, m);
        linear[m] = roundTripWeight(layer.linear[m], outFeatures, inFeatures, format);
      }
      return { ...layer, linear };
    }),
  };
}
