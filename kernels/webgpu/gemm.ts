import { createSplitBuffer, type SplitBuffer, type StorageDtype, toF16Bits, writeSplit } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, MAX_GROUPS_PER_DIM } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** WGSL header and element type of a weight storage dtype. */
export function dtypeWgsl(dtype: StorageDtype): { ENABLE: string; WTYPE: string } {
  return dtype === 'f16' ? { ENABLE: 'enable f16;', WTYPE: 'f16' } : { ENABLE: '', WTYPE: 'f32' };
}

/** A [rows, cols] weight matrix on the device, split by whole rows where it exceeds a binding. */
export interface DeviceWeight {
  rows: number;
  cols: number;
  data: SplitBuffer;
}

/** Uploads an f32 host matrix (HF [out, in]) as `dtype` storage. */
export function uploadWeight(
  ctx: WebGpuContext,
  values: Float32Array,
  rows: number,
  cols: number,
  dtype: StorageDtype,
  label: string,
  maxChunkBytes?: number,
): DeviceWeight {
  if (values.length !== rows * cols) throw new Error(`${label}: ${values.length} values for ${rows}×${cols}`);
  if (dtype === 'f16' && !ctx.hasF16) throw new Error(`${label}: the device has no shader-f16`);
  const data = createSplitBuffer(ctx, rows * cols, cols, dtype, label, maxChunkBytes);
  writeSplit(ctx, data, 0, dtype === 'f16' ? toF16Bits(values) : values);
  return { rows, cols, data };
}

/**
 * Launcher of gemm.wgsl: y[m, yCol…] = x[m, k] · Wᵀ (or += with `accumulate`), W [n, k]. One
 * dispatch per weight chunk, each writing its own column range of y.
 */
export class GemmKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    rows: number,
    weight: DeviceWeight,
    y: GPUBuffer,
    options: { accumulate?: boolean; ldy?: number; yCol?: number } = {},
  ): void {
    const { cols: k, data } = weight;
    if (k % 4 !== 0) throw new Error(`gemm: inner dimension ${k} is not a multiple of 4`);
    const groupsY = Math.ceil(rows / 4);
    if (groupsY > MAX_GROUPS_PER_DIM) throw new Error(`gemm: ${rows} rows exceed one dispatch`);
    const pipeline = this.ctx.pipelines.pipeline(`gemm:${data.dtype}`, `gemm_${data.dtype}`, () =>
      loadWgsl('gemm.wgsl', dtypeWgsl(data.dtype)),
    );
    const rowsPerChunk = data.chunkElements / k;
    const ldy = options.ldy ?? weight.rows;
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
      ]);
      const bindings = [{ buffer: x }, { buffer: chunk }, { buffer: y }];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, Math.ceil(n / 256), groupsY);
    });
  }
}
