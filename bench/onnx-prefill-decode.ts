/**
 * The onnx engine on a synthetic TinyLlama-shaped model: prefill throughput of a 512-token prompt
 * next to onnxruntime's own MatMul FLOP/s, and decode throughput at batch 1, 8 and 32 with eight
 * distinct rank-16 adapters vs the base model alone. Also measures what shaped the engine's
 * design: weights fed as inputs vs (prepacked) initializers, and that a large input tensor is not
 * copied per run. Decode times are per-step medians; other load on the machine shows in the
 * load averages the report records. `--format int8` (or f16, bf16, int4) stores the base weights
 * so (the LoRA overhead at a low-precision base); the weights-as-inputs comparisons are f32 only
 * and are skipped then, and `--decode-only` skips the prefill and MatMul figures too.
 *
 *   npx tsx bench/onnx-prefill-decode.ts [--layers N] [--threads N] [--decode-steps N] [--format F] [--decode-only] [--batches 1,8,32]
 *                                       [--stack-rows N]   (the engine's stacked LoRA rows; 0: every adapter gathered)
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { SequenceStep } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { GraphBuilder } from '../kernels/onnx/onnx-model.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../kernels/weight-quantization.js';
import { type AdapterLayout, adapterPageCount } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import type { ModelWeights } from '../model/model-weights.js';
import { syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { fillUniform } from '../model/synthetic-weights.js';
import { distinctAdapters, placeAdapters } from './issue-adapters.js';
import { writeBenchReport } from './report.js';

const PROMPT = 512;
const DECODE_CONTEXT = 64;
const NUM_ADAPTERS = 8;
const ADAPTER_RANK = 16;

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    threads: { type: 'string', default: String(availableParallelism()) },
    'decode-steps': { type: 'string', default: '16' },
    format: { type: 'string', default: 'f32' },
    batches: { type: 'string', default: '1,8,32' },
    'decode-only': { type: 'boolean', default: false },
    'stack-rows': { type: 'string' },
  },
});
const format = args.format as WeightFormat;
if (!WEIGHT_FORMATS.includes(format)) throw new Error(`--format: one of ${WEIGHT_FORMATS.join(', ')}`);
const decodeOnly = args['decode-only'];
const DECODE_BATCHES = args.batches.split(',').map(Number);
/** The weights-as-inputs engine and figures exist for f32 weights only. */
const withInputsMode = format === 'f32' && !decodeOnly;
const numLayers = Number(args.layers);
const threads = Number(args.threads);
const decodeSteps = Number(args['decode-steps']);

function progress(message: string): void {
  process.stderr.write(`[onnx-bench] ${message}\n`);
}

/** Median wall time in ms of `fn` over at least `minRuns` runs and `minMs` of total time. */
async function medianMs(fn: () => Promise<unknown>, minRuns = 3, minMs = 1000): Promise<number> {
  await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || performance.now() - start < minMs) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    if (times.length >= 50) break;
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Seeded values uniform in ±0.05 (the synthetic model's generator). */
const randomF32 = (n: number, seed: number) => fillUniform(new Float32Array(n), seed, 0.05);

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
};

/** onnxruntime's MatMul alone at M×K×N: B fed as an input, or a (prepacked) initializer. */
async function matmulGflops(m: number, k: number, n: number, bAs: 'input' | 'initializer'): Promise<number> {
  const g = new GraphBuilder('matmul');
  const bData = randomF32(k * n, 2);
  const b =
    bAs === 'input'
      ? g.input('b', 'float32', [k, n])
      : g.constant({ type: 'float32', dims: [k, n], data: bData }, 'b');
  g.op('MatMul', [g.input('a', 'float32', [m, k]), b], {}, { outputNames: ['c'] });
  g.output('c', 'float32', [m, n]);
  const session = await ort.InferenceSession.create(g.toBytes(), sessionOptions);
  const feeds: Record<string, ort.Tensor> = { a: new ort.Tensor('float32', randomF32(m * k, 1), [m, k]) };
  if (bAs === 'input') feeds.b = new ort.Tensor('float32', bData, [k, n]);
  const ms = await medianMs(() => session.run(feeds));
  await session.release();
  return (2 * m * k * n) / (ms * 1e6);
}

type FeedingMode = 'inputs' | 'initializers' | 'external';
const FEEDING_MODES: FeedingMode[] = ['inputs', 'initializers', 'external'];

/**
 * The linear layers of `layers` TinyLlama-width decoder layers, chained (Gemm with transB over
 * HF [out, in] weights), with the weights fed as inputs, stored in the model as initializers, or
 * as initializers whose bytes come from host memory (`externalData`, what the engine's
 * 'prepacked' mode does). Fastest of 5 runs per session and M. Sessions do not interleave run by
 * run: a session's pool threads spin after its run and would slow another session's next run.
 * Returns ms per run for each M.
 */
async function weightFeedingMs(
  config: LlamaConfig,
  layers: number,
  ms: number[],
): Promise<Record<FeedingMode, number[]>> {
  const weights = new Map<string, { data: Float32Array; dims: number[] }>();
  for (let l = 0; l < layers; l++) {
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      weights.set(`l${l}.${m}`, {
        data: randomF32(inFeatures * outFeatures, l * 7 + 1),
        dims: [outFeatures, inFeatures],
      });
    }
  }
  const sessions = [];
  for (const mode of FEEDING_MODES) {
    const g = new GraphBuilder(`linear_${mode}`);
    const feeds: Record<string, ort.Tensor> = {};
    const externalData: Array<{ path: string; data: Uint8Array }> = [];
    const w = (name: string) => {
      const t = weights.get(name)!;
      if (mode === 'initializers') return g.constant({ type: 'float32', dims: t.dims, data: t.data }, name);
      if (mode === 'inputs') {
        feeds[name] = new ort.Tensor('float32', t.data, t.dims);
        return g.input(name, 'float32', t.dims);
      }
      externalData.push({ path: name, data: new Uint8Array(t.data.buffer) });
      return g.external(name, 'float32', t.dims, name);
    };
    let x = g.input('x', 'float32', ['M', config.hiddenSize]);
    for (let l = 0; l < layers; l++) {
      const gemm = (input: string, m: string) => g.op('Gemm', [input, w(`l${l}.${m}`)], { transB: 1 });
      // Every weight is used once; k and v stay live through a cheap reduction.
      const attn = g.op('Add', [gemm(x, 'q_proj'), x]);
      const kv = g.op('Add', [gemm(x, 'k_proj'), gemm(x, 'v_proj')]);
      const o = g.op('Add', [gemm(attn, 'o_proj'), g.op('ReduceMean', [kv], { axes: [1], keepdims: 1 })]);
      const mlp = g.op('Mul', [gemm(o, 'gate_proj'), gemm(o, 'up_proj')]);
      x = gemm(mlp, 'down_proj');
    }
    g.op('Identity', [x], {}, { outputNames: ['y'] });
    g.output('y', 'float32', ['M', config.hiddenSize]);
    progress(`weight feeding: building the ${mode} session`);
    const session = await ort.InferenceSession.create(g.toBytes(), { ...sessionOptions, externalData });
    sessions.push({ session, feeds });
  }
  const result: Record<FeedingMode, number[]> = { inputs: [], initializers: [], external: [] };
  for (const m of ms) {
    const x = new ort.Tensor('float32', randomF32(m * config.hiddenSize, 3), [m, config.hiddenSize]);
    const best = FEEDING_MODES.map(() => Number.POSITIVE_INFINITY);
    for (let i = 0; i < sessions.length; i++) {
      for (let round = -1; round < 5; round++) {
        const t0 = performance.now();
        await sessions[i].session.run({ ...sessions[i].feeds, x });
        if (round >= 0) best[i] = Math.min(best[i], performance.now() - t0);
      }
    }
    FEEDING_MODES.forEach((mode, i) => {
      result[mode].push(best[i]);
    });
  }
  for (const s of sessions) await s.session.release();
  return result;
}

/** ms of a run that reads 16 floats out of a `mb`-MiB input: a per-run copy would show up here. */
async function largeInputRunMs(mb: number): Promise<number> {
  const rows = Math.floor((mb * 1024 * 1024) / 4 / 2048);
  const g = new GraphBuilder('gather');
  const big = g.input('big', 'float32', [rows, 2048]);
  g.op('Gather', [big, g.input('idx', 'int64', [1])], { axis: 0 }, { outputNames: ['row'] });
  g.output('row', 'float32', [1, 2048]);
  const session = await ort.InferenceSession.create(g.toBytes(), sessionOptions);
  const feeds = {
    big: new ort.Tensor('float32', new Float32Array(rows * 2048), [rows, 2048]),
    idx: new ort.Tensor('int64', BigInt64Array.from([BigInt(rows - 1)]), [1]),
  };
  const ms = await medianMs(() => session.run(feeds), 10, 300);
  await session.release();
  return ms;
}

function weightBytes(weights: ModelWeights): number {
  let bytes = weights.embedTokens.byteLength + weights.finalNorm.byteLength;
  if (weights.lmHead !== weights.embedTokens) bytes += weights.lmHead.byteLength;
  for (const layer of weights.layers) {
    bytes += layer.inputNorm.byteLength + layer.postAttentionNorm.byteLength;
    for (const m of TARGET_MODULES) bytes += layer.linear[m].byteLength;
  }
  return bytes;
}

function stepFlops(config: LlamaConfig, tokens: number, context: number, logitRows: number): number {
  let linear = 0;
  for (const m of TARGET_MODULES) {
    const { inFeatures, outFeatures } = moduleShape(config, m);
    linear += inFeatures * outFeatures;
  }
  const qDim = config.numHeads * config.headDim;
  const perLayer = 2 * tokens * linear + 4 * tokens * context * qDim;
  return config.numLayers * perLayer + 2 * logitRows * config.hiddenSize * config.vocabSize;
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0];
  const spec = { ...TINYLLAMA_SPEC, numLayers };
  progress(`synthetic TinyLlama-shaped weights, ${numLayers} layers, ${threads} threads`);
  const weights = syntheticWeights(spec);
  const rssWeights = process.memoryUsage().rss;
  const config = weights.config;
  const layout = kvLayout(config);

  const adapters = distinctAdapters(config, NUM_ADAPTERS, ADAPTER_RANK);
  const adapterPages = adapterPageCount(config, adapters[0]) * NUM_ADAPTERS;
  const maxBatch = Math.max(...DECODE_BATCHES);
  // Decode holds three modes' sequences at once (base, LoRA, weights-as-inputs base).
  const decodeBlocks = 3 * maxBatch * Math.ceil((DECODE_CONTEXT + decodeSteps + 2) / layout.tokensPerPage);
  const kvPages = (Math.ceil(PROMPT / layout.tokensPerPage) + decodeBlocks) * layout.pagesPerBlock;
  const pool = new PagePool(1 + adapterPages + kvPages, config.hiddenSize);
  progress(
    `pool: ${pool.numPages} pages (${((pool.numPages * pool.pageSize * 4) / 2 ** 20).toFixed(0)} MiB)`,
  );
  const createStart = performance.now();
  const engine = await OnnxEngine.create(weights, pool, {
    threads,
    weightFormat: format,
    ...(args['stack-rows'] === undefined ? {} : { stackRows: Number(args['stack-rows']) }),
  });
  const createMs = performance.now() - createStart;
  const rssEngine = process.memoryUsage().rss;
  const kv = new KvCache(pool, layout);
  const layouts = placeAdapters(engine, pool, config, adapters);

  let nextSeq = 0;
  const seqStep = (
    id: number,
    tokens: number[],
    startPos: number,
    adapter: AdapterLayout | null,
  ): SequenceStep => {
    if (!kv.reserve(id, startPos + tokens.length)) throw new Error('bench pool too small');
    return { seqId: id, tokens, startPos, pageTable: kv.pageTable(id), adapter, logits: 'last' };
  };
  const prompt = (n: number, seed: number) =>
    Array.from({ length: n }, (_, i) => (seed * 131 + i * 17) % config.vocabSize);

  let matmul = Number.NaN;
  let matmulPacked = Number.NaN;
  let matmulMlp = Number.NaN;
  let prefillMs = Number.NaN;
  if (!decodeOnly) {
    progress(`matmul 512x2048x2048`);
    matmul = await matmulGflops(512, 2048, 2048, 'input');
    matmulPacked = await matmulGflops(512, 2048, 2048, 'initializer');
    matmulMlp = await matmulGflops(512, 2048, config.intermediateSize, 'initializer');

    progress(`prefill ${PROMPT} tokens`);
    const prefillId = nextSeq++;
    const prefillPlan = { sequences: [seqStep(prefillId, prompt(PROMPT, 1), 0, null)] };
    prefillMs = await medianMs(() => engine.step(prefillPlan), 3, 2000);
    kv.free(prefillId);
  }
  const prefillGflops = stepFlops(config, PROMPT, PROMPT + layout.tokensPerPage, 1) / (prefillMs * 1e6);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // The same model with weights fed as inputs (no packed copy), for decode on the base model:
  // it shares the pool's bookkeeping and keeps its own page storage.
  const inputsEngine = withInputsMode
    ? await OnnxEngine.create(weights, pool, { threads, weights: 'inputs' })
    : undefined;
  const decodeRows: Array<Record<string, string | number>> = [];
  for (const batch of DECODE_BATCHES) {
    // Base and LoRA steps alternate, so load from elsewhere on the machine hits both alike. The
    // weights-as-inputs engine runs after them, not between: its session's pool threads spin
    // after each run and would slow whichever step came next (by ~30 ms here).
    const variants = [
      { withAdapters: false, eng: engine, interleaved: true },
      { withAdapters: true, eng: engine, interleaved: true },
      ...(inputsEngine ? [{ withAdapters: false, eng: inputsEngine, interleaved: false }] : []),
    ];
    const modes = variants.map(({ withAdapters, eng, interleaved }) => {
      const ids = Array.from({ length: batch }, () => nextSeq++);
      const adapterOf = (i: number) => (withAdapters ? layouts[i % NUM_ADAPTERS] : null);
      let pos = 0;
      const run = async (tokensOf: (id: number) => number[]) => {
        const t0 = performance.now();
        await eng.step({ sequences: ids.map((id, i) => seqStep(id, tokensOf(id), pos, adapterOf(i))) });
        pos += tokensOf(0).length;
        return performance.now() - t0;
      };
      return { ids, run, interleaved, times: [] as number[] };
    });
    progress(`decode batch ${batch}: prefilling ${DECODE_CONTEXT} tokens each, then ${decodeSteps} steps`);
    for (const m of modes) await m.run((id) => prompt(DECODE_CONTEXT, id));
    for (const group of [modes.filter((m) => m.interleaved), modes.filter((m) => !m.interleaved)]) {
      for (let s = -1; s < decodeSteps; s++) {
        for (const m of group) {
          const ms = await m.run((id) => [(id + s + 7) % config.vocabSize]);
          if (s >= 0) m.times.push(ms);
        }
      }
    }
    for (const m of modes) for (const id of m.ids) kv.free(id);
    const base = median(modes[0].times);
    const lora = median(modes[1].times);
    const inputsBase = modes[2] ? median(modes[2].times) : '';
    // Each LoRA step against the base step just before it: the machine's drift over the run
    // (20-30 % within an hour here) moves both alike.
    const pairedOverhead = median(modes[1].times.map((t, i) => t / modes[0].times[i])) - 1;
    decodeRows.push({
      measure: `decode batch ${batch}`,
      base_ms_per_step: base,
      lora_ms_per_step: lora,
      base_tokens_per_s: (1000 * batch) / base,
      lora_tokens_per_s: (1000 * batch) / lora,
      adapter_overhead_pct: (lora / base - 1) * 100,
      paired_overhead_pct: pairedOverhead * 100,
      base_ms_weights_as_inputs: inputsBase,
    });
  }
  await engine.close();
  await inputsEngine?.close();

  const notes: string[] = [
    'adapter_overhead_pct: the median LoRA step over the median base step; paired_overhead_pct: the median of each LoRA step over the base step run just before it (steps interleaved), which the machine drifting during the run moves less.',
  ];
  if (!decodeOnly)
    notes.push(
      `prefill implies ${prefillGflops.toFixed(1)} GFLOP/s (linear layers + attention as computed + one logit row); onnxruntime MatMul 512×2048×2048 alone: ${matmul.toFixed(1)} GFLOP/s with B as an input, ${matmulPacked.toFixed(1)} GFLOP/s with B a prepacked initializer (prefill reaches ${((100 * prefillGflops) / matmulPacked).toFixed(0)}% of the latter); at the MLP's 512×2048×${config.intermediateSize}, prepacked: ${matmulMlp.toFixed(1)} GFLOP/s`,
    );
  if (withInputsMode) {
    progress('weights as inputs vs initializers (2 layers)');
    const feedingM = [1, 8, 32, 512];
    const feeding = await weightFeedingMs(config, 2, feedingM);
    progress('large-input run (zero-copy check)');
    const poolMiB = Math.round((pool.numPages * pool.pageSize * 4) / 2 ** 20);
    const largeMs = await largeInputRunMs(Math.max(256, poolMiB));
    notes.push(
      `2 TinyLlama-width layers of linear Gemms, fastest of 5 runs, ms as inputs / initializers in the model / initializers from host memory (external, the engine's default): ${feedingM.map((m, i) => `M=${m}: ${feeding.inputs[i].toFixed(1)} / ${feeding.initializers[i].toFixed(1)} / ${feeding.external[i].toFixed(1)}`).join('; ')}`,
      `a run that gathers one row of a ${Math.max(256, poolMiB)} MiB input takes ${largeMs.toFixed(3)} ms: inputs are wrapped, not copied (a copy at 10 GB/s would take ${((Math.max(256, poolMiB) * 2 ** 20) / 1e7).toFixed(0)} ms)`,
    );
  }

  const rows: Array<Record<string, string | number>> = decodeOnly
    ? []
    : [
        {
          measure: `prefill ${PROMPT} tokens`,
          base_ms_per_step: prefillMs,
          lora_ms_per_step: '',
          base_tokens_per_s: (1000 * PROMPT) / prefillMs,
          lora_tokens_per_s: '',
          adapter_overhead_pct: '',
          paired_overhead_pct: '',
          base_ms_weights_as_inputs: '',
        },
      ];
  rows.push(...decodeRows);
  writeBenchReport({
    name:
      (format === 'f32' && !decodeOnly
        ? 'onnx-prefill-decode'
        : `onnx-prefill-decode-${format}${decodeOnly ? '-decode' : ''}`) +
      (args['stack-rows'] === undefined ? '' : `-stack${args['stack-rows']}`),
    title: 'onnx engine: prefill and decode',
    context: {
      date: new Date().toISOString(),
      cpu: cpus()[0]?.model ?? 'unknown',
      threads,
      model: `synthetic TinyLlama shape, ${numLayers} of 22 layers, base weights ${format}`,
      adapters: `${NUM_ADAPTERS} × rank ${ADAPTER_RANK}, all 7 modules; batch i uses adapter i mod ${NUM_ADAPTERS}`,
      decode: `${DECODE_CONTEXT}-token context, ${decodeSteps} timed steps`,
      onnxruntime: ort.env.versions.common,
      engine: 'onnx, prepacked weights (default)',
      'engine creation (graph build + session + weight prepacking)': `${(createMs / 1000).toFixed(1)} s`,
      'process memory growth from creating the engine (pool + packed weights)': `${((rssEngine - rssWeights) / 2 ** 20).toFixed(0)} MiB (weights ${(weightBytes(weights) / 2 ** 20).toFixed(0)} MiB, pool ${((pool.numPages * pool.pageSize * 4) / 2 ** 20).toFixed(0)} MiB)`,
      'load average at start (1 min)': loadAtStart.toFixed(2),
      'load average at end (1 min)': loadavg()[0].toFixed(2),
    },
    rows,
    chart: {
      unit: 'tokens/s',
      bars: [
        ...(decodeOnly ? [] : [{ label: `prefill ${PROMPT}`, value: (1000 * PROMPT) / prefillMs }]),
        ...decodeRows.flatMap((r) => [
          { label: `${r.measure} base`, value: Number(r.base_tokens_per_s) },
          { label: `${r.measure} lora`, value: Number(r.lora_tokens_per_s) },
        ]),
      ],
    },
    notes,
  }).forEach((p) => {
    progress(`wrote ${p}`);
  });
}

await main();
