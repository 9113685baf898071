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
import { encodeDispatch, Immediates } from './dispatch.js';
import type { DeviceStepLora, LoraModuleCall } from './lora-meta.js';
import { loadWgsl } from './wgsl.js';

/**
 * Launcher of lora_expand.wgsl: y [T, outFeatures] += scale · v · Bᵀ per token for one (layer,
 * module), rank, scale and Bᵀ pages from the adapter-slot table; tokens without an adapter (or
 * whose adapter skips the module) are left untouched. One dispatch per window of pool chunks
 * (poolChunksPerDispatch) holding any page of the step's adapters.
 */
export class LoraExpandKernel {
  /** Most pool chunks one dispatch binds (chunkWindows picks each step's width up to it). */
  readonly chunksPerDispatch: number;

  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    options: { chunksPerDispatch?: number } = {},
  ) {
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
    v: GPUBuffer,
    y: GPUBuffer,
  ): void {
    const { packed } = step;
    const rows = packed.form === 'mbgmm' ? packed.numTiles : packed.numTokens;
    if (rows === 0 || packed.vLength === 0) return;
    const { width, firsts } = chunkWindows(packed.chunks, this.chunksPerDispatch);
    const pool = poolWindowWgsl(width, OWN_BINDINGS);
    const pipeline = this.ctx.pipelines.pipeline(
      `lora_expand/${width}`,
      'lora_expand',
      () =>
        loadWgsl('lora_expand.wgsl', {
          POOL_CHUNKS: width,
          POOL_BINDINGS: pool.bindings,
          POOL_LOAD: pool.load,
        }),
      packed.form,
    );
    const out4 = module.outFeatures / 4;
    const per = pagesPerChunk(this.pool);
    const pageSize4 = this.pool.unitElements / 4;
    const pagesPerRowB = Math.ceil(module.outFeatures / this.pool.unitElements);
    // mbgmv lanes own two vec4s 64 apart (halving page-table and v loads per output), mbgmm one.
    const blocksPerPage = Math.ceil(pageSize4 / (packed.form === 'mbgmv' ? 128 : 64));
    for (const first of firsts) {
      const imm = Immediates.of([
        rows,
        out4,
        pageSize4,
        pagesPerRowB,
        packed.tilesAt,
        first,
        per,
        blocksPerPage,
        module.entry * SLOT_ENTRY_WORDS,
        slots.slotWords,
      ]);
      const bindings = [
        { buffer: v },
        { buffer: step.buffer },
        { buffer: y },
        { buffer: slots.headers },
        { buffer: slots.pageLists },
        ...windowBindings(this.pool, first, width),
      ];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, pagesPerRowB * blocksPerPage, rows);
    }
  }
}

/** Storage bindings besides the pool chunks: v, the step's words, y, slot headers, slot pages. */
const OWN_BINDINGS = 5;
