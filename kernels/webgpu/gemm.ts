import {
  BLOCK_SIZE,
  numBlocks,
  QUANTIZED_BITS,
  quantizeBlockwise,
  toBfloat16,
  toFloat16,
} from '../weight-quantization.js';
import {
  createSplitBuffer,
  destroySplit,
  type SplitBuffer,
  type StorageDtype,
  uploadBuffer,
  writeSplit,
} from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, MAX_GROUPS_PER_DIM } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Storage dtypes of block-quantized codes: the onnx engine's int8 and int4 formats. */
export type QuantizedDtype = Extract<StorageDtype, 'int8' | 'int4'>;

export function isQuantizedDtype(dtype: StorageDtype): dtype is QuantizedDtype {
  return dtype === 'int8' || dtype === 'int4';
}

/** WGSL header and element type of a float storage dtype (tables read as they are stored: embed). */
export function dtypeWgsl(dtype: StorageDtype): { ENABLE: string; WTYPE: string } {
  if (isQuantizedDtype(dtype) || dtype === 'bf16')
    throw new Error(`${dtype} storage holds gemm weights only (read through weightWgsl)`);
  return dtype === 'f16' ? { ENABLE: 'enable f16;', WTYPE: 'f16' } : { ENABLE: '', WTYPE: 'f32' };
}

/**
 * WGSL of a gemm kernel's weight bindings and of `weight4(at)`: the four weights at vec4 index
 * `at` of the bound chunk, as f32. f32 and f16 are read as stored; bf16 (which WGSL lacks) is the
 * top half of an f32, so a pair of words holds four, each shifted into place. int8 and int4 hold
 * kernels/weight-quantization.ts's codes (unsigned, zero point 2^(bits−1), low bits first): a word
 * holds four int8 codes, or eight int4 ones (two vec4s, the low half first); the codes times their
 * block's scale (binding 3, every block of the weight; the chunk's first is p.scaleStart). A row's
 * codes are padded to whole blocks, so the block of index `at` is at / (block / 4) within the chunk.
 */
export function weightWgsl(dtype: StorageDtype): { ENABLE: string; WEIGHTS: string } {
  if (dtype === 'bf16')
    return {
      ENABLE: '',
      WEIGHTS: [
        '@group(0) @binding(1) var<storage, read> w: array<vec2<u32>>;',
        '',
        'fn weight4(at: u32) -> vec4<f32> {',
        '  let pair = w[at];',
        '  let bits = vec4<u32>(pair.x << 16u, pair.x & 0xffff0000u, pair.y << 16u, pair.y & 0xffff0000u);',
        '  return bitcast<vec4<f32>>(bits);',
        '}',
      ].join('\n'),
    };
  if (!isQuantizedDtype(dtype)) {
    const { ENABLE, WTYPE } = dtypeWgsl(dtype);
    return {
      ENABLE,
      WEIGHTS: [
        `@group(0) @binding(1) var<storage, read> w: array<vec4<${WTYPE}>>;`,
        '',
        'fn weight4(at: u32) -> vec4<f32> {',
        '  return vec4<f32>(w[at]);',
        '}',
      ].join('\n'),
    };
  }
  const unpack =
    dtype === 'int8'
      ? [
          '  let word = w[at];',
          '  let codes = vec4<u32>(word & 0xffu, (word >> 8u) & 0xffu, (word >> 16u) & 0xffu, word >> 24u);',
        ]
      : [
          '  let half = w[at >> 1u] >> ((at & 1u) * 16u);',
          '  let codes = vec4<u32>(half & 0xfu, (half >> 4u) & 0xfu, (half >> 8u) & 0xfu, (half >> 12u) & 0xfu);',
        ];
  const block = BLOCK_SIZE[dtype];
  const zero = 1 << (QUANTIZED_BITS[dtype] - 1);
  return {
    ENABLE: '',
    WEIGHTS: [
      '@group(0) @binding(1) var<storage, read> w: array<u32>;',
      '@group(0) @binding(3) var<storage, read> scales: array<f32>;',
      '',
      'fn weight4(at: u32) -> vec4<f32> {',
      ...unpack,
      `  return (vec4<f32>(codes) - ${zero}.0) * scales[p.scaleStart + at / ${block / 4}u];`,
      '}',
    ].join('\n'),
  };
}

/** How a weight sits in device memory: as HF stores it ([out, in]) or transposed ([in, out]). */
export type WeightLayout = 'out-in' | 'in-out';

/**
 * An [out = rows, in = cols] weight matrix on the device, split by whole storage rows where it
 * exceeds a binding ('out-in': rows of W; 'in-out': rows of Wᵀ, four at a time).
 */
export interface DeviceWeight {
  rows: number;
  cols: number;
  layout: WeightLayout;
  data: SplitBuffer;
  /** vec4s of weights from one stored out-in row to the next: cols / 4, or whole blocks' worth for int8/int4. */
  rowStride4: number;
  /** int8/int4: the f32 scale of every block, row after row (numBlocks(cols) per row); else null. */
  scales: GPUBuffer | null;
}

/**
 * Uploads an f32 host matrix in HF's [out, in] layout as `dtype` storage, transposed first for
 * 'in-out' (the faster gemm; 'out-in' suits a table that embed also reads by rows). int8 and
 * int4 are quantized here, block-wise along `cols` (quantizeBlockwise), and keep the out-in layout.
 */
export function uploadWeight(
  ctx: WebGpuContext,
  values: Float32Array,
  rows: number,
  cols: number,
  dtype: StorageDtype,
  label: string,
  maxChunkBytes?: number,
  layout: WeightLayout = 'out-in',
): DeviceWeight {
  if (values.length !== rows * cols) throw new Error(`${label}: ${values.length} values for ${rows}×${cols}`);
  if (dtype === 'f16' && !ctx.hasF16) throw new Error(`${label}: the device has no shader-f16`);
  if (isQuantizedDtype(dtype))
    return uploadQuantizedWeight(ctx, values, rows, cols, dtype, label, maxChunkBytes, layout);
  let stored = values;
  let unit = cols;
  if (layout === 'in-out') {
    stored = new Float32Array(values.length);
    for (let o = 0; o < rows; o++) for (let k = 0; k < cols; k++) stored[k * rows + o] = values[o * cols + k];
    // Chunks hold whole groups of four k-rows: the kernel reads x four k at a time.
    unit = 4 * rows;
  }
  const data = createSplitBuffer(ctx, rows * cols, unit, dtype, label, maxChunkBytes);
  writeSplit(
    ctx,
    data,
    0,
    dtype === 'f16' ? toFloat16(stored, label) : dtype === 'bf16' ? toBfloat16(stored) : stored,
  );
  return { rows, cols, layout, data, rowStride4: cols / 4, scales: null };
}

/**
 * Codes and scales as kernels/weight-quantization.ts makes them (the onnx engine's MatMulNBits
 * layout): a SplitBuffer of code bytes, cut between whole rows, and one buffer of scales.
 */
function uploadQuantizedWeight(
  ctx: WebGpuContext,
  values: Float32Array,
  rows: number,
  cols: number,
  dtype: QuantizedDtype,
  label: string,
  maxChunkBytes: number | undefined,
  layout: WeightLayout,
): DeviceWeight {
  if (layout !== 'out-in') throw new Error(`${label}: ${dtype} weights keep the out-in layout`);
  const bits = QUANTIZED_BITS[dtype];
  const block = BLOCK_SIZE[dtype];
  let quantized: ReturnType<typeof quantizeBlockwise>;
  try {
    quantized = quantizeBlockwise(values, rows, cols, bits, block);
  } catch (error) {
    throw new Error(`${label}: ${(error as Error).message}`);
  }
  const rowWeights = numBlocks(cols, block) * block;
  const rowBytes = (rowWeights * bits) / 8;
  const data = createSplitBuffer(ctx, rows * rowBytes, rowBytes, dtype, label, maxChunkBytes);
  writeSplit(ctx, data, 0, quantized.codes);
  const scales = uploadBuffer(ctx, quantized.scales, `${label}.scales`);
  return { rows, cols, layout, data, rowStride4: rowWeights / 4, scales };
}

/** Frees a weight's buffers (its chunks and, for int8/int4, its scales). */
export function destroyWeight(ctx: WebGpuContext, weight: DeviceWeight): void {
  destroySplit(ctx, weight.data);
  if (weight.scales) {
    ctx.pipelines.forgetBuffer(weight.scales);
    weight.scales.destroy();
  }
}

/** Which kernel computes a product: gemm.wgsl's register tiles, or gemm_skinny.wgsl's split k. */
export type GemmVariant = 'tiled' | 'skinny';

/**
 * Rows of x up to which a hardware adapter runs gemm_skinny.wgsl on out-in weights: past it, the
 * skinny kernel reads W once per 8 rows and the register tiles win.
 */
export const SKINNY_MAX_ROWS = 32;

/**
 * Launcher of gemm.wgsl and gemm_skinny.wgsl: y[m, yCol…] = x[m, k] · Wᵀ (or += with
 * `accumulate`), W [n, k]. One dispatch per weight chunk, each writing its own column range of y.
 * On a hardware adapter, few rows over out-in weights (decode, the logit rows) take the skinny
 * kernel; a software adapter (lavapipe) keeps the barrier-free tiles.
 */
export class GemmKernel {
  private readonly skinnyMaxRows: number;

  constructor(
    private readonly ctx: WebGpuContext,
    options: { skinnyMaxRows?: number } = {},
  ) {
    this.skinnyMaxRows = options.skinnyMaxRows ?? (ctx.adapter.isFallbackAdapter ? 0 : SKINNY_MAX_ROWS);
  }

  /** The kernel `encode` uses for `rows` rows of x over `weight`, unless told otherwise. */
  variantFor(rows: number, weight: DeviceWeight): GemmVariant {
    return weight.layout === 'out-in' && rows <= this.skinnyMaxRows ? 'skinny' : 'tiled';
  }

  encode(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    rows: number,
    weight: DeviceWeight,
    y: GPUBuffer,
    options: { accumulate?: boolean; ldy?: number; yCol?: number; variant?: GemmVariant } = {},
  ): void {
    const { cols: k, data } = weight;
    if (k % 4 !== 0) throw new Error(`gemm: inner dimension ${k} is not a multiple of 4`);
    if ((options.variant ?? this.variantFor(rows, weight)) === 'skinny') {
      this.encodeSkinny(pass, x, rows, weight, y, options);
      return;
    }
    const groupsY = Math.ceil(rows / 4);
    if (groupsY > MAX_GROUPS_PER_DIM) throw new Error(`gemm: ${rows} rows exceed one dispatch`);
    const entry = weight.layout === 'in-out' ? 'main_in_out' : 'main_out_in';
    const pipeline = this.ctx.pipelines.pipeline(
      `gemm:${data.dtype}`,
      `gemm_${data.dtype}`,
      () => loadWgsl('gemm.wgsl', weightWgsl(data.dtype)),
      entry,
    );
    const ldy = options.ldy ?? weight.rows;
    if (weight.layout === 'in-out') {
      const n = weight.rows;
      if (n % 4 !== 0) throw new Error(`gemm: ${n} outputs is not a multiple of 4 (in-out layout)`);
      const kPerChunk = data.chunkElements / n;
      data.chunks.forEach((chunk, c) => {
        const kStart = c * kPerChunk;
        const kCount = Math.min(kPerChunk, k - kStart);
        const accumulate = c > 0 || options.accumulate ? 1 : 0;
        const imm = Immediates.of([
          rows,
          n,
          kCount / 4,
          ldy,
          options.yCol ?? 0,
          accumulate,
          k / 4,
          kStart / 4,
          weight.rowStride4,
          0,
        ]);
        const bindings = [{ buffer: x }, { buffer: chunk }, { buffer: y }];
        encodeDispatch(this.ctx, pass, pipeline, bindings, imm, Math.ceil(n / 4 / 64), groupsY);
      });
      return;
    }
    this.encodeOutInChunks(pass, pipeline, x, rows, weight, y, options, (n) => [Math.ceil(n / 256), groupsY]);
  }

  private encodeSkinny(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    rows: number,
    weight: DeviceWeight,
    y: GPUBuffer,
    options: { accumulate?: boolean; ldy?: number; yCol?: number },
  ): void {
    const { data } = weight;
    if (weight.layout !== 'out-in') throw new Error('gemm: the skinny kernel reads out-in weights');
    const groupsY = Math.ceil(rows / 8);
    if (groupsY > MAX_GROUPS_PER_DIM) throw new Error(`gemm: ${rows} rows exceed one dispatch`);
    const pipeline = this.ctx.pipelines.pipeline(
      `gemm_skinny:${data.dtype}`,
      `gemm_skinny_${data.dtype}`,
      () => loadWgsl('gemm_skinny.wgsl', weightWgsl(data.dtype)),
      'main',
    );
    this.encodeOutInChunks(pass, pipeline, x, rows, weight, y, options, (n) => {
      const groupsX = Math.ceil(n / 4);
      if (groupsX > MAX_GROUPS_PER_DIM) throw new Error(`gemm: ${n} outputs exceed one dispatch`);
      return [groupsX, groupsY];
    });
  }

  /** One dispatch per chunk of an out-in weight (whole rows of W), each writing its own columns of y. */
  private encodeOutInChunks(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    x: GPUBuffer,
    rows: number,
    weight: DeviceWeight,
    y: GPUBuffer,
    options: { accumulate?: boolean; ldy?: number; yCol?: number },
    groupsFor: (outputs: number) => [number, number],
  ): void {
    const { cols: k, data, rowStride4, scales } = weight;
    const ldy = options.ldy ?? weight.rows;
    // Chunks are cut between whole stored rows (SplitBuffer units).
    const rowsPerChunk = data.chunkElements / data.unitElements;
    const blocksPerRow = isQuantizedDtype(data.dtype) ? numBlocks(k, BLOCK_SIZE[data.dtype]) : 0;
    data.chunks.forEach((chunk, c) => {
      const first = c * rowsPerChunk;
      const n = Math.min(rowsPerChunk, weight.rows - first);
      const imm = Immediates.of([
        rows,
        n,
        k / 4,
        ldy,
        (options.yCol ?? 0) + first,
        options.accumulate ? 1 : 0,
        k / 4,
        0,
        rowStride4,
        first * blocksPerRow,
      ]);
      const [groupsX, groupsY] = groupsFor(n);
      const bindings = [{ buffer: x }, { buffer: chunk }, { buffer: y }, scales ? { buffer: scales } : null];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, groupsX, groupsY);
    });
  }
}
