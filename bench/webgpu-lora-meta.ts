/**
 * Host time per step the webgpu engine spends on LoRA metadata, at TinyLlama's shape (22 layers ×
 * 7 modules, rank-16 adapters on every module), with 1, 8 and 32 distinct adapters in a decode
 * batch of 32 sequences and a prefill batch of 32 × 8 tokens. Measured: what a step does now
 * (each token's adapter slot, one packed buffer, one upload; the adapter-slot table is written
 * at load), beside the page lists the engine used to rebuild for every layer × module
 * (buildLoraBatch × 154, still the reference engine's path: a lower bound of the old per-step
 * cost, which also packed and uploaded each of them). Also the one-time cost of placing an
 * adapter's page table. Writes bench/results/webgpu-lora-meta.{json,md,svg}.
 *
 *   npx tsx bench/webgpu-lora-meta.ts [--steps 400]
 */
import { parseArgs } from 'node:util';
import type { StepPlan } from '../kernels/engine.js';
import { buildLoraBatch } from '../kernels/lora-batch.js';
import { AdapterSlotTable } from '../kernels/webgpu/adapter-slots.js';
import { createStorageBuffer, type SplitBuffer, writeBuffer } from '../kernels/webgpu/buffers.js';
import { createWebGpuContext } from '../kernels/webgpu/device.js';
import { prepareStepLora } from '../kernels/webgpu/step-state.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import type { LoraAdapter } from '../model/lora-adapter.js';
import { syntheticConfig, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '400' } } });
const STEPS = Number(args.steps);
const RANK = 16;
const ADAPTER_COUNTS = [1, 8, 32];
const config = syntheticConfig(TINYLLAMA_SPEC);

function progress(message: string): void {
  process.stderr.write(`[webgpu-lora-meta] ${message}\n`);
}

/** An adapter's shape without weights: only ranks and scales are read to lay it out. */
function adapterShape(name: string): LoraAdapter {
  const pair = { rank: RANK, scale: 2, a: new Float32Array(0), b: new Float32Array(0) };
  return {
    name,
    path: name,
    rank: RANK,
    alpha: 2 * RANK,
    targetModules: [...TARGET_MODULES],
    layers: Array.from({ length: config.numLayers }, () =>
      Object.fromEntries(TARGET_MODULES.map((m) => [m, pair])),
    ),
  };
}

/** Median and best milliseconds of `run` over STEPS calls, after a warm-up; the queue drained now and then. */
async function time(run: () => void, drain: () => Promise<void>): Promise<{ median: number; best: number }> {
  for (let i = 0; i < 20; i++) run();
  await drain();
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
    if (i % 20 === 19) await drain();
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], best: times[0] };
}

const ctx = await createWebGpuContext();
progress(`device: ${ctx.adapter.description || ctx.adapter.device}`);
const pagesEach = adapterPageCount(config, adapterShape('x'));
const maxAdapters = Math.max(...ADAPTER_COUNTS);
const pool = new PagePool(1 + maxAdapters * pagesEach, config.hiddenSize);
// Metadata only: no kernel reads the pool here, so one small buffer stands in for its storage
// (the pool in one binding, as on a GPU).
const storage: SplitBuffer = {
  dtype: 'f32',
  numElements: pool.numPages * pool.pageSize,
  chunkElements: pool.numPages * pool.pageSize,
  unitElements: pool.pageSize,
  chunks: [createStorageBuffer(ctx, 16, 'pool-stand-in')],
};
const slots = new AdapterSlotTable(ctx, storage, config.numLayers);
const layouts: AdapterLayout[] = [];
const placeMs: number[] = [];
for (let i = 0; i < maxAdapters; i++) {
  const adapter = adapterShape(`a${i}`);
  // Half on shuffled pages (page lists in the slot table), half contiguous (first pages only).
  const pages = pool.allocate(pagesEach, 'adapter');
  if (i % 2 === 1) pages.reverse();
  const layout = layoutAdapter(config, adapter, pages);
  const t0 = performance.now();
  slots.place(layout);
  placeMs.push(performance.now() - t0);
  layouts.push(layout);
}
const wordsPerPlace = slots.numWordsWritten / maxAdapters;
const scratch = createStorageBuffer(ctx, 1 << 20, 'lora-step');
const upload = (_name: string, data: ArrayBufferView) => {
  writeBuffer(ctx, scratch, 0, data);
  return scratch;
};
const drain = () => ctx.device.queue.onSubmittedWorkDone();

const rows: Array<Record<string, string | number>> = [];
const bars: Array<{ label: string; value: number }> = [];
for (const [batch, numSequences, tokensEach] of [
  ['decode', 32, 1],
  ['prefill', 32, 8],
] as const) {
  for (const numAdapters of ADAPTER_COUNTS) {
    const plan: StepPlan = {
      sequences: Array.from({ length: numSequences }, (_, s) => ({
        seqId: s,
        tokens: new Array(tokensEach).fill(1),
        startPos: 0,
        pageTable: new Int32Array(0),
        adapter: layouts[s % numAdapters],
        logits: 'last' as const,
      })),
    };
    const written = slots.numWordsWritten;
    const now = await time(() => prepareStepLora(plan, slots, upload), drain);
    if (slots.numWordsWritten !== written) throw new Error('a step wrote the adapter-slot table');
    const tokenAdapters = plan.sequences.flatMap((s) => new Array(s.tokens.length).fill(s.adapter));
    const lists = await time(() => {
      for (let layer = 0; layer < config.numLayers; layer++)
        for (const m of TARGET_MODULES) {
          const { inFeatures, outFeatures } = moduleShape(config, m);
          buildLoraBatch(tokenAdapters, layer, m, inFeatures, outFeatures, pool.pageSize);
        }
    }, drain);
    const label = `${batch} ${numSequences}×${tokensEach}, ${numAdapters} adapters`;
    progress(`${label}: slot ids ${now.median.toFixed(3)} ms, page lists ${lists.median.toFixed(3)} ms`);
    rows.push({
      batch: `${batch} (${numSequences} × ${tokensEach} tokens)`,
      adapters: numAdapters,
      'slot ids: median ms': now.median,
      'slot ids: best ms': now.best,
      'page lists ×154: median ms': lists.median,
      'page lists ×154: best ms': lists.best,
      'uploads per step': `1 vs ${config.numLayers * TARGET_MODULES.length}`,
    });
    bars.push({ label: `${label}: slot ids`, value: now.median });
    bars.push({ label: `${label}: page lists ×154`, value: lists.median });
  }
}
const sortedPlace = [...placeMs].sort((a, b) => a - b);
const files = writeBenchReport({
  name: 'webgpu-lora-meta',
  title: 'webgpu engine: LoRA metadata host time per step (TinyLlama shape, rank 16, all modules)',
  context: {
    ...machineContext(),
    device: ctx.adapter.description || ctx.adapter.device,
    model: `TinyLlama shape: ${config.numLayers} layers × 7 modules, hidden ${config.hiddenSize}`,
    'steps timed': STEPS,
  },
  rows,
  chart: { unit: 'ms per step (median)', bars },
  notes: [
    `Placing an adapter's page table (once per load, not per step; half of them on scattered pages, so with a page list): median ${sortedPlace[Math.floor(sortedPlace.length / 2)].toFixed(3)} ms, ${Math.round(wordsPerPlace)} words written on average, buffer growth included; steps wrote none.`,
    '"slot ids" is everything a step now does for LoRA on the host (prepareStepLora: each token’s slot, work lists, one upload). "page lists ×154" is only the buildLoraBatch part of what the engine did before, per layer × module; it also packed each list and uploaded it (154 writeBuffers a step).',
  ],
});
progress(`wrote ${files.join(', ')}`);
slots.destroy();
ctx.destroy();
