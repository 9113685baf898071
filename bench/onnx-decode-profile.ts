/**
 * Where a decode step of the onnx engine goes (batch 1 by default), on the synthetic TinyLlama-shaped F32
 * checkpoint (written by bench/startup.ts's layout if missing): wall time per step against
 * onnxruntime's own run time (its profiler), onnxruntime's node time by kind (base Gemms, lm_head,
 * attention over the pool, LoRA slot/segment ops, the rest), and the JS feed building alone. Then
 * the spread of decode batch 1 over rounds, each round a fresh sequence.
 *
 *   npx tsx bench/onnx-decode-profile.ts [--layers N] [--threads N] [--rounds N] [--steps N] [--spin] [--format F] [--no-lora] [--batch N] [--adapters N] [--ranks 16]
 *     [--label NAME]
 *
 * --batch N decodes N sequences a step; --adapters N gives sequence i the rank-16 all-module
 * adapter i mod N (0: none), the shape of issue 10's "8 distinct adapters at batch 8"; --ranks 8,16,32,64
 * cycles those ranks over the adapters instead (issue 6's mixed ranks).
 *
 * The report is written as onnx-decode-profile-<label>.{json,md,svg} (label default "current"),
 * so a change can be measured against the run before it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { StepPlan } from '../kernels/engine.js';
import { LoraSlotStack } from '../kernels/onnx/lora-slot-stack.js';
import { DEFAULT_STACK_ROWS, OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { packStep } from '../kernels/onnx/step-feeds.js';
import { decodeWeightBytes, WEIGHT_FORMATS, type WeightFormat } from '../kernels/weight-quantization.js';
import { adapterPageCount } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import { loadModel } from '../model/load-model.js';
import { ropeRotation } from '../model/rope-frequencies.js';
import { TINYLLAMA_SPEC, writeSyntheticModel } from '../model/synthetic.js';
import { distinctAdapters, placeAdapters } from './issue-adapters.js';
import { ReadBandwidthProbe } from './memory-bandwidth.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '7' },
    steps: { type: 'string', default: '16' },
    label: { type: 'string', default: 'current' },
    spin: { type: 'boolean', default: false },
    format: { type: 'string', default: 'f32' },
    'no-lora': { type: 'boolean', default: false },
    batch: { type: 'string', default: '1' },
    adapters: { type: 'string', default: '0' },
    ranks: { type: 'string', default: '16' },
  },
});
const format = args.format as WeightFormat;
if (!WEIGHT_FORMATS.includes(format)) throw new Error(`--format: one of ${WEIGHT_FORMATS.join(', ')}`);
const numLayers = Number(args.layers);
const threads = Number(args.threads);
const rounds = Number(args.rounds);
const steps = Number(args.steps);
const batch = Number(args.batch);
const numAdapters = Number(args.adapters);
if (numAdapters > 0 && args['no-lora']) throw new Error('--adapters needs the LoRA graph: drop --no-lora');
const adapterRanks = args.ranks.split(',').map(Number);
if (adapterRanks.some((r) => !Number.isInteger(r) || r < 1))
  throw new Error(`--ranks: positive integers, not ${args.ranks}`);
const CONTEXT = 64;
const PROFILED_STEPS = 8;

function progress(message: string): void {
  process.stderr.write(`[bench:decode-profile] ${message}\n`);
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: {
    op_name?: string;
    input_type_shape?: Array<Record<string, number[]>>;
    output_type_shape?: Array<Record<string, number[]>>;
  };
}

/** Sessions the engine creates, with onnxruntime's profiler on, so the bench can end their profiles. */
const profiled: ort.InferenceSession[] = [];
const profileDir = mkdtempSync(join(tmpdir(), 'loom-ort-profile-'));
const create = ort.InferenceSession.create.bind(ort.InferenceSession) as (
  bytes: Uint8Array,
  options: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;
let profileNext = false;
(ort.InferenceSession as unknown as { create: typeof create }).create = async (bytes, options) => {
  const session = await create(
    bytes,
    profileNext
      ? { ...options, enableProfiling: true, profileFilePrefix: join(profileDir, 'step') }
      : options,
  );
  if (profileNext) profiled.push(session);
  return session;
};

/**
 * Which part of a decode step a profiled node belongs to, from its op and shapes. A prepacked
 * Gemm lists only its activation input (the weight is a constant): lm_head writes vocab columns.
 */
function kindOf(e: ProfileEvent, hidden: number, vocab: number): string {
  const op = e.args?.op_name ?? '?';
  const shapes = (e.args?.input_type_shape ?? []).map((s) => Object.values(s)[0] ?? []);
  const out = (e.args?.output_type_shape ?? []).map((s) => Object.values(s)[0] ?? []);
  if (op === 'MatMulNBits') return out[0]?.at(-1) === vocab ? 'lm_head Gemm' : 'base linear Gemms';
  if (op === 'Gemm' || op === 'MatMul' || op === 'FusedMatMul' || op === 'FusedGemm') {
    if (shapes.length === 1) return out[0]?.at(-1) === vocab ? 'lm_head Gemm' : 'base linear Gemms';
    if (shapes[0]?.length === 4) return 'attention MatMuls';
    return 'LoRA MatMul/Gemm (slots, segments)';
  }
  // Only LoRA's ops gather and scatter token rows, and only its Transposes are of rank-3 blocks.
  if (op === 'GatherND' || op === 'ScatterND' || op === 'Where') return `LoRA: ${op}`;
  if (op === 'Transpose' && shapes[0]?.length === 3) return 'LoRA: Transpose';
  if (op === 'Gather' && shapes[0]?.length === 2 && shapes[0][1] === hidden && shapes[0][0] !== vocab)
    return 'Gather past K/V from the pool';
  return `other: ${op}`;
}

async function main(): Promise<void> {
  const modelDir = join(process.cwd(), '.cache', 'bench', `tinyllama-f32-${numLayers}l`);
  try {
    readFileSync(join(modelDir, 'model.safetensors.index.json'));
  } catch {
    progress(`writing ${modelDir}`);
    await writeSyntheticModel(modelDir, { ...TINYLLAMA_SPEC, numLayers }, { shards: 2 });
  }
  const model = await loadModel(modelDir);
  const config = model.config;
  const layout = kvLayout(config);
  const blocksPerSeq = Math.ceil((CONTEXT + steps * (rounds + 1) + 8) / layout.tokensPerPage);
  const adapters = distinctAdapters(config, numAdapters, adapterRanks, 'profile');
  const adapterPages = adapters.reduce((n, a) => n + adapterPageCount(config, a), 0);
  const pool = new PagePool(
    1 + adapterPages + 2 * batch * blocksPerSeq * layout.pagesPerBlock,
    config.hiddenSize,
  );
  const kv = new KvCache(pool, layout);
  profileNext = true;
  const started = performance.now();
  const engine = await OnnxEngine.create(model.weights, pool, {
    threads,
    spinThreads: args.spin,
    weightFormat: format,
    ...(args['no-lora'] ? { loraModules: [] } : {}),
  });
  progress(`engine ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  profileNext = false;
  const layouts = placeAdapters(engine, pool, config, adapters);

  let nextId = 0;
  const prompt = (seed: number) =>
    Array.from({ length: CONTEXT }, (_, i) => (seed * 131 + i * 17) % config.vocabSize);
  const stepOf = (ids: number[], tokensOf: (i: number) => number[], pos: number): StepPlan => ({
    sequences: ids.map((seqId, i) => {
      const tokens = tokensOf(i);
      if (!kv.reserve(seqId, pos + tokens.length)) throw new Error('bench pool too small');
      return {
        seqId,
        tokens,
        startPos: pos,
        pageTable: kv.pageTable(seqId),
        adapter: layouts.length > 0 ? layouts[i % layouts.length] : null,
        logits: 'last' as const,
      };
    }),
  });
  /** `batch` fresh sequences: a 64-token prefill each, then `n` timed decode steps of all of them. */
  const decodeRun = async (n: number): Promise<number[]> => {
    const ids = Array.from({ length: batch }, () => nextId++);
    await engine.step(stepOf(ids, (i) => prompt(ids[i]), 0));
    const times: number[] = [];
    for (let s = 0; s < n; s++) {
      const plan = stepOf(ids, (i) => [(ids[i] * 7 + s) % config.vocabSize], CONTEXT + s);
      const t0 = performance.now();
      await engine.step(plan);
      times.push(performance.now() - t0);
    }
    for (const id of ids) kv.free(id);
    return times;
  };

  // Profiled steps: the first run after the prefill warms up, then PROFILED_STEPS are read.
  const profiledWall = (await decodeRun(PROFILED_STEPS + 1)).slice(1);
  for (const s of profiled) s.endProfiling();
  const file = readdirSync(profileDir).find((f) => f.endsWith('.json'));
  const events = (JSON.parse(readFileSync(join(profileDir, file!), 'utf8')) as ProfileEvent[]).filter(
    (e) => typeof e.dur === 'number',
  );
  if (process.env.KEEP_PROFILE) process.stderr.write(`${profileDir}\n`);
  else rmSync(profileDir, { recursive: true, force: true });
  // The last PROFILED_STEPS runs are the decode steps (before them: the prefill and the warm-up
  // step). Nodes belong to the run whose time span holds them (an If runs a different number of
  // nodes in a prefill and a decode step).
  const decodeRunEvents = events.filter((e) => e.name === 'model_run').slice(-PROFILED_STEPS);
  const decodeRuns = decodeRunEvents.map((e) => e.dur / 1000);
  const runOf = (e: ProfileEvent) => decodeRunEvents.findIndex((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur);
  // An If's time is its branch's nodes, which are listed too: counting it would count them twice.
  const decodeNodes = events.filter(
    (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name !== 'If' && runOf(e) >= 0,
  );
  // Per kind: its time in each profiled step, then the median step (other tenants of the machine
  // preempt single nodes for tens of ms; a mean would report them).
  const perStep = new Map<string, { ms: number[]; nodes: number }>();
  for (const e of decodeNodes) {
    const kind = kindOf(e, config.hiddenSize, config.vocabSize);
    const k = perStep.get(kind) ?? { ms: new Array<number>(PROFILED_STEPS).fill(0), nodes: 0 };
    k.ms[runOf(e)] += e.dur / 1000;
    k.nodes += 1 / PROFILED_STEPS;
    perStep.set(kind, k);
  }
  const byKind = new Map([...perStep].map(([kind, k]) => [kind, { ms: median(k.ms), nodes: k.nodes }]));
  const wallMedian = median(profiledWall);
  const runMedian = median(decodeRuns);
  const nodesMs = [...byKind.values()].reduce((a, k) => a + k.ms, 0);

  // The JS half of a step: packing the plan's feeds, alone.
  const stack = new LoraSlotStack(
    new Float32Array(pool.numPages * pool.pageSize),
    config,
    DEFAULT_STACK_ROWS,
  );
  const rope = ropeRotation(config);
  const packIds = Array.from({ length: batch }, () => nextId++);
  const packPlan = stepOf(packIds, () => [5], CONTEXT);
  const packTimes: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    packStep(packPlan, config, layout, rope, stack, TARGET_MODULES);
    packTimes.push(performance.now() - t0);
  }
  for (const id of packIds) kv.free(id);
  const packMs = median(packTimes);

  const rows: Array<Record<string, string | number>> = [
    { part: 'step wall time (engine.step), median', 'ms per step': wallMedian, share: '100 %', nodes: '' },
    {
      part: "onnxruntime's run (model_run), median",
      'ms per step': runMedian,
      share: pct(runMedian, wallMedian),
      nodes: '',
    },
    {
      part: '  of which kernels (sum of node times)',
      'ms per step': nodesMs,
      share: pct(nodesMs, wallMedian),
      nodes: Math.round(decodeNodes.length / PROFILED_STEPS),
    },
    ...[...byKind.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, 14)
      .map(([kind, k]) => ({
        part: `    ${kind}`,
        'ms per step': k.ms,
        share: pct(k.ms, wallMedian),
        nodes: Math.round(k.nodes),
      })),
    {
      part: '  of which between kernels (run − node times)',
      'ms per step': runMedian - nodesMs,
      share: pct(runMedian - nodesMs, wallMedian),
      nodes: '',
    },
    {
      part: 'outside the run: feeds, binding, new K/V into pages',
      'ms per step': wallMedian - runMedian,
      share: pct(wallMedian - runMedian, wallMedian),
      nodes: '',
    },
    {
      part: '  of which packStep (JS feeds) alone',
      'ms per step': packMs,
      share: pct(packMs, wallMedian),
      nodes: '',
    },
  ];

  progress(`spread: ${rounds} rounds of ${steps} decode steps`);
  const roundMedians: number[] = [];
  const all: number[] = [];
  // The bandwidth just before each round: the bound moves with the machine's other tenants.
  const probe = await ReadBandwidthProbe.create(threads);
  const gbps: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gbps.push(await probe.best(3));
    const times = await decodeRun(steps);
    roundMedians.push(median(times));
    all.push(...times);
  }
  await probe.close();
  await engine.close();
  const boundMs = (weightBytesPerStep: number) => weightBytesPerStep / (median(gbps) * 1e6);
  const sorted = [...roundMedians].sort((a, b) => a - b);
  const allSorted = [...all].sort((a, b) => a - b);
  const spreadRows = [
    {
      measure: `decode batch ${batch}, median of each round's ${steps} steps, over ${rounds} rounds`,
      min: sorted[0],
      median: sorted[Math.floor(sorted.length / 2)],
      max: sorted[sorted.length - 1],
    },
    {
      measure: `decode batch ${batch}, every step of every round (${all.length})`,
      min: allSorted[0],
      median: allSorted[Math.floor(allSorted.length / 2)],
      max: allSorted[allSorted.length - 1],
    },
  ];
  // The adapters' A and B rows (f32) are read every step too, once per distinct adapter.
  const rowBytes =
    config.numLayers *
    TARGET_MODULES.reduce((sum, m) => {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      return sum + (inFeatures + outFeatures) * 4;
    }, 0);
  const loraBytes = adapters.reduce((sum, a) => sum + a.rank * rowBytes, 0);
  const weightBytes = decodeWeightBytes(config, format) + loraBytes;
  writeBenchReport({
    name: `onnx-decode-profile-${args.label}`,
    title: `onnx engine: where a batch-${batch} decode step goes (${args.label})`,
    context: {
      ...machineContext(),
      model: `synthetic TinyLlama shape, ${numLayers} of 22 layers, ${format === 'f32' ? 'F32 weights mapped from safetensors, prepacked' : `base weights ${format} (MatMulNBits / widened Gemm), encoded at load`}`,
      threads,
      'intra-op threads spin': args.spin ? 'yes (onnxruntime default)' : 'no (intra_op.allow_spinning 0)',
      'LoRA in the step graph': args['no-lora']
        ? 'none (a server without an adapter source)'
        : `all modules, stacked slot rows per module and layer: ${DEFAULT_STACK_ROWS}`,
      batch: `${batch} sequences a step`,
      adapters:
        numAdapters > 0
          ? `${numAdapters} × rank ${args.ranks}, all 7 modules; sequence i uses adapter i mod ${numAdapters}`
          : 'none',
      'graph inputs': engine ? (profiled[0]?.inputNames.length ?? 0) : 0,
      context: `${CONTEXT}-token prompt, then decode`,
      'weights read per step': `${(weightBytes / 1e9).toFixed(2)} GB (linear + lm_head, ${format}${numAdapters > 0 ? `; ${(loraBytes / 1e9).toFixed(2)} GB of it the adapters' f32 rows` : ''})`,
      onnxruntime: ort.env.versions.common,
    },
    rows,
    tables: [{ title: 'spread (fresh sequence per round)', rows: spreadRows }],
    chart: {
      unit: 'ms per step',
      bars: rows
        .filter((r) => String(r.part).startsWith('    '))
        .map((r) => ({ label: String(r.part).trim(), value: Number(r['ms per step']) })),
    },
    notes: [
      `memory read bandwidth before the spread's rounds (bench/memory-bandwidth.ts), min/median/max: ${Math.min(...gbps).toFixed(1)} / ${median(gbps).toFixed(1)} / ${Math.max(...gbps).toFixed(1)} GB/s; at the median, those ${(weightBytes / 1e9).toFixed(2)} GB take ${boundMs(weightBytes).toFixed(1)} ms: the bound for one step, ${((100 * boundMs(weightBytes)) / sorted[Math.floor(sorted.length / 2)]).toFixed(0)} % of the spread's median round`,
      "an If's own cost (choosing and entering a branch) is in 'between kernels'; its branch's nodes are counted under their kinds",
      'node kinds are told apart by op and input shapes: lm_head is the Gemm over a [vocab, hidden] weight, base linear Gemms have both weight dims ≥ 256, attention MatMuls have rank-3+ inputs, the remaining MatMul/Gemms are LoRA (slots and segments)',
    ],
  }).forEach((p) => {
    progress(`wrote ${p}`);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function pct(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(0)} %`;
}

await main();
