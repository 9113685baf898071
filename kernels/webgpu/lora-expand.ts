import { type SplitBuffer, splitBindings } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import type { DeviceLora } from './lora-meta.js';
import { loadWgsl, splitBindingWgsl, splitKey } from './wgsl.js';

/**
 * Launcher of lora_expand.wgsl: y [T, outFeatures] += scale · v · Bᵀ per token, Bᵀ rows gathered
 * from `pool` pages; tokens without an adapter are left untouched.
 */
export class LoraExpandKernel {
  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    private readonly pageSize: number,
  ) {}

  encode(pass: GPUComputePassEncoder, lora: DeviceLora, v: GPUBuffer, y: GPUBuffer): void {
    const { packed } = lora;
    const rows = packed.form === 'mbgmm' ? packed.numTiles : packed.numTokens;
    if (rows === 0 || packed.vLength === 0) return;
    const pipeline = this.ctx.pipelines.pipeline(
      `lora_expand:${splitKey(this.pool)}`,
      'lora_expand',
      () => loadWgsl('lora_expand.wgsl', { POOL: splitBindingWgsl('pool', this.pool, 3, 'read') }),
      packed.form,
    );
    const out4 = packed.outFeatures / 4;
    const imm = Immediates.of([
      rows,
      out4,
      this.pageSize / 4,
      packed.pagesPerRowB,
      packed.bPagesAt,
      packed.tilesAt,
    ]);
    const bindings = [{ buffer: v }, { buffer: lora.buffer }, { buffer: y }, ...splitBindings(this.pool)];
    encodeDispatch(this.ctx, pass, pipeline, bindings, imm, Math.ceil(out4 / 64), rows);
  }
}
