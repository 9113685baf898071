import type { LoraBatch } from '../lora-batch.js';

/**
 * S-LoRA's shrink: every token projects its own x[t] (inFeatures) onto its adapter's rank-rows
 * of A, gathered from pool pages. Returns the packed v [batch.vLength]: token t's rank[t] values
 * start at vOffset[t]; tokens of rank 0 contribute nothing. Sums run in f64.
 */
export function loraShrink(
  x: Float32Array,
  batch: LoraBatch,
  storage: Float32Array,
  pageSize: number,
): Float32Array {
  const { inFeatures, pagesPerRowA } = batch;
  const v = new Float32Array(batch.vLength);
  for (let t = 0; t < batch.numTokens; t++) {
    const xBase = t * inFeatures;
    for (let r = 0; r < batch.rank[t]; r++) {
      const firstPage = batch.aOffset[t] + r * pagesPerRowA;
      let sum = 0;
      for (let k = 0; k < inFeatures; k++) {
        const page = batch.aPages[firstPage + Math.floor(k / pageSize)];
        sum += x[xBase + k] * storage[page * pageSize + (k % pageSize)];
      }
      v[batch.vOffset[t] + r] = sum;
    }
  }
  return v;
}

/**
 * S-LoRA's expand: y[t, o] += scale[t] · Σ_r v[vOffset[t] + r] · Bᵀ_r[o], every token reading its
 * own adapter's Bᵀ rank-rows from pool pages. y is [T, outFeatures]; the sum runs in f64 and is
 * added to y once.
 */
export function loraExpand(
  v: Float32Array,
  batch: LoraBatch,
  storage: Float32Array,
  pageSize: number,
  y: Float32Array,
): void {
  const { outFeatures, pagesPerRowB } = batch;
  for (let t = 0; t < batch.numTokens; t++) {
    const rank = batch.rank[t];
    if (rank === 0) continue;
    const yBase = t * outFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const pageInRow = Math.floor(o / pageSize);
      const within = o % pageSize;
      let sum = 0;
      for (let r = 0; r < rank; r++) {
        const page = batch.bPages[batch.bOffset[t] + r * pagesPerRowB + pageInRow];
        sum += v[batch.vOffset[t] + r] * storage[page * pageSize + within];
      }
      y[yBase + o] += batch.scale[t] * sum;
    }
  }
}
