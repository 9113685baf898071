import { describe, expect, it } from 'vitest';
import { buildLoraBatch } from '../../kernels/lora-batch.js';
import { loraExpand, loraShrink } from '../../kernels/reference/lora.js';
import { AdapterSlotTable, NO_SLOT, slotEntry } from '../../kernels/webgpu/adapter-slots.js';
import {
  createSplitBuffer,
  createStorageBuffer,
  readF32,
  uploadBuffer,
  writeSplit,
} from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { LoraExpandKernel } from '../../kernels/webgpu/lora-expand.js';
import { type LoraForm, packStepLora } from '../../kernels/webgpu/lora-meta.js';
import { LoraShrinkKernel } from '../../kernels/webgpu/lora-shrink.js';
import type { AdapterLayout, ModulePages } from '../../memory/adapter-layout.js';
import {
  F32_TOLERANCE,
  openSuiteContext,
  randomArray,
  randomInt,
  relativeError,
  seededRandom,
  shuffle,
} from './gpu-test-kit.js';

const ctx = await openSuiteContext('lora_shrink/lora_expand');

const PAGE = 64;
const IN = 160; // 2.5 pages: the last page of each A row is partly used
const OUT = 96;
const LAYERS = 2;
/** Layer 0's q_proj rank of each adapter; layer 1 holds half of it (rank_pattern), rank 1 none. */
const RANKS = [1, 8, 16, 64, 128];

/**
 * Adapters of every rank on a pool filled with random values: odd ones on shuffled pages (their
 * slot lists pages), even ones on consecutive pages (their slot holds first pages only).
 */
function makePool(seed: number) {
  const rand = seededRandom(seed);
  const ppA = Math.ceil(IN / PAGE);
  const ppB = Math.ceil(OUT / PAGE);
  const layerRanks = RANKS.map((r) => [r, Math.floor(r / 2)]);
  const pagesOf = (ranks: number[]) => ranks.reduce((s, r) => s + r * (ppA + ppB), 0);
  const consecutiveTotal = layerRanks.reduce((s, ranks, i) => s + (i % 2 === 0 ? pagesOf(ranks) : 0), 0);
  const numPages = pagesOf(layerRanks.flat()) + 40;
  // Consecutive adapters fill pages from 1 up; the others draw from the rest, shuffled.
  let nextConsecutive = 1;
  const shuffled = shuffle(
    rand,
    Array.from({ length: numPages - 1 - consecutiveTotal }, (_, i) => i + 1 + consecutiveTotal),
  );
  const adapters: AdapterLayout[] = layerRanks.map((ranks, i) => {
    const all: number[] = [];
    const take = (n: number) => {
      const pages =
        i % 2 === 0 ? Array.from({ length: n }, (_, k) => nextConsecutive + k) : shuffled.splice(0, n);
      if (i % 2 === 0) nextConsecutive += n;
      all.push(...pages);
      return Int32Array.from(pages);
    };
    const modules = ranks.map((rank, layer): { q_proj?: ModulePages } => {
      if (rank === 0) return {};
      const aPages = take(rank * ppA);
      const bPages = take(rank * ppB);
      const scale = 0.5 + i + layer;
      return {
        q_proj: {
          rank,
          scale,
          inFeatures: IN,
          outFeatures: OUT,
          pagesPerRowA: ppA,
          pagesPerRowB: ppB,
          aPages,
          bPages,
        },
      };
    });
    return { name: `r${ranks[0]}`, rank: ranks[0], modules, allPages: Int32Array.from(all) };
  });
  const storage = randomArray(rand, numPages * PAGE);
  storage.fill(0, 0, PAGE);
  return { adapters, storage, numPages };
}

/** Decode: one token per request; prefill: runs of tokens sharing an adapter. */
function tokenAdapters(
  rand: () => number,
  adapters: AdapterLayout[],
  form: LoraForm,
): Array<AdapterLayout | null> {
  const pick = () => (rand() < 0.2 ? null : adapters[randomInt(rand, 0, adapters.length - 1)]);
  const out: Array<AdapterLayout | null> = [];
  const requests = randomInt(rand, 1, 9);
  for (let s = 0; s < requests; s++) {
    const adapter = pick();
    const length = form === 'mbgmv' ? 1 : randomInt(rand, 1, 11);
    for (let i = 0; i < length; i++) out.push(adapter);
  }
  return out;
}

describe.skipIf(!ctx)('lora_shrink / lora_expand gather kernels through the adapter-slot table', () => {
  for (const [form, chunkPages, splitDecode, chunksPerDispatch] of [
    ['mbgmv', 0, false, 1],
    ['mbgmv', 0, true, 1],
    ['mbgmm', 0, false, 1],
    ['mbgmv', 300, false, 1],
    ['mbgmv', 300, true, 1],
    ['mbgmm', 300, false, 1],
    // Several chunks bound per dispatch, windows running past the pool's last chunk among them.
    ['mbgmv', 300, true, 2],
    ['mbgmm', 300, false, 2],
    ['mbgmv', 300, false, 4],
  ] as Array<[LoraForm, number, boolean, number]>) {
    const chunks = chunkPages
      ? `pool split every ${chunkPages} pages, ${chunksPerDispatch} bound per dispatch`
      : 'pool in one binding';
    const entry = splitDecode ? ' (split-k shrink)' : '';
    it(`${form}${entry}, mixed ranks 1–128, per-layer ranks, base tokens, ${chunks}`, async () => {
      const gpu = ctx!;
      const { adapters, storage, numPages } = makePool(7 + chunkPages);
      const pool = createSplitBuffer(
        gpu,
        numPages * PAGE,
        PAGE,
        'f32',
        'pool',
        chunkPages ? chunkPages * PAGE * 4 : undefined,
      );
      if (chunkPages) expect(pool.chunks.length).toBeGreaterThan(1);
      writeSplit(gpu, pool, 0, storage);
      // Two slots to start with: placing five grows the header and page-list buffers.
      const slots = new AdapterSlotTable(gpu, pool, LAYERS, 2);
      for (const a of adapters) slots.place(a);
      // A slot released and its adapter placed again must read the same pages.
      slots.release(adapters[1]);
      slots.place(adapters[1]);
      const shrink = new LoraShrinkKernel(gpu, pool, { splitDecode, chunksPerDispatch });
      const expand = new LoraExpandKernel(gpu, pool, { chunksPerDispatch });
      expect([shrink.chunksPerDispatch, expand.chunksPerDispatch]).toEqual([
        chunksPerDispatch,
        chunksPerDispatch,
      ]);
      const rand = seededRandom(100 + chunkPages + form.length);
      for (let trial = 0; trial < 4; trial++) {
        const owners = tokenAdapters(rand, adapters, form);
        const T = owners.length;
        const tokenSlots = owners.map((a) => (a ? slots.slotOf(a) : NO_SLOT));
        const step = packStepLora(tokenSlots, (s) => slots.info(s), slots.entriesPerSlot, form);
        const stepBuf = uploadBuffer(gpu, step.words, 'lora-step');
        const device = { packed: step, buffer: stepBuf };
        const x = randomArray(rand, T * IN);
        const vBuf = createStorageBuffer(gpu, Math.max(1, step.vLength) * 4, 'v');
        for (let layer = 0; layer < LAYERS; layer++) {
          const batch = buildLoraBatch(owners, layer, 'q_proj', IN, OUT, PAGE);
          const y0 = randomArray(rand, T * OUT);
          const vRef = loraShrink(x, batch, storage, PAGE);
          const yRef = y0.slice();
          loraExpand(vRef, batch, storage, PAGE, yRef);

          const call = { entry: slotEntry(layer, 'q_proj'), inFeatures: IN, outFeatures: OUT };
          expect(step.touched[call.entry]).toBe(batch.numAdapters > 0 ? 1 : 0);
          const xBuf = uploadBuffer(gpu, x, 'x');
          const yBuf = uploadBuffer(gpu, y0, 'y');
          await runPass(gpu, (pass) => {
            shrink.encode(pass, device, slots, call, xBuf, vBuf);
            expand.encode(pass, device, slots, call, vBuf, yBuf);
          });
          const v = await readF32(gpu, vBuf, Math.max(1, step.vLength));
          const y = await readF32(gpu, yBuf, T * OUT);
          // v holds each token's rows at its adapter's largest rank apart; this module uses the first `rank`.
          const vUsed = new Float32Array(batch.vLength);
          for (let t = 0; t < T; t++)
            for (let r = 0; r < batch.rank[t]; r++)
              vUsed[batch.vOffset[t] + r] = v[step.words[2 * t + 1] + r];
          expect(relativeError(vUsed, vRef)).toBeLessThan(F32_TOLERANCE);
          expect(relativeError(y, yRef)).toBeLessThan(F32_TOLERANCE);
          for (const b of [xBuf, yBuf]) b.destroy();
        }
        for (const b of [stepBuf, vBuf]) b.destroy();
      }
      slots.destroy();
    });
  }
});
