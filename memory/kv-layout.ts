import type { LlamaConfig } from '../model/llama-config.js';

/**
 * How a sequence's KV cache maps onto pool pages.
 *
 * A page holds `pageSize` (= hidden size) elements. K (or V) of one token in one layer is
 * kvDim = numKvHeads·headDim elements, so one page holds `tokensPerPage` tokens of one layer's
 * K (or V). A *block* is `tokensPerPage` consecutive token positions across every layer, K and
 * V: 2·numLayers pages. A sequence's page table lists its blocks' pages:
 *   pageTable[(block · numLayers + layer) · 2 + kind]   kind 0 = K, 1 = V
 * and token `pos` of that layer/kind sits at element offset (pos % tokensPerPage) · kvDim.
 */
export interface KvLayout {
  numLayers: number;
  kvDim: number;
  pageSize: number;
  tokensPerPage: number;
  pagesPerBlock: number;
}

export function kvLayout(config: LlamaConfig): KvLayout {
  const kvDim = config.numKvHeads * config.headDim;
  const pageSize = config.hiddenSize;
  if (kvDim > pageSize) throw new Error(`kv dim ${kvDim} exceeds the page size ${pageSize}`);
  return {
    numLayers: config.numLayers,
    kvDim,
    pageSize,
    tokensPerPage: Math.floor(pageSize / kvDim),
    pagesPerBlock: 2 * config.numLayers,
  };
}

export function blocksFor(layout: KvLayout, numTokens: number): number {
  return Math.ceil(numTokens / layout.tokensPerPage);
}

/** Element offset in pool storage of token `pos`, layer `layer`, K (0) or V (1). */
export function kvElementOffset(
  layout: KvLayout,
  pageTable: ArrayLike<number>,
  layer: number,
  kind: 0 | 1,
  pos: number,
): number {
  const block = Math.floor(pos / layout.tokensPerPage);
  const page = pageTable[(block * layout.numLayers + layer) * 2 + kind];
  return page * layout.pageSize + (pos % layout.tokensPerPage) * layout.kvDim;
}
