/**
 * What many distinct adapters cost a decode step on the webgpu engine, and why: the same batch of
 * sequences (TinyLlama shape) run with no adapter, one adapter shared by every sequence, and one
 * adapter per sequence (uniform rank 8, or S-LoRA's mixed 8–64) whose pages lie in one pool
 * binding or spread over several (the LoRA kernels dispatch once per binding holding a page of
 * the step's adapters). Also times host → pool adapter uploads (writeAdapter until the queue is
 * done), the copy the adapter registry hides behind steps. Each case runs in one process, side by
 * side.
 *
 *   npx tsx bench/webgpu-lora-step.ts [--layers 22] [--batch 32] [--pool-gib 10] [--spread 5]
 *                                     [--max-chunk-mib M] [--steps 8]
 *
 * --max-chunk-mib caps one binding below the device's limit (lavapipe runs stay small with it).
 */
import { parseArgs } from 'node:util';
import type { SequenceStep, StepPlan } from '../kernels/engine.js';
import { createWebGpuContext } from '../kernels/webgpu/device.js';
import { WebGpuEngine } from '../kernels/webgpu/webgpu-engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import type { LoraAdapter } from '../model/lora-adapter.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { writeBenchReport } from './report.js';
import { MIXED_RANKS } from './slora/adapter-folders.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    batch: { type: 'string', default: '32' },
    'pool-gib': { type: 'string', default: '10' },
    spread: { type: 'string', default: '5' },
    'max-chunk-mib': { type: 'string' },
    steps: { type: 'string', default: '8' },
    prompt: { type: 'string', default: '16' },
  },
});
const batch = Number(args.batch);
const numSteps = Number(args.steps);
const promptLength = Number(args.prompt);

function progress(message: string): void {
  process.stderr.write(`[webgpu-lora-step] ${message}\n`);
}

const spec = { ...TINYLLAMA_SPEC, numLayers: Number(args.layers) };
progress(`generating synthetic weights (${spec.numLayers} layers, hidden ${spec.hiddenSize})`);
const weights = syntheticWeights(spec);
const config = weights.config;
const ctx = await createWebGpuContext();
const maxChunkBytes = args['max-chunk-mib'] ? Number(args['max-chunk-mib']) * 2 ** 20 : ctx.maxBindingBytes;
const pageBytes = config.hiddenSize * 4;
const pagesPerChunk = Math.floor(Math.min(maxChunkBytes, ctx.maxBindingBytes) / pageBytes);
const pool = new PagePool(Math.floor((Number(args['pool-gib']) * 2 ** 30) / pageBytes), config.hiddenSize);
const numChunks = Math.ceil(pool.numPages / pagesPerChunk);
progress(
  `${ctx.adapter.description || ctx.adapter.device}: pool ${pool.numPages} pages in ${numChunks} bindings`,
);
const engine = await WebGpuEngine.create(weights, pool, {
  context: ctx,
  ownContext: true,
  weightDtype: 'f32',
  maxChunkBytes,
});

const layout = kvLayout(config);
const kv = new KvCache(pool, layout);
for (let s = 0; s < batch; s++) kv.reserve(s, promptLength + numSteps + 2);
/** First page no KV holds: adapters are placed by hand from here, never through the pool. */
const firstAdapterPage = pool.numPages - pool.numFree;

function makeAdapters(ranks: number[], seed: number): LoraAdapter[] {
  return ranks.map((rank, i) =>
    syntheticAdapter(config, {
      name: `a${seed}-${i}`,
      rank,
      alpha: 16,
      targetModules: [...TARGET_MODULES],
      seed: seed + i,
    }),
  );
}

/** Consecutive pages for each adapter, in one binding (`chunks` = 1) or round-robin over `chunks`. */
function place(adapters: LoraAdapter[], chunks: number): AdapterLayout[] {
  const next = Array.from({ length: chunks }, (_, c) => Math.max(firstAdapterPage, c * pagesPerChunk));
  return adapters.map((adapter, i) => {
    const c = i % chunks;
    const count = adapterPageCount(config, adapter);
    if (next[c] + count > Math.min(pool.numPages, (c + 1) * pagesPerChunk) && chunks > 1)
      throw new Error(`binding ${c} cannot hold adapter ${i}: raise --pool-gib`);
    const pages = Int32Array.from({ length: count }, (_, k) => next[c] + k);
    next[c] += count;
    if (next[c] > pool.numPages) throw new Error('the pool cannot hold the adapters: raise --pool-gib');
    return layoutAdapter(config, adapter, pages);
  });
}

/** Uploads and returns ms per adapter (host staging, writeBuffer, until the queue is done). */
async function upload(layouts: AdapterLayout[], adapters: LoraAdapter[]): Promise<number> {
  await ctx.device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (const [i, l] of layouts.entries()) engine.writeAdapter(l, storeAdapter(adapters[i]));
  await ctx.device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / layouts.length;
}

const greedy = Array.from({ length: batch }, () => ({ temperature: 0, topK: 0, topP: 1, uniform: 0 }));

/** Median decode-step ms with sequence s using `adapterOf(s)`. */
async function decodeMs(adapterOf: (s: number) => AdapterLayout | null): Promise<number> {
  const sequences: SequenceStep[] = Array.from({ length: batch }, (_, seqId) => ({
    seqId,
    tokens: Array.from({ length: promptLength }, (_, i) => (i * 131 + seqId * 17 + 3) % config.vocabSize),
    startPos: 0,
    pageTable: kv.pageTable(seqId),
    adapter: adapterOf(seqId),
    logits: 'last',
  }));
  let next = (await engine.sampleStep({ sequences }, greedy)).tokens;
  const times: number[] = [];
  for (let step = 0; step < numSteps; step++) {
    const plan: StepPlan = {
      sequences: sequences.map((s, i) => ({ ...s, tokens: [next[i]], startPos: promptLength + step })),
    };
    const t0 = performance.now();
    next = (await engine.sampleStep(plan, greedy)).tokens;
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const spread = Math.max(1, Math.min(Number(args.spread), numChunks));
const uniform = makeAdapters(
  Array.from({ length: batch }, () => 8),
  100,
);
const mixed = makeAdapters(
  Array.from({ length: batch }, (_, i) => MIXED_RANKS[i % MIXED_RANKS.length]),
  500,
);
const mixedBytes = mixed.reduce((n, a) => n + adapterPageCount(config, a), 0) * pageBytes;
const rows: Array<Record<string, string | number>> = [];
let base = 0;
async function measure(label: string, bindings: string, adapterOf: (s: number) => AdapterLayout | null) {
  const ms = await decodeMs(adapterOf);
  if (rows.length === 0) base = ms;
  rows.push({
    case: label,
    bindings,
    'decode step ms': ms,
    'vs base': `${((ms / base) * 100).toFixed(1)} %`,
  });
  progress(`${label} (${bindings}): ${ms.toFixed(2)} ms`);
}

await measure('base model', '—', () => null);
const packedUniform = place(uniform, 1);
const uploadUniform = await upload(packedUniform, uniform);
await measure('one rank-8 adapter for every sequence', '1', () => packedUniform[0]);
await measure(`${batch} distinct rank-8 adapters`, '1', (s) => packedUniform[s]);
const spreadUniform = place(uniform, spread);
await upload(spreadUniform, uniform);
await measure(`${batch} distinct rank-8 adapters`, String(spread), (s) => spreadUniform[s]);
// Mixed ranks take more than one binding on a GPU (2 GiB each): packed = as few as they fill.
const packedMixed = place(mixed, 1);
const uploadMixed = await upload(packedMixed, mixed);
const mixedChunks = new Set(
  packedMixed.flatMap((l) => [...l.allPages].map((p) => Math.floor(p / pagesPerChunk))),
);
await measure('one mixed-rank adapter (rank 8) for every sequence', '1', () => packedMixed[0]);
await measure(`${batch} distinct ranks 8–64`, String(mixedChunks.size), (s) => packedMixed[s]);
if (spread > mixedChunks.size) {
  const spreadMixed = place(mixed, spread);
  await upload(spreadMixed, mixed);
  await measure(`${batch} distinct ranks 8–64`, String(spread), (s) => spreadMixed[s]);
}
await engine.close();

const uniformBytes = adapterPageCount(config, uniform[0]) * pageBytes;
const files = writeBenchReport({
  name: 'webgpu-lora-step',
  title: `webgpu decode step by adapter mix and pool bindings (${ctx.adapter.description || ctx.adapter.device})`,
  context: {
    date: new Date().toISOString(),
    adapter: `${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.description}`.trim(),
    fallbackAdapter: String(ctx.adapter.isFallbackAdapter),
    model: `synthetic TinyLlama shape, ${spec.numLayers} layers, f32 weights`,
    batch: `${batch} sequences, ${promptLength}-token prompts, median of ${numSteps} decode steps`,
    pool: `${pool.numPages} pages of ${pageBytes} B in ${numChunks} bindings of ≤ ${pagesPerChunk} pages`,
    'upload rank 8': `${uploadUniform.toFixed(2)} ms per adapter (${(uniformBytes / 2 ** 20).toFixed(1)} MiB, ${(uniformBytes / uploadUniform / 1e6).toFixed(2)} GB/s)`,
    'upload ranks 8–64': `${uploadMixed.toFixed(2)} ms per adapter (mean ${(mixedBytes / batch / 2 ** 20).toFixed(1)} MiB, ${(mixedBytes / batch / uploadMixed / 1e6).toFixed(2)} GB/s)`,
  },
  rows,
  chart: {
    unit: 'ms',
    bars: rows.map((r) => ({ label: `${r.case} [${r.bindings}]`, value: Number(r['decode step ms']) })),
  },
  notes: [
    'bindings: pool bindings holding the step’s adapter pages. The LoRA shrink and expand bind them in windows (kernels/webgpu/buffers.ts chunkWindows: one binding where the pages lie in one, else the smallest power of two spanning them, as many as the device binds); before, one dispatch per binding for every (layer, module).',
    'Adapters are all 7 modules; pages placed by hand above the KV pages (consecutive per adapter).',
  ],
});
progress(`wrote ${files.join(', ')}`);
