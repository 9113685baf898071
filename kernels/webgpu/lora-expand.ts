import { chunksHolding, pagesPerChunk, type SplitBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import type { DeviceLora } from './lora-meta.js';
import { loadWgsl } from './wgsl.js';

/**
 * Launcher of lora_expand.wgsl: y [T, outFeatures] += scale · v · Bᵀ per token, Bᵀ rows gathered
 * from `pool` pages; tokens without an adapter are left untouched. One dispatch per pool chunk
 * holding any of the batch's B pages.
 */
export class LoraExpandKernel {
  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
  ) {}

  encode(pass: GPUComputePassEncoder, lora: DeviceLora, v: GPUBuffer, y: GPUBuffer): void {
    const { packed } = lora;
    const rows = packed.form === 'mbgmm' ? packed.numTiles : packed.numTokens;
    if (rows === 0 || packed.vLength === 0) return;
    const pipeline = this.ctx.pipelines.pipeline(
      'lora_expand',
      'lora_expand',
      () => loadWgsl('lora_expand.wgsl'),
      packed.form,
    );
    const out4 = packed.outFeatures / 4;
    const per = pagesPerChunk(this.pool);
    const pageSize4 = this.pool.unitElements / 4;
    // mbgmv lanes own two vec4s 64 apart (halving page-table and v loads per output), mbgmm one.
    const blocksPerPage = Math.ceil(pageSize4 / (packed.form === 'mbgmv' ? 128 : 64));
    const chunks = chunksHolding(this.pool, packed.words.subarray(packed.bPagesAt, packed.shrinkItemsAt));
    for (const c of chunks) {
      const imm = Immediates.of([
        rows,
        out4,
        pageSize4,
        packed.pagesPerRowB,
        packed.bPagesAt,
        packed.tilesAt,
        c * per,
        per,
        blocksPerPage,
      ]);
      const bindings = [
        { buffer: v },
        { buffer: lora.buffer },
        { buffer: y },
        { buffer: this.pool.chunks[c] },
      ];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, packed.pagesPerRowB * blocksPerPage, rows);
    }
  }
}
