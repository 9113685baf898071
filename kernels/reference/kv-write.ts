import { type KvLayout, kvElementOffset } from '../../memory/kv-layout.js';
import type { AttentionBatch } from '../attention-batch.js';

/**
 * Stores K and V of every token of the step (k, v: [T, kvDim], K already rotated) into its
 * sequence's pages for `layer`, at the token's own position.
 */
export function writeKv(
  storage: Float32Array,
  layout: KvLayout,
  batch: AttentionBatch,
  layer: number,
  k: Float32Array,
  v: Float32Array,
): void {
  const { kvDim } = layout;
  for (let t = 0; t < batch.numTokens; t++) {
    const table = sequencePageTable(batch, batch.tokenSeq[t]);
    const pos = batch.tokenPos[t];
    if ((Math.floor(pos / layout.tokensPerPage) + 1) * layout.pagesPerBlock > table.length)
      throw new Error(`writeKv: position ${pos} is beyond its sequence's ${table.length}-page table`);
    storage.set(k.subarray(t * kvDim, (t + 1) * kvDim), kvElementOffset(layout, table, layer, 0, pos));
    storage.set(v.subarray(t * kvDim, (t + 1) * kvDim), kvElementOffset(layout, table, layer, 1, pos));
  }
}

/** Sequence `seq`'s page table as a view into the batch's concatenated tables. */
export function sequencePageTable(batch: AttentionBatch, seq: number): Int32Array {
  const start = batch.pageTableOffset[seq];
  return batch.pageTables.subarray(start, start + batch.pageTableLength[seq]);
}
