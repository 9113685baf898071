import {
  BLOCK_SIZE,
  isQuantized,
  numBlocks,
  QUANTIZED_BITS,
  quantizeBlockwise,
  toBfloat16AsFloat16,
  toFloat16,
  type WeightFormat,
} from '../weight-quantization.js';
import type { GraphBuilder } from './onnx-model.js';

/**
 * How the step graph multiplies by a base-model linear weight in each storage format, and the
 * bytes onnxruntime reads those weights from. Both sides name the external-data "files" the same
 * way, so they live together. Chosen by bench/onnx-weight-formats.ts (results in
 * bench/results/onnx-weight-formats.md):
 *  - f32: Gemm(transB) over the HF [out, in] weight, prepacked by onnxruntime at load;
 *  - f16 / bf16: the f16 weight is fed as graph *inputs* (zero-copy views), in row tiles whose f32
 *    copy is ~4 MB; each tile is cast to f32 and multiplied, and the tiles' outputs concatenated.
 *    onnxruntime's x86 CPU has no f16 or bf16 GEMM: a float16 MatMul over an initializer is run
 *    by casting the initializer to f32 once at load (an f32 copy in its memory, nothing saved), so
 *    inputs are what keep 2 bytes a weight resident; tiles keep each step's f32 copy in cache
 *    instead of a whole-matrix temporary in memory. bf16 weights are bf16-rounded values held in
 *    f16, which holds every bf16 value of magnitude 2^-17..65504 exactly (onnxruntime-node has
 *    no bf16 tensors);
 *  - int8 / int4: com.microsoft MatMulNBits over block-quantized codes (../weight-quantization.ts),
 *    accuracy_level 4: activations quantized to int8 per block, int8 dot products, f32 sums.
 */

/** MatMulNBits' accuracy_level 4: int8 activations, the fast integer kernels (llama.cpp's q8 dot). */
const NBITS_ACCURACY_LEVEL = 4;

const ONNX_FLOAT = 1;

/** Bytes of one f16 tile's f32 copy: small enough to stay in a core's share of the cache. */
const F16_TILE_F32_BYTES = 4 << 20;

/** Rows of each f16 tile of a weight with `inFeatures` columns. */
export function f16TileRows(inFeatures: number): number {
  return Math.max(1, Math.floor(F16_TILE_F32_BYTES / (inFeatures * 4)));
}

/** The graph input of tile i of an f16 weight. */
export function f16TileName(name: string, tile: number): string {
  return `${name}.f16_${tile}`;
}

/** The in-memory external-data "file" of a weight's main part, as `externalData` must name it. */
export function weightLocation(name: string): string {
  return `weights/${name}`;
}

function scalesLocation(name: string): string {
  return `weights/${name}.scales`;
}

/**
 * Initializer bytes read from a real file: its name in the session's external-initializer folder,
 * and where they start. onnxruntime maps such a file; what it is handed in memory it copies.
 */
export interface WeightFileLocation {
  location: string;
  offset: number;
}

/**
 * Where the session reads external data from files instead of memory, keyed by the in-memory
 * path (weightLocation, and a quantized weight's scales): an F32 weight's safetensors file, or the
 * encoded-weight cache (weight-cache.ts).
 */
export type WeightFiles = ReadonlyMap<string, WeightFileLocation>;

/** An initializer whose bytes are at `path` (in memory), or in the file `files` maps it to. */
function initializer(
  g: GraphBuilder,
  name: string,
  type: 'float32' | 'uint8',
  dims: number[],
  path: string,
  files: WeightFiles | undefined,
): string {
  const inFile = files?.get(path);
  return inFile
    ? g.external(name, type, dims, inFile.location, inFile.offset)
    : g.external(name, type, dims, path);
}

/**
 * y = x·Wᵀ for the HF [outFeatures, inFeatures] weight `name`, stored in `format` (an initializer),
 * its bytes read from a file where `files` says so.
 */
export function baseLinear(
  g: GraphBuilder,
  x: string,
  name: string,
  outFeatures: number,
  inFeatures: number,
  format: WeightFormat,
  files?: WeightFiles,
): string {
  if (format === 'f32') {
    const w = initializer(g, name, 'float32', [outFeatures, inFeatures], weightLocation(name), files);
    return g.op('Gemm', [x, w], { transB: 1 });
  }
  if (!isQuantized(format)) {
    const tileRows = f16TileRows(inFeatures);
    const parts: string[] = [];
    for (let row = 0, t = 0; row < outFeatures; row += tileRows, t++) {
      const rows = Math.min(tileRows, outFeatures - row);
      const tile = g.input(f16TileName(name, t), 'float16', [rows, inFeatures]);
      parts.push(g.op('Gemm', [x, g.op('Cast', [tile], { to: ONNX_FLOAT })], { transB: 1 }));
    }
    return parts.length === 1 ? parts[0] : g.op('Concat', parts, { axis: 1 });
  }
  const bits = QUANTIZED_BITS[format];
  const blockSize = BLOCK_SIZE[format];
  const kBlocks = numBlocks(inFeatures, blockSize);
  const codes = initializer(
    g,
    name,
    'uint8',
    [outFeatures, kBlocks, (blockSize * bits) / 8],
    weightLocation(name),
    files,
  );
  const scales = initializer(
    g,
    `${name}.scales`,
    'float32',
    [outFeatures * kBlocks],
    scalesLocation(name),
    files,
  );
  return g.op(
    'MatMulNBits',
    [x, codes, scales],
    {
      K: inFeatures,
      N: outFeatures,
      bits,
      block_size: blockSize,
      accuracy_level: NBITS_ACCURACY_LEVEL,
    },
    { domain: 'com.microsoft' },
  );
}

/**
 * Quantized weights of modules that read the same input (q/k/v, gate/up) go to onnxruntime as one
 * MatMulNBits over their rows stacked (N = Σ out): one dispatch instead of three or two, on a wider
 * matrix that splits better across threads. MatMulNBits' layout is row after row, so stacking is
 * concatenating each module's codes and scales. The name of a group's stacked weight:
 */
export function fusedWeightName(names: readonly string[]): string {
  return `fused(${names.join('+')})`;
}

/** y = x·[W₁; W₂; …]ᵀ split back into each module's output: quantized weights of one input (fusedWeightName). */
export function fusedQuantizedLinear(
  g: GraphBuilder,
  x: string,
  names: readonly string[],
  outFeatures: readonly number[],
  inFeatures: number,
  format: WeightFormat,
  files?: WeightFiles,
): string[] {
  const total = outFeatures.reduce((a, b) => a + b, 0);
  const y = baseLinear(g, x, fusedWeightName(names), total, inFeatures, format, files);
  return g.opMulti('Split', [y, g.ints(outFeatures)], outFeatures.length, { axis: 1 });
}

/**
 * The external data of a fused group (fusedWeightName) from its modules' own encodings, in order:
 * codes after codes, scales after scales (new arrays, freed with the session's inputs).
 */
export function fuseEncodedWeights(
  names: readonly string[],
  encoded: readonly EncodedWeight[],
): ExternalWeightData[] {
  const fused = fusedWeightName(names);
  const parts = [weightLocation, scalesLocation].map((location, i) => {
    const pieces = encoded.map((e) => {
      if (e.kind !== 'external' || e.parts.length !== 2)
        throw new Error(`${fused}: only quantized weights fuse`);
      return e.parts[i].data;
    });
    const data = new Uint8Array(pieces.reduce((a, p) => a + p.byteLength, 0));
    let at = 0;
    for (const piece of pieces) {
      data.set(piece, at);
      at += piece.byteLength;
    }
    return { path: location(fused), data };
  });
  return parts;
}

export interface ExternalWeightData {
  path: string;
  data: Uint8Array;
}

/** A weight in the form the session takes it: initializer bytes, or a float16 input fed each run. */
export type EncodedWeight =
  | { kind: 'external'; parts: ExternalWeightData[] }
  | { kind: 'float16-inputs'; tiles: Array<{ name: string; data: Uint16Array; dims: [number, number] }> };

const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Weight `name` ([outFeatures, inFeatures] f32, HF layout) in `format`, under the names and
 * locations `baseLinear` uses. f32 is the caller's array itself (no copy); the others are new
 * arrays the caller must keep alive while a session uses them.
 */
export function encodeBaseWeight(
  name: string,
  weight: Float32Array,
  outFeatures: number,
  inFeatures: number,
  format: WeightFormat,
): EncodedWeight {
  if (format === 'f32')
    return { kind: 'external', parts: [{ path: weightLocation(name), data: asBytes(weight) }] };
  if (!isQuantized(format)) {
    const data = format === 'f16' ? toFloat16(weight, name) : toBfloat16AsFloat16(weight, name);
    const tileRows = f16TileRows(inFeatures);
    const tiles = [];
    for (let row = 0, t = 0; row < outFeatures; row += tileRows, t++) {
      const rows = Math.min(tileRows, outFeatures - row);
      tiles.push({
        name: f16TileName(name, t),
        data: data.subarray(row * inFeatures, (row + rows) * inFeatures),
        dims: [rows, inFeatures] as [number, number],
      });
    }
    return { kind: 'float16-inputs', tiles };
  }
  const q = quantizeBlockwise(weight, outFeatures, inFeatures, QUANTIZED_BITS[format], BLOCK_SIZE[format]);
  return {
    kind: 'external',
    parts: [
      { path: weightLocation(name), data: q.codes },
      { path: scalesLocation(name), data: asBytes(q.scales) },
    ],
  };
}
