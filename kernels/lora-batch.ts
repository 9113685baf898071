import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { TargetModule } from '../model/llama-modules.js';

/**
 * One (layer, module)'s LoRA work for a batch of tokens, flattened for kernels: every token
 * gathers its own adapter's rank-rows from pool pages (S-LoRA's MBGMV/MBGMM). Ranks differ per
 * token, and are this module's in this layer (rank_pattern gives one adapter's modules different
 * ranks and scales); rank 0 means the token has no adapter here. Nothing is padded to a maximum rank.
 *
 *   shrink: v[vOffset[t] + r] = Σ_k x[t, k] · A_r[k]
 *   expand: y[t, o]          += scale[t] · Σ_r v[vOffset[t] + r] · Bᵀ_r[o]
 * where A_r[k] = storage[aPages[aOffset[t] + r·pagesPerRowA + ⌊k/pageSize⌋]·pageSize + k mod pageSize],
 * and Bᵀ_r likewise through bPages/bOffset/pagesPerRowB.
 */
export interface LoraBatch {
  numTokens: number;
  inFeatures: number;
  outFeatures: number;
  pagesPerRowA: number;
  pagesPerRowB: number;
  rank: Int32Array; // [T]
  scale: Float32Array; // [T]
  aOffset: Int32Array; // [T] into aPages
  bOffset: Int32Array; // [T] into bPages
  vOffset: Int32Array; // [T] into the packed shrink output
  /** Length of the packed shrink output: Σ rank[t]. */
  vLength: number;
  /** Page ids of each distinct adapter in the batch, concatenated (an adapter appears once). */
  aPages: Int32Array;
  bPages: Int32Array;
  /** Distinct adapters in first-seen order, and each token's index into it (-1: none). */
  numAdapters: number;
  tokenAdapter: Int32Array; // [T]
}

/** Builds the batch description for `module` of `layer` from each token's adapter (null = base). */
export function buildLoraBatch(
  tokenAdapters: ReadonlyArray<AdapterLayout | null>,
  layer: number,
  module: TargetModule,
  inFeatures: number,
  outFeatures: number,
  pageSize: number,
): LoraBatch {
  const T = tokenAdapters.length;
  const rank = new Int32Array(T);
  const scale = new Float32Array(T);
  const aOffset = new Int32Array(T);
  const bOffset = new Int32Array(T);
  const vOffset = new Int32Array(T);
  const tokenAdapter = new Int32Array(T).fill(-1);
  const seen = new Map<AdapterLayout, number>();
  const aParts: Int32Array[] = [];
  const bParts: Int32Array[] = [];
  const aStart: number[] = [];
  const bStart: number[] = [];
  let aLen = 0;
  let bLen = 0;
  let v = 0;
  for (let t = 0; t < T; t++) {
    vOffset[t] = v;
    const adapter = tokenAdapters[t];
    const pages = adapter?.modules[layer]?.[module];
    if (!adapter || !pages) continue;
    let idx = seen.get(adapter);
    if (idx === undefined) {
      idx = seen.size;
      seen.set(adapter, idx);
      aStart.push(aLen);
      bStart.push(bLen);
      aParts.push(pages.aPages);
      bParts.push(pages.bPages);
      aLen += pages.aPages.length;
      bLen += pages.bPages.length;
    }
    tokenAdapter[t] = idx;
    rank[t] = pages.rank;
    scale[t] = pages.scale;
    aOffset[t] = aStart[idx];
    bOffset[t] = bStart[idx];
    v += pages.rank;
  }
  const aPages = new Int32Array(aLen);
  const bPages = new Int32Array(bLen);
  for (let i = 0; i < aParts.length; i++) aPages.set(aParts[i], aStart[i]);
  for (let i = 0; i < bParts.length; i++) bPages.set(bParts[i], bStart[i]);
  return {
    numTokens: T,
    inFeatures,
    outFeatures,
    pagesPerRowA: Math.ceil(inFeatures / pageSize),
    pagesPerRowB: Math.ceil(outFeatures / pageSize),
    rank,
    scale,
    aOffset,
    bOffset,
    vOffset,
    vLength: v,
    aPages,
    bPages,
    numAdapters: seen.size,
    tokenAdapter,
  };
}
