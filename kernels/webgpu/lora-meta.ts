import type { LoraBatch } from '../lora-batch.js';
import { uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';

/** Tokens per MBGMM tile: each weight element loaded serves this many rows (registers, no barriers). */
export const LORA_TILE = 4;

/** Words per token in the packed description: rank, aOffset, bOffset, vOffset, scale bits. */
const TOKEN_WORDS = 5;

export type LoraForm = 'mbgmv' | 'mbgmm';

/**
 * A LoraBatch packed into one u32 buffer for lora_shrink.wgsl / lora_expand.wgsl, with the
 * work lists of one form. Built once per step and (layer, module); the kernels read pages
 * through it, so nothing in it depends on a maximum rank.
 */
export interface PackedLora {
  form: LoraForm;
  numTokens: number;
  inFeatures: number;
  outFeatures: number;
  pagesPerRowA: number;
  pagesPerRowB: number;
  vLength: number;
  words: Uint32Array;
  aPagesAt: number;
  bPagesAt: number;
  shrinkItemsAt: number;
  numShrinkItems: number;
  tilesAt: number;
  numTiles: number;
}

/** Runs of consecutive tokens sharing one adapter, cut into tiles of at most LORA_TILE tokens. */
function adapterTiles(batch: LoraBatch): Array<[number, number]> {
  const tiles: Array<[number, number]> = [];
  let t = 0;
  while (t < batch.numTokens) {
    const adapter = batch.tokenAdapter[t];
    if (adapter < 0 || batch.rank[t] === 0) {
      t++;
      continue;
    }
    let end = t + 1;
    while (end < batch.numTokens && end - t < LORA_TILE && batch.tokenAdapter[end] === adapter) end++;
    tiles.push([t, end - t]);
    t = end;
  }
  return tiles;
}

export function packLoraBatch(batch: LoraBatch, form: LoraForm): PackedLora {
  const T = batch.numTokens;
  if (batch.inFeatures % 4 !== 0 || batch.outFeatures % 4 !== 0)
    throw new Error(`lora: features ${batch.inFeatures}→${batch.outFeatures} must be multiples of 4`);
  const tiles = form === 'mbgmm' ? adapterTiles(batch) : [];
  let numShrinkItems = batch.vLength;
  if (form === 'mbgmm') {
    numShrinkItems = 0;
    for (const [t0] of tiles) numShrinkItems += batch.rank[t0];
  }
  const aPagesAt = T * TOKEN_WORDS;
  const bPagesAt = aPagesAt + batch.aPages.length;
  const shrinkItemsAt = bPagesAt + batch.bPages.length;
  const itemWords = form === 'mbgmm' ? 3 : 1;
  const tilesAt = shrinkItemsAt + numShrinkItems * itemWords;
  const words = new Uint32Array(tilesAt + tiles.length * 2);
  const scaleBits = new Uint32Array(batch.scale.buffer, batch.scale.byteOffset, T);
  for (let t = 0; t < T; t++) {
    const o = t * TOKEN_WORDS;
    words[o] = batch.rank[t];
    words[o + 1] = batch.aOffset[t];
    words[o + 2] = batch.bOffset[t];
    words[o + 3] = batch.vOffset[t];
    words[o + 4] = scaleBits[t];
  }
  words.set(batch.aPages, aPagesAt);
  words.set(batch.bPages, bPagesAt);
  let w = shrinkItemsAt;
  if (form === 'mbgmv') {
    for (let t = 0; t < T; t++) for (let r = 0; r < batch.rank[t]; r++) words[w++] = t;
  } else {
    for (const [t0, count] of tiles) {
      for (let r = 0; r < batch.rank[t0]; r++) {
        words[w++] = t0;
        words[w++] = count;
        words[w++] = r;
      }
    }
    tiles.forEach(([t0, count], i) => {
      words[tilesAt + 2 * i] = t0;
      words[tilesAt + 2 * i + 1] = count;
    });
  }
  return {
    form,
    numTokens: T,
    inFeatures: batch.inFeatures,
    outFeatures: batch.outFeatures,
    pagesPerRowA: batch.pagesPerRowA,
    pagesPerRowB: batch.pagesPerRowB,
    vLength: batch.vLength,
    words,
    aPagesAt,
    bPagesAt,
    shrinkItemsAt,
    numShrinkItems,
    tilesAt,
    numTiles: tiles.length,
  };
}

/** A packed batch with its words on the device. */
export interface DeviceLora {
  packed: PackedLora;
  buffer: GPUBuffer;
}

export function uploadLoraBatch(ctx: WebGpuContext, batch: LoraBatch, form: LoraForm): DeviceLora {
  const packed = packLoraBatch(batch, form);
  return { packed, buffer: uploadBuffer(ctx, packed.words, `lora-${form}-batch`) };
}
