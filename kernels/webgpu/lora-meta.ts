import { NO_SLOT, type SlotInfo } from './adapter-slots.js';

/** Tokens per MBGMM tile: each weight element loaded serves this many rows (registers, no barriers). */
export const LORA_TILE = 4;

/** Words per token in the packed step: slot, vOffset. */
const TOKEN_WORDS = 2;

export type LoraForm = 'mbgmv' | 'mbgmm';

/**
 * A step's LoRA work, the same for every layer and module: each token's adapter slot and where
 * its shrink outputs start, plus the work lists of one form, packed in one u32 buffer for
 * lora_shrink.wgsl / lora_expand.wgsl. The kernels find ranks, scales and pages in the
 * adapter-slot table (adapter-slots.ts), so this is built and uploaded once per step, not per
 * layer × module.
 *
 * A token gets its adapter's largest module rank of shrink outputs (v); a module of lower rank
 * (PEFT's rank_pattern), or one the adapter skips, leaves the rest unused: its work items return
 * at once. Nothing is padded to the batch's maximum rank.
 */
export interface StepLora {
  form: LoraForm;
  numTokens: number;
  /** Length of the shrink output v: Σ over tokens of their adapter's largest rank. */
  vLength: number;
  words: Uint32Array;
  itemsAt: number;
  numShrinkItems: number;
  tilesAt: number;
  numTiles: number;
  /** Per (layer · 7 + module) entry: 1 where some token's adapter has it, so the step dispatches it. */
  touched: Uint8Array;
  /** Pool chunks holding any page of the step's adapters (ascending). */
  chunks: number[];
}

/** Runs of consecutive tokens sharing one slot, cut into tiles of at most LORA_TILE tokens. */
function slotTiles(tokenSlots: ArrayLike<number>): Array<[number, number]> {
  const tiles: Array<[number, number]> = [];
  let t = 0;
  while (t < tokenSlots.length) {
    const slot = tokenSlots[t];
    if (slot === NO_SLOT) {
      t++;
      continue;
    }
    let end = t + 1;
    while (end < tokenSlots.length && end - t < LORA_TILE && tokenSlots[end] === slot) end++;
    tiles.push([t, end - t]);
    t = end;
  }
  return tiles;
}

/**
 * Packs a step from each token's slot (NO_SLOT: base model). `slotInfo` gives a slot's host
 * facts; `entriesPerSlot` sizes `touched`.
 */
export function packStepLora(
  tokenSlots: ArrayLike<number>,
  slotInfo: (slot: number) => SlotInfo,
  entriesPerSlot: number,
  form: LoraForm,
): StepLora {
  const T = tokenSlots.length;
  const seen = new Map<number, SlotInfo>();
  const vOffset = new Uint32Array(T);
  let v = 0;
  for (let t = 0; t < T; t++) {
    vOffset[t] = v;
    const slot = tokenSlots[t];
    if (slot === NO_SLOT) continue;
    let info = seen.get(slot);
    if (!info) {
      info = slotInfo(slot);
      seen.set(slot, info);
    }
    v += info.maxRank;
  }
  const touched = new Uint8Array(entriesPerSlot);
  const chunkSet = new Set<number>();
  for (const info of seen.values()) {
    for (const e of info.entries) touched[e] = 1;
    for (const c of info.chunks) chunkSet.add(c);
  }
  const rankOf = (t: number) => seen.get(tokenSlots[t])?.maxRank ?? 0;
  const tiles = form === 'mbgmm' ? slotTiles(tokenSlots) : [];
  let numShrinkItems = v;
  if (form === 'mbgmm') {
    numShrinkItems = 0;
    for (const [t0] of tiles) numShrinkItems += rankOf(t0);
  }
  const itemsAt = T * TOKEN_WORDS;
  const itemWords = form === 'mbgmm' ? 3 : 1;
  const tilesAt = itemsAt + numShrinkItems * itemWords;
  const words = new Uint32Array(tilesAt + tiles.length * 2);
  for (let t = 0; t < T; t++) {
    words[t * TOKEN_WORDS] = tokenSlots[t];
    words[t * TOKEN_WORDS + 1] = vOffset[t];
  }
  let w = itemsAt;
  if (form === 'mbgmv') {
    for (let t = 0; t < T; t++) for (let r = rankOf(t); r > 0; r--) words[w++] = t;
  } else {
    tiles.forEach(([t0, count], i) => {
      for (let r = 0; r < rankOf(t0); r++) {
        words[w++] = t0;
        words[w++] = count;
        words[w++] = r;
      }
      words[tilesAt + 2 * i] = t0;
      words[tilesAt + 2 * i + 1] = count;
    });
  }
  return {
    form,
    numTokens: T,
    vLength: v,
    words,
    itemsAt,
    numShrinkItems,
    tilesAt,
    numTiles: tiles.length,
    touched,
    chunks: [...chunkSet].sort((a, b) => a - b),
  };
}

/** A packed step with its words on the device. */
export interface DeviceStepLora {
  packed: StepLora;
  buffer: GPUBuffer;
}

/** One (layer, module) a LoRA dispatch serves: where its entry sits in a slot, and its shape. */
export interface LoraModuleCall {
  /** The (layer, module)'s entry in a slot (slotEntry). */
  entry: number;
  inFeatures: number;
  outFeatures: number;
}
