import { type AdapterSlotTable, SLOT_ENTRY_WORDS } from './adapter-slots.js';
import {
  chunkWindows,
  maxPoolChunksPerDispatch,
  pagesPerChunk,
  poolWindowWgsl,
  type SplitBuffer,
  windowBindings,
} from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import type { DeviceStepLora, LoraModuleCall } from './lora-meta.js';
import { loadWgsl } from './wgsl.js';

/**
 * Launcher of lora_shrink.wgsl: v (Σ adapter rank f32) = per-token x · Aᵀ of its own adapter for
 * one (layer, module), A rows gathered from `pool` pages through the adapter-slot table.
 * x: [T, inFeatures] f32. One dispatch per window of pool chunks (poolChunksPerDispatch) holding
 * any page of the step's adapters: one in all where the device binds every chunk at once. Decode
 * (MBGMV) on a hardware adapter runs the split-k entry (a workgroup per v element); a software
 * adapter keeps the barrier-free one.
 */
export class LoraShrinkKernel {
  private readonly splitDecode: boolean;
  /** Most pool chunks one dispatch binds (chunkWindows picks each step's width up to it). */
  readonly chunksPerDispatch: number;

  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    options: { splitDecode?: boolean; chunksPerDispatch?: number } = {},
  ) {
    this.splitDecode = options.splitDecode ?? !ctx.adapter.isFallbackAdapter;
    this.chunksPerDispatch = Math.min(
      pool.chunks.length,
      options.chunksPerDispatch ?? maxPoolChunksPerDispatch(ctx, pool, OWN_BINDINGS),
    );
  }

  encode(
    pass: GPUComputePassEncoder,
    step: DeviceStepLora,
    slots: AdapterSlotTable,
    module: LoraModuleCall,
    x: GPUBuffer,
    v: GPUBuffer,
  ): void {
    const { packed } = step;
    if (packed.numShrinkItems === 0) return;
    const split = packed.form === 'mbgmv' && this.splitDecode;
    const { width, firsts } = chunkWindows(packed.chunks, this.chunksPerDispatch);
    const pool = poolWindowWgsl(width, OWN_BINDINGS);
    const pipeline = this.ctx.pipelines.pipeline(
      `lora_shrink/${width}`,
      'lora_shrink',
      () =>
        loadWgsl('lora_shrink.wgsl', {
          POOL_CHUNKS: width,
          POOL_BINDINGS: pool.bindings,
          POOL_LOAD: pool.load,
        }),
      split ? 'mbgmv_split' : packed.form,
    );
    // The split entry runs one workgroup of 64 per item.
    const [gx, gy] = itemGrid(packed.numShrinkItems * (split ? 64 : 1));
    const per = pagesPerChunk(this.pool);
    firsts.forEach((first, i) => {
      const imm = Immediates.of([
        packed.numShrinkItems,
        module.inFeatures / 4,
        this.pool.unitElements / 4,
        Math.ceil(module.inFeatures / this.pool.unitElements),
        packed.itemsAt,
        gx,
        first,
        per,
        i === 0 ? 0 : 1,
        module.entry * SLOT_ENTRY_WORDS,
        slots.slotWords,
      ]);
      const bindings = [
        { buffer: x },
        { buffer: step.buffer },
        { buffer: v },
        { buffer: slots.headers },
        { buffer: slots.pageLists },
        ...windowBindings(this.pool, first, width),
      ];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, gx, gy);
    });
  }
}

/** Storage bindings besides the pool chunks: x, the step's words, v, slot headers, slot pages. */
const OWN_BINDINGS = 5;
