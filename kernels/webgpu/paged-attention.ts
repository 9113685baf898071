import type { KvLayout } from '../../memory/kv-layout.js';
import type { AttentionBatch } from '../attention-batch.js';
import { checkKvLayout, type DeviceAttentionBatch } from './attention-meta.js';
import { createStorageBuffer, pagesPerChunk, type SplitBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Launcher of kv_write.wgsl: K/V [T, kvDim] of the step's tokens into their pages of `layer`. */
export class KvWriteKernel {
  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    private readonly layout: KvLayout,
  ) {
    checkKvLayout(layout);
  }

  /**
   * `chunks`: the pool chunks that can hold the step's pages for this layer (those of
   * attentionChunkPairs cover them); default every chunk.
   */
  encode(
    pass: GPUComputePassEncoder,
    batch: DeviceAttentionBatch,
    layer: number,
    k: GPUBuffer,
    v: GPUBuffer,
    chunks: ReadonlyArray<number> = this.pool.chunks.map((_, c) => c),
  ): void {
    const { layout, pool } = this;
    const pipeline = this.ctx.pipelines.pipeline('kv_write', 'kv_write', () => loadWgsl('kv_write.wgsl'));
    const per = pagesPerChunk(pool);
    for (const c of chunks) {
      const chunk = pool.chunks[c];
      const imm = Immediates.of([
        batch.numTokens,
        batch.numSequences,
        layout.kvDim / 4,
        layout.pageSize / 4,
        layout.tokensPerPage,
        layout.numLayers,
        layer,
        c * per,
        per,
      ]);
      const bindings = [{ buffer: k }, { buffer: v }, { buffer: batch.buffer }, { buffer: chunk }];
      encodeDispatch(
        this.ctx,
        pass,
        pipeline,
        bindings,
        imm,
        Math.ceil(layout.kvDim / 4 / 64),
        batch.numTokens,
      );
    }
  }
}

/** The chunks any of `pairs` names: where this layer's K/V pages of the batch live. */
export function chunksOfPairs(pairs: ReadonlyArray<[number, number]>): number[] {
  return [...new Set(pairs.flat())].sort((a, b) => a - b);
}

/**
 * The (K chunk, V chunk) pairs `layer`'s attention reads in this batch: one pair where the pool
 * fits one binding. Walks page-table blocks, not positions, so it stays cheap at long contexts.
 */
export function attentionChunkPairs(
  pool: SplitBuffer,
  layout: KvLayout,
  batch: AttentionBatch,
  layer: number,
): Array<[number, number]> {
  if (pool.chunks.length === 1) return [[0, 0]];
  const per = pagesPerChunk(pool);
  const seen = new Set<number>();
  const contexts = new Int32Array(batch.numSequences);
  for (let t = 0; t < batch.numTokens; t++) {
    const s = batch.tokenSeq[t];
    contexts[s] = Math.max(contexts[s], batch.tokenPos[t] + 1);
  }
  for (let s = 0; s < batch.numSequences; s++) {
    const blocks = Math.ceil(contexts[s] / layout.tokensPerPage);
    const base = batch.pageTableOffset[s];
    for (let b = 0; b < blocks; b++) {
      const slot = base + (b * layout.numLayers + layer) * 2;
      const kc = Math.floor(batch.pageTables[slot] / per);
      const vc = Math.floor(batch.pageTables[slot + 1] / per);
      seen.add(kc * pool.chunks.length + vc);
    }
  }
  return [...seen]
    .sort((a, b) => a - b)
    .map((key) => [Math.floor(key / pool.chunks.length), key % pool.chunks.length]);
}

/**
 * Launcher of paged_attention.wgsl: out[T, numHeads·headDim] = causal softmax(q·Kᵀ/√d)·V per
 * token, K/V of `layer` read through page tables (the step's own K/V must be written first).
 */
export class PagedAttentionKernel {
  private state: GPUBuffer | null = null;

  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    private readonly layout: KvLayout,
    private readonly numHeads: number,
    private readonly numKvHeads: number,
    private readonly headDim: number,
  ) {
    checkKvLayout(layout);
    if (numHeads % numKvHeads !== 0)
      throw new Error(`paged_attention: ${numHeads} heads, ${numKvHeads} KV heads`);
    if (numKvHeads * headDim !== layout.kvDim)
      throw new Error(`paged_attention: ${numKvHeads}×${headDim} ≠ kvDim ${layout.kvDim}`);
    if (headDim % 4 !== 0) throw new Error(`paged_attention: head dim ${headDim} is not a multiple of 4`);
  }

  /** `pairs`: attentionChunkPairs of the batch for this layer (computed by the caller once per step). */
  encode(
    pass: GPUComputePassEncoder,
    batch: DeviceAttentionBatch,
    layer: number,
    q: GPUBuffer,
    out: GPUBuffer,
    pairs: Array<[number, number]> = [[0, 0]],
  ): void {
    const { layout, headDim, pool } = this;
    const pipeline = this.ctx.pipelines.pipeline(
      `paged_attention:${headDim}`,
      `paged_attention_d${headDim}`,
      () => loadWgsl('paged_attention.wgsl', { HEAD_DIM4: headDim / 4 }),
    );
    const items = batch.numTokens * this.numHeads;
    const [gx, gy] = itemGrid(items);
    if (gy > 1) throw new Error(`paged_attention: ${items} (token, head) items exceed one dispatch row`);
    const state = this.stateBuffer(pairs.length > 1 ? items * (headDim + 4) * 4 : 16);
    const per = pagesPerChunk(pool);
    pairs.forEach(([kc, vc], i) => {
      const imm = new Immediates(14);
      imm.u32.set([
        batch.numTokens,
        batch.numSequences,
        this.numHeads,
        this.numHeads / this.numKvHeads,
        layout.kvDim / 4,
        layout.pageSize / 4,
        layout.tokensPerPage,
        layout.numLayers,
        layer,
        0,
        per,
        kc,
        vc,
        (i === 0 ? 1 : 0) | (i === pairs.length - 1 ? 2 : 0),
      ]);
      imm.f32[9] = 1 / Math.sqrt(headDim);
      const bindings = [
        { buffer: q },
        { buffer: batch.buffer },
        { buffer: out },
        { buffer: state },
        { buffer: pool.chunks[kc] },
        { buffer: pool.chunks[vc] },
      ];
      encodeDispatch(this.ctx, pass, pipeline, bindings, imm, gx);
    });
  }

  destroy(): void {
    if (this.state) {
      this.ctx.pipelines.forgetBuffer(this.state);
      this.state.destroy();
    }
  }

  private stateBuffer(bytes: number): GPUBuffer {
    if (this.state && this.state.size >= bytes) return this.state;
    this.destroy();
    this.state = createStorageBuffer(this.ctx, bytes, 'paged-attention-state');
    return this.state;
  }
}
