/**
 * Proves a TinyLlama-shaped model loads and runs on the WebGPU engine whatever the adapter
 * (on lavapipe: weights and pool past the 128 MiB binding limit are split across bindings), and
 * records what a step costs there: weight upload, a ragged prefill mixing the base model and
 * two adapters, and decode steps with device-side sampling. Slow on lavapipe by nature
 * (ARCHITECTURE.md: software WGSL matmul runs a few GFLOP/s); on a GPU it is quick.
 *
 *   npx tsx bench/webgpu-tinyllama.ts [--layers N] [--dtype f16|bf16|f32|int8|int4] [--prompt N] [--decode-steps N]
 */
import { parseArgs } from 'node:util';
import type { SequenceStep, StepPlan } from '../kernels/engine.js';
import { createWebGpuContext } from '../kernels/webgpu/device.js';
import { WebGpuEngine } from '../kernels/webgpu/webgpu-engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    dtype: { type: 'string', default: 'f16' },
    prompt: { type: 'string', default: '16' },
    'decode-steps': { type: 'string', default: '4' },
  },
});
const numLayers = Number(args.layers);
const promptLength = Number(args.prompt);
const decodeSteps = Number(args['decode-steps']);

function progress(message: string): void {
  process.stderr.write(`[webgpu-tinyllama] ${message}\n`);
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  progress(`${label}…`);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  progress(`${label}: ${ms.toFixed(0)} ms`);
  return { value, ms };
}

const spec = { ...TINYLLAMA_SPEC, numLayers };
progress(
  `generating synthetic weights (${numLayers} layers, hidden ${spec.hiddenSize}, vocab ${spec.vocabSize})`,
);
const weights = syntheticWeights(spec);
const config = weights.config;
const ctx = await createWebGpuContext();
if (!['f16', 'bf16', 'f32', 'int8', 'int4'].includes(args.dtype))
  throw new Error(`--dtype ${args.dtype}: f16, bf16, f32, int8 or int4`);
const dtype =
  args.dtype === 'int8' || args.dtype === 'int4' || args.dtype === 'bf16'
    ? args.dtype
    : args.dtype === 'f16' && ctx.hasF16
      ? 'f16'
      : 'f32';
progress(
  `adapter: ${ctx.adapter.description || ctx.adapter.device} (fallback ${ctx.adapter.isFallbackAdapter}), weights ${dtype}`,
);

const layout = kvLayout(config);
const adapterSpecs = [16, 64].map((rank, i) =>
  syntheticAdapter(config, {
    name: `r${rank}`,
    rank,
    alpha: rank,
    targetModules: i === 0 ? ['q_proj', 'k_proj', 'v_proj', 'o_proj'] : ['gate_proj', 'up_proj', 'down_proj'],
    seed: 100 + i,
  }),
);
const kvPagesPerSequence =
  Math.ceil((promptLength + decodeSteps + 1) / layout.tokensPerPage) * layout.pagesPerBlock;
const pool = new PagePool(
  1 + 3 * kvPagesPerSequence + adapterSpecs.reduce((n, a) => n + adapterPageCount(config, a), 0),
  config.hiddenSize,
);
const upload = await timed('upload weights + pool', () =>
  WebGpuEngine.create(weights, pool, { context: ctx, ownContext: true, weightDtype: dtype }),
);
const engine = upload.value;
const adapters: AdapterLayout[] = adapterSpecs.map((adapter) => {
  const placed = layoutAdapter(config, adapter, pool.allocate(adapterPageCount(config, adapter), 'adapter'));
  engine.writeAdapter(placed, storeAdapter(adapter));
  return placed;
});

const kv = new KvCache(pool, layout);
const sequences: SequenceStep[] = [null, adapters[0], adapters[1]].map((adapter, seqId) => {
  const length = promptLength - seqId * 3; // ragged prompts
  kv.reserve(seqId, length + decodeSteps + 1);
  return {
    seqId,
    tokens: Array.from({ length }, (_, i) => (i * 131 + seqId * 17 + 3) % config.vocabSize),
    startPos: 0,
    pageTable: kv.pageTable(seqId),
    adapter,
    logits: 'last',
  };
});
const greedy = sequences.map(() => ({ temperature: 0, topK: 0, topP: 1, uniform: 0 }));
const prefillPlan: StepPlan = { sequences };
const prefill = await timed('prefill', () => engine.sampleStep(prefillPlan, greedy));
let next = prefill.value.tokens;
const decodeMs: number[] = [];
let position = sequences.map((s) => s.tokens.length);
for (let step = 0; step < decodeSteps; step++) {
  const plan: StepPlan = {
    sequences: sequences.map((s, i) => ({ ...s, tokens: [next[i]], startPos: position[i] })),
  };
  const result = await timed(`decode step ${step + 1}`, () => engine.sampleStep(plan, greedy));
  decodeMs.push(result.ms);
  next = result.value.tokens;
  position = position.map((p) => p + 1);
}
await engine.close();

const prefillTokens = sequences.reduce((n, s) => n + s.tokens.length, 0);
/** Weights one token multiplies through: every linear layer plus the lm_head. */
function linearParamsPerToken(): number {
  const h = config.hiddenSize;
  const kvDim = config.numKvHeads * config.headDim;
  const perLayer = h * h * 2 + 2 * h * kvDim + 3 * h * config.intermediateSize;
  return perLayer * config.numLayers + config.vocabSize * h;
}
const linearParams = linearParamsPerToken();
const medianDecode = [...decodeMs].sort((a, b) => a - b)[Math.floor(decodeMs.length / 2)];
const files = writeBenchReport({
  name: 'webgpu-tinyllama',
  title: `webgpu engine: TinyLlama shape on ${ctx.adapter.description || ctx.adapter.device}`,
  context: {
    date: new Date().toISOString(),
    adapter: `${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.description}`.trim(),
    fallbackAdapter: String(ctx.adapter.isFallbackAdapter),
    model: `synthetic TinyLlama shape, ${numLayers} of 22 layers`,
    weightDtype: dtype,
    sequences: '3 (base, rank-16 attention adapter, rank-64 MLP adapter), ragged prompts',
    poolPages: pool.numPages,
  },
  rows: [
    { phase: 'upload weights + pool', ms: upload.ms, tokens: 0, tokens_per_s: 0, gflop_per_s: 0 },
    {
      phase: `prefill ${prefillTokens} tokens`,
      ms: prefill.ms,
      tokens: prefillTokens,
      tokens_per_s: (prefillTokens * 1000) / prefill.ms,
      gflop_per_s: (2 * linearParams * prefillTokens) / (prefill.ms * 1e6),
    },
    {
      phase: 'decode step (median, batch 3)',
      ms: medianDecode,
      tokens: 3,
      tokens_per_s: 3000 / medianDecode,
      gflop_per_s: (2 * linearParams * 3) / (medianDecode * 1e6),
    },
  ],
  chart: {
    unit: 'ms',
    bars: [
      { label: 'upload', value: upload.ms },
      { label: 'prefill', value: prefill.ms },
      ...decodeMs.map((ms, i) => ({ label: `decode ${i + 1}`, value: ms })),
    ],
  },
  notes: [
    'every step sampled on the device: each step reads back token ids, not logits',
    'GFLOP/s counts linear layers and the logit rows computed (all vocab rows for the last token of each sequence)',
  ],
});
progress(`wrote ${files.join(', ')}`);
