import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { type DeviceWeight, dtypeWgsl } from './gemm.js';
import { loadWgsl } from './wgsl.js';

/** Launcher of embed.wgsl: y[T, hidden] = rows of `table` [vocab, hidden] picked by `ids` (u32). */
export class EmbedKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(
    pass: GPUComputePassEncoder,
    ids: GPUBuffer,
    numTokens: number,
    table: DeviceWeight,
    y: GPUBuffer,
  ): void {
    const { cols: hidden, data } = table;
    if (hidden % 4 !== 0) throw new Error(`embed: hidden ${hidden} is not a multiple of 4`);
    const pipeline = this.ctx.pipelines.pipeline(`embed:${data.dtype}`, `embed_${data.dtype}`, () =>
      loadWgsl('embed.wgsl', dtypeWgsl(data.dtype)),
    );
    const rowsPerChunk = data.chunkElements / hidden;
    data.chunks.forEach((chunk, c) => {
      const rowStart = c * rowsPerChunk;
      const rowCount = Math.min(rowsPerChunk, table.rows - rowStart);
      const imm = Immediates.of([numTokens, hidden / 4, rowStart, rowCount]);
      const bindings = [{ buffer: ids }, { buffer: chunk }, { buffer: y }];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, Math.ceil(hidden / 4 / 64), numTokens);
    });
  }
}
