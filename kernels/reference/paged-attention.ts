import { type KvLayout, kvElementOffset } from '../../memory/kv-layout.js';
import type { AttentionBatch } from '../attention-batch.js';
import { sequencePageTable } from './kv-write.js';

/**
 * Causal attention through page tables. Token t (query q[t]: numHeads·headDim) attends to
 * positions 0…tokenPos[t] of its own sequence, whose K/V are read from `layer`'s pages (the
 * step's own K/V must already be written). GQA: query head h reads KV head
 * ⌊h / (numHeads/numKvHeads)⌋. Scores are scaled by 1/sqrt(headDim) and soft-maxed after
 * subtracting their maximum. Dot products and the weighted sum of V run in f64.
 * Returns [T, numHeads·headDim].
 */
export function pagedAttention(
  q: Float32Array,
  batch: AttentionBatch,
  storage: Float32Array,
  layout: KvLayout,
  layer: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
): Float32Array {
  if (numHeads % numKvHeads !== 0)
    throw new Error(`pagedAttention: ${numHeads} heads, ${numKvHeads} KV heads`);
  if (numKvHeads * headDim !== layout.kvDim)
    throw new Error(`pagedAttention: ${numKvHeads}×${headDim} ≠ kvDim ${layout.kvDim}`);
  const qWidth = numHeads * headDim;
  const group = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(batch.numTokens * qWidth);
  const scores = new Float64Array(batch.maxContext);
  const kOffsets = new Float64Array(batch.maxContext);
  const vOffsets = new Float64Array(batch.maxContext);
  const acc = new Float64Array(headDim);
  for (let t = 0; t < batch.numTokens; t++) {
    const table = sequencePageTable(batch, batch.tokenSeq[t]);
    const context = batch.tokenPos[t] + 1;
    if (Math.ceil(context / layout.tokensPerPage) * layout.pagesPerBlock > table.length)
      throw new Error(`pagedAttention: position ${context - 1} is beyond its ${table.length}-page table`);
    for (let p = 0; p < context; p++) {
      kOffsets[p] = kvElementOffset(layout, table, layer, 0, p);
      vOffsets[p] = kvElementOffset(layout, table, layer, 1, p);
    }
    for (let h = 0; h < numHeads; h++) {
      const qBase = t * qWidth + h * headDim;
      const headOffset = Math.floor(h / group) * headDim;
      let max = Number.NEGATIVE_INFINITY;
      for (let p = 0; p < context; p++) {
        const kBase = kOffsets[p] + headOffset;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qBase + d] * storage[kBase + d];
        scores[p] = dot * scale;
        if (scores[p] > max) max = scores[p];
      }
      let denominator = 0;
      for (let p = 0; p < context; p++) {
        scores[p] = Math.exp(scores[p] - max);
        denominator += scores[p];
      }
      acc.fill(0);
      for (let p = 0; p < context; p++) {
        const weight = scores[p] / denominator;
        const vBase = vOffsets[p] + headOffset;
        for (let d = 0; d < headDim; d++) acc[d] += weight * storage[vBase + d];
      }
      for (let d = 0; d < headDim; d++) out[qBase + d] = acc[d];
    }
  }
  return out;
}
