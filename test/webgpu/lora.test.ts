import { describe, expect, it } from 'vitest';
import { buildLoraBatch } from '../../kernels/lora-batch.js';
import { loraExpand, loraShrink } from '../../kernels/reference/lora.js';
import {
  createSplitBuffer,
  createStorageBuffer,
  readF32,
  uploadBuffer,
  writeSplit,
} from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { LoraExpandKernel } from '../../kernels/webgpu/lora-expand.js';
import { type LoraForm, uploadLoraBatch } from '../../kernels/webgpu/lora-meta.js';
import { LoraShrinkKernel } from '../../kernels/webgpu/lora-shrink.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
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
const RANKS = [1, 8, 16, 64, 128];

/** Adapters of every rank, their rows on shuffled pages of a pool filled with random values. */
function makePool(seed: number) {
  const rand = seededRandom(seed);
  const ppA = Math.ceil(IN / PAGE);
  const ppB = Math.ceil(OUT / PAGE);
  const needed = RANKS.reduce((s, r) => s + r * (ppA + ppB), 0);
  const numPages = needed + 40;
  const free = shuffle(
    rand,
    Array.from({ length: numPages - 1 }, (_, i) => i + 1),
  );
  const adapters: AdapterLayout[] = RANKS.map((rank, i) => {
    const aPages = Int32Array.from(free.splice(0, rank * ppA));
    const bPages = Int32Array.from(free.splice(0, rank * ppB));
    return {
      name: `r${rank}`,
      rank,
      modules: [
        {
          q_proj: {
            rank,
            scale: 0.5 + i,
            inFeatures: IN,
            outFeatures: OUT,
            pagesPerRowA: ppA,
            pagesPerRowB: ppB,
            aPages,
            bPages,
          },
        },
      ],
      allPages: new Int32Array([...aPages, ...bPages]),
    };
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

describe.skipIf(!ctx)('lora_shrink / lora_expand gather kernels', () => {
  for (const [form, chunkPages] of [
    ['mbgmv', 0],
    ['mbgmm', 0],
    ['mbgmv', 300],
    ['mbgmm', 300],
  ] as Array<[LoraForm, number]>) {
    const chunks = chunkPages ? `pool split every ${chunkPages} pages` : 'pool in one binding';
    it(`${form}, mixed ranks 1–128 and base tokens, ${chunks}`, async () => {
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
      const shrink = new LoraShrinkKernel(gpu, pool);
      const expand = new LoraExpandKernel(gpu, pool);
      const rand = seededRandom(100 + chunkPages + form.length);
      for (let trial = 0; trial < 4; trial++) {
        const batch = buildLoraBatch(tokenAdapters(rand, adapters, form), 0, 'q_proj', IN, OUT, PAGE);
        const T = batch.numTokens;
        const x = randomArray(rand, T * IN);
        const y0 = randomArray(rand, T * OUT);
        const vRef = loraShrink(x, batch, storage, PAGE);
        const yRef = y0.slice();
        loraExpand(vRef, batch, storage, PAGE, yRef);

        const lora = uploadLoraBatch(gpu, batch, form);
        const xBuf = uploadBuffer(gpu, x, 'x');
        const vBuf = createStorageBuffer(gpu, Math.max(1, batch.vLength) * 4, 'v');
        const yBuf = uploadBuffer(gpu, y0, 'y');
        await runPass(gpu, (pass) => {
          shrink.encode(pass, lora, xBuf, vBuf);
          expand.encode(pass, lora, vBuf, yBuf);
        });
        const v = await readF32(gpu, vBuf, batch.vLength);
        const y = await readF32(gpu, yBuf, T * OUT);
        expect(relativeError(v, vRef)).toBeLessThan(F32_TOLERANCE);
        expect(relativeError(y, yRef)).toBeLessThan(F32_TOLERANCE);
        for (const b of [lora.buffer, xBuf, vBuf, yBuf]) b.destroy();
      }
    });
  }
});
