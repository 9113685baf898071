import { chunksHolding, pagesPerChunk, type SplitBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import type { DeviceLora } from './lora-meta.js';
import { loadWgsl } from './wgsl.js';

/**
 * Launcher of lora_shrink.wgsl: v (packed, Σ rank f32) = per-token x · Aᵀ of its own adapter,
 * A rows gathered from `pool` pages. x: [T, inFeatures] f32. One dispatch per pool chunk that
 * holds any of the batch's A pages (one in all where the pool fits one binding).
 */
export class LoraShrinkKernel {
  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
  ) {}

  encode(pass: GPUComputePassEncoder, lora: DeviceLora, x: GPUBuffer, v: GPUBuffer): void {
    const { packed } = lora;
    if (packed.numShrinkItems === 0) return;
    const pipeline = this.ctx.pipelines.pipeline(
      'lora_shrink',
      'lora_shrink',
      () => loadWgsl('lora_shrink.wgsl'),
      packed.form,
    );
    const [gx, gy] = itemGrid(packed.numShrinkItems);
    const per = pagesPerChunk(this.pool);
    const chunks = chunksHolding(this.pool, packed.words.subarray(packed.aPagesAt, packed.bPagesAt));
    chunks.forEach((c, i) => {
      const imm = Immediates.of([
        packed.numShrinkItems,
        packed.inFeatures / 4,
        this.pool.unitElements / 4,
        packed.pagesPerRowA,
        packed.aPagesAt,
        packed.shrinkItemsAt,
        gx,
        c * per,
        per,
        i === 0 ? 0 : 1,
      ]);
      const bindings = [
        { buffer: x },
        { buffer: lora.buffer },
        { buffer: v },
        { buffer: this.pool.chunks[c] },
      ];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, gx, gy);
    });
  }
}
