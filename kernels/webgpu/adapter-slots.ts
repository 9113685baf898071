import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { chunksHolding, createStorageBuffer, type SplitBuffer, writeBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { WordRanges } from './word-ranges.js';

/** Words of one (layer, module) entry of a slot: rank, scale bits, A pages ref, B pages ref. */
export const SLOT_ENTRY_WORDS = 4;
const ENTRY_WORDS = SLOT_ENTRY_WORDS;
/** Set in a pages ref: the block's pages are consecutive from the ref's low bits, no page list. */
const CONTIGUOUS = 0x80000000;
/** A token's slot when it has no adapter. */
export const NO_SLOT = 0xffffffff;

/** What a step needs to know of a slot on the host (the rest stays on the device). */
export interface SlotInfo {
  /** The adapter's largest module rank: each of its tokens gets this many shrink outputs. */
  maxRank: number;
  /** Entries (layer · 7 + module) the adapter holds pages for. */
  entries: Uint16Array;
  /** Pool chunks holding any of its pages. */
  chunks: readonly number[];
}

interface Slot extends SlotInfo {
  index: number;
  listStart: number;
  listLength: number;
}

/**
 * The device-resident adapter-slot table (S-LoRA's adapter page table, uploaded once): for every
 * resident adapter a slot of `numLayers × 7` entries {rank, scale, A pages, B pages}, each pages
 * ref either a first page (the block's pages are consecutive, the pool's contiguous placement) or
 * an offset into a shared page-list buffer. Written when an adapter is placed and cleared when it
 * is released, nothing in between: a step sends each token's slot id, and lora_shrink/lora_expand
 * find pages through here. Writes go through the queue, so a step already submitted never sees
 * a half-written slot; the next one sees the whole of it.
 */
export class AdapterSlotTable {
  readonly entriesPerSlot: number;
  /** The header buffer and the page-list buffer the kernels bind (replaced when they grow). */
  headers: GPUBuffer;
  pageLists: GPUBuffer;
  /** Words written to the device since creation: steps write none. */
  numWordsWritten = 0;
  private headerMirror: Uint32Array;
  private listMirror: Uint32Array;
  private readonly lists: WordRanges;
  private readonly slots = new Map<AdapterLayout, Slot>();
  private readonly byIndex: Array<Slot | null> = [];
  private readonly freeIndices: number[] = [];

  constructor(
    private readonly ctx: WebGpuContext,
    private readonly pool: SplitBuffer,
    readonly numLayers: number,
    initialSlots = 8,
  ) {
    this.entriesPerSlot = numLayers * TARGET_MODULES.length;
    this.headerMirror = new Uint32Array(initialSlots * this.slotWords);
    this.headers = createStorageBuffer(ctx, this.headerMirror.byteLength, 'adapter-slots');
    this.lists = new WordRanges(1024);
    this.listMirror = new Uint32Array(this.lists.capacity);
    this.pageLists = createStorageBuffer(ctx, this.listMirror.byteLength, 'adapter-slot-pages');
  }

  /** Words of one slot in the header buffer. */
  get slotWords(): number {
    return this.entriesPerSlot * ENTRY_WORDS;
  }

  get numSlots(): number {
    return this.slots.size;
  }

  slotOf(layout: AdapterLayout): number {
    const slot = this.slots.get(layout);
    if (!slot)
      throw new Error(`adapter ${layout.name}: no slot on this engine (never written to it, or released)`);
    return slot.index;
  }

  info(index: number): SlotInfo {
    const slot = this.byIndex[index];
    if (!slot) throw new Error(`adapter slot ${index} is free`);
    return slot;
  }

  /**
   * Gives `layout` a slot and writes its page table (once per placement); a layout placed again
   * (its pages rewritten with the same placement) keeps its slot, rewritten.
   */
  place(layout: AdapterLayout): number {
    if (layout.modules.length > this.numLayers)
      throw new Error(`adapter ${layout.name}: ${layout.modules.length} layers, the model ${this.numLayers}`);
    for (let i = 0; i < layout.allPages.length; i++)
      if (layout.allPages[i] < 0 || layout.allPages[i] >= CONTIGUOUS)
        throw new Error(`adapter ${layout.name}: page ${layout.allPages[i]} out of range`);
    this.release(layout);
    const index = this.freeIndices.pop() ?? this.byIndex.length;
    if (index === this.byIndex.length) this.byIndex.push(null);
    this.ensureHeaderRoom(index + 1);

    const blocks: Array<{ word: number; pages: Int32Array }> = [];
    const header = new Uint32Array(this.slotWords);
    const headerF32 = new Float32Array(header.buffer);
    const entries: number[] = [];
    let maxRank = 0;
    let listLength = 0;
    layout.modules.forEach((placed, layer) => {
      for (const m of TARGET_MODULES) {
        const pages = placed[m];
        if (!pages || pages.rank === 0) continue;
        const e = slotEntry(layer, m);
        const at = e * ENTRY_WORDS;
        entries.push(e);
        maxRank = Math.max(maxRank, pages.rank);
        header[at] = pages.rank;
        headerF32[at + 1] = pages.scale;
        for (const [word, block] of [
          [at + 2, pages.aPages],
          [at + 3, pages.bPages],
        ] as const) {
          if (isConsecutive(block)) header[word] = (CONTIGUOUS | block[0]) >>> 0;
          else {
            blocks.push({ word, pages: block });
            listLength += block.length;
          }
        }
      }
    });
    const listStart = this.allocateList(listLength);
    let next = listStart;
    for (const { word, pages } of blocks) {
      header[word] = next;
      this.listMirror.set(pages, next);
      next += pages.length;
    }
    const slot: Slot = {
      index,
      listStart,
      listLength,
      maxRank,
      entries: Uint16Array.from(entries),
      chunks: chunksHolding(this.pool, layout.allPages),
    };
    this.slots.set(layout, slot);
    this.byIndex[index] = slot;
    this.headerMirror.set(header, index * this.slotWords);
    this.writeHeader(index);
    if (listLength > 0) this.writeWords(this.pageLists, this.listMirror, listStart, listLength);
    return index;
  }

  /** Frees `layout`'s slot (its pages are being freed: evicted, unloaded, replaced); a no-op if it has none. */
  release(layout: AdapterLayout): void {
    const slot = this.slots.get(layout);
    if (!slot) return;
    this.slots.delete(layout);
    this.byIndex[slot.index] = null;
    this.freeIndices.push(slot.index);
    this.lists.release(slot.listStart, slot.listLength);
    // Cleared so a stale slot id reads rank 0 (no LoRA), never another adapter's pages.
    this.headerMirror.fill(0, slot.index * this.slotWords, (slot.index + 1) * this.slotWords);
    this.writeHeader(slot.index);
  }

  destroy(): void {
    for (const b of [this.headers, this.pageLists]) {
      this.ctx.pipelines.forgetBuffer(b);
      b.destroy();
    }
  }

  private writeHeader(index: number): void {
    this.writeWords(this.headers, this.headerMirror, index * this.slotWords, this.slotWords);
  }

  private writeWords(buffer: GPUBuffer, mirror: Uint32Array, start: number, length: number): void {
    writeBuffer(this.ctx, buffer, start * 4, mirror.subarray(start, start + length));
    this.numWordsWritten += length;
  }

  private ensureHeaderRoom(numSlots: number): void {
    const words = numSlots * this.slotWords;
    if (words <= this.headerMirror.length) return;
    const grown = new Uint32Array(Math.max(words, this.headerMirror.length * 2));
    grown.set(this.headerMirror);
    this.headerMirror = grown;
    this.headers = this.replace(this.headers, grown, 'adapter-slots');
  }

  private allocateList(length: number): number {
    const start = this.lists.allocate(length);
    if (this.lists.capacity > this.listMirror.length) {
      const grown = new Uint32Array(this.lists.capacity);
      grown.set(this.listMirror);
      this.listMirror = grown;
      this.pageLists = this.replace(this.pageLists, grown, 'adapter-slot-pages');
    }
    return start;
  }

  /**
   * A bigger buffer holding `mirror`. The old one is destroyed at once: Dawn frees it after the
   * submitted steps that bind it finish, and no step is being recorded while adapters are written.
   */
  private replace(old: GPUBuffer, mirror: Uint32Array, label: string): GPUBuffer {
    const buffer = createStorageBuffer(this.ctx, mirror.byteLength, label);
    this.writeWords(buffer, mirror, 0, mirror.length);
    this.ctx.pipelines.forgetBuffer(old);
    old.destroy();
    return buffer;
  }
}

/** Index of (layer, module) among a slot's entries (kernels read its words at SLOT_ENTRY_WORDS × this). */
export function slotEntry(layer: number, module: TargetModule): number {
  return layer * TARGET_MODULES.length + TARGET_MODULES.indexOf(module);
}

function isConsecutive(pages: Int32Array): boolean {
  for (let i = 1; i < pages.length; i++) if (pages[i] !== pages[0] + i) return false;
  return pages.length > 0;
}
