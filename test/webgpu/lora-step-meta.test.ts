import { describe, expect, it } from 'vitest';
import { NO_SLOT, type SlotInfo } from '../../kernels/webgpu/adapter-slots.js';
import { chunkWindows } from '../../kernels/webgpu/buffers.js';
import { packStepLora } from '../../kernels/webgpu/lora-meta.js';
import { WordRanges } from '../../kernels/webgpu/word-ranges.js';
import { randomInt, seededRandom } from './gpu-test-kit.js';

/** Host-side parts of the adapter-slot path: no device needed. */
describe('packStepLora: one packed buffer per step from slot ids', () => {
  const info: Record<number, SlotInfo> = {
    0: { maxRank: 4, entries: Uint16Array.from([0, 3]), chunks: [0] },
    5: { maxRank: 2, entries: Uint16Array.from([3, 13]), chunks: [0, 2] },
  };
  const slotInfo = (slot: number) => info[slot];

  it('decode: v offsets by each adapter’s largest rank, one item per v element, touched entries and chunks', () => {
    const step = packStepLora([0, NO_SLOT, 5, 0], slotInfo, 14, 'mbgmv');
    expect(step.vLength).toBe(10);
    expect(Array.from(step.words.subarray(0, 8))).toEqual([0, 0, NO_SLOT, 4, 5, 4, 0, 6]);
    expect(Array.from(step.words.subarray(step.itemsAt))).toEqual([0, 0, 0, 0, 2, 2, 3, 3, 3, 3]);
    expect(step.numShrinkItems).toBe(10);
    expect(
      Array.from(step.touched.entries())
        .filter(([, t]) => t)
        .map(([e]) => e),
    ).toEqual([0, 3, 13]);
    expect(step.chunks).toEqual([0, 2]);
  });

  it('prefill: tiles of ≤ 4 tokens sharing a slot, items per tile and rank-row', () => {
    const slots = [5, 5, 5, 5, 5, 0, 0, NO_SLOT, 0];
    const step = packStepLora(slots, slotInfo, 14, 'mbgmm');
    const tiles = Array.from(step.words.subarray(step.tilesAt));
    expect(tiles).toEqual([0, 4, 4, 1, 5, 2, 8, 1]);
    expect(step.numShrinkItems).toBe(2 + 2 + 4 + 4);
    const items = Array.from(step.words.subarray(step.itemsAt, step.tilesAt));
    expect(items.slice(0, 6)).toEqual([0, 4, 0, 0, 4, 1]);
  });

  it('a base-model step has no work', () => {
    const step = packStepLora([NO_SLOT, NO_SLOT], slotInfo, 14, 'mbgmm');
    expect(step.vLength).toBe(0);
    expect(step.numTiles).toBe(0);
    expect(step.chunks).toEqual([]);
  });
});

describe('WordRanges: page lists of the slot table', () => {
  it('never hands out overlapping ranges, merges what is released, and grows when nothing fits', () => {
    const rand = seededRandom(3);
    const ranges = new WordRanges(16);
    const live = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      if (live.size > 0 && rand() < 0.45) {
        const [start, length] = [...live.entries()][randomInt(rand, 0, live.size - 1)];
        ranges.release(start, length);
        live.delete(start);
      } else {
        const length = randomInt(rand, 1, 40);
        const start = ranges.allocate(length);
        expect(start + length).toBeLessThanOrEqual(ranges.capacity);
        for (const [s, l] of live) expect(start >= s + l || start + length <= s).toBe(true);
        live.set(start, length);
      }
      expect(ranges.numUsed).toBe([...live.values()].reduce((n, l) => n + l, 0));
    }
    for (const [start, length] of live) ranges.release(start, length);
    expect(ranges.numUsed).toBe(0);
    expect(ranges.allocate(ranges.capacity)).toBe(0);
  });

  it('refuses to release what is not allocated', () => {
    const ranges = new WordRanges(8);
    const start = ranges.allocate(4);
    ranges.release(start, 4);
    expect(() => ranges.release(start, 4)).toThrow(/not allocated/);
  });
});

describe('chunkWindows: how a step’s LoRA dispatches bind a pool split over bindings', () => {
  it('binds one chunk when the step’s pages lie in one, else the smallest power of two spanning them', () => {
    expect(chunkWindows([3], 8)).toEqual({ width: 1, firsts: [3] });
    expect(chunkWindows([1, 2], 8)).toEqual({ width: 2, firsts: [1] });
    expect(chunkWindows([0, 4], 8)).toEqual({ width: 8, firsts: [0] });
    expect(chunkWindows([0, 4, 5], 6)).toEqual({ width: 4, firsts: [0, 4] });
  });

  it('covers every chunk once with disjoint windows where the device binds fewer than the span', () => {
    const rand = seededRandom(5);
    for (let trial = 0; trial < 200; trial++) {
      const numChunks = randomInt(rand, 1, 20);
      const chunks = Array.from({ length: numChunks }, (_, c) => c).filter(() => rand() < 0.4);
      const maxWidth = randomInt(rand, 1, 12);
      const { width, firsts } = chunkWindows(chunks, maxWidth);
      expect(width).toBeLessThanOrEqual(maxWidth);
      expect(Number.isInteger(Math.log2(width))).toBe(true);
      for (const c of chunks) expect(firsts.filter((f) => f <= c && c < f + width)).toHaveLength(1);
      for (let i = 1; i < firsts.length; i++) expect(firsts[i]).toBeGreaterThanOrEqual(firsts[i - 1] + width);
    }
  });
});
