import { type SplitBuffer, splitBindings } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import type { DeviceLora } from './lora-meta.js';
import { loadWgsl, splitBindingWgsl, splitKey } from './wgsl.js';

/**
 * Launcher of lora_shrink.wgsl: v (packed, Σ rank f32) = per-token x · Aᵀ of its own adapter,
 * A rows gathered from `pool` pages. x: [T, inFeatures] f32.
 */
export class LoraShrinkKernel {
  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    private readonly pageSize: number,
  ) {}

  encode(pass: GPUComputePassEncoder, lora: DeviceLora, x: GPUBuffer, v: GPUBuffer): void {
    const { packed } = lora;
    if (packed.numShrinkItems === 0) return;
    const pipeline = this.ctx.pipelines.pipeline(
      `lora_shrink:${splitKey(this.pool)}`,
      'lora_shrink',
      () => loadWgsl('lora_shrink.wgsl', { POOL: splitBindingWgsl('pool', this.pool, 3, 'read') }),
      packed.form,
    );
    const [gx, gy] = itemGrid(packed.numShrinkItems);
    const imm = Immediates.of([
      packed.numShrinkItems,
      packed.inFeatures / 4,
      this.pageSize / 4,
      packed.pagesPerRowA,
      packed.aPagesAt,
      packed.shrinkItemsAt,
      gx,
    ]);
    const bindings = [{ buffer: x }, { buffer: lora.buffer }, { buffer: v }, ...splitBindings(this.pool)];
    encodeDispatch(this.ctx, pass, pipeline, bindings, imm, gx, gy);
  }
}
