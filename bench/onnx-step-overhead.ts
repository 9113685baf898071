/**
 * The onnx engine's fixed cost per step: a decode step at batch 1 on a model of TinyLlama's depth
 * (22 layers) but tiny widths, so that compute is negligible and what is left is per-run and
 * per-node cost (feeds and their binding, nodes, branches). Three cases, interleaved step by step:
 * the graph built without any LoRA node or input (`loraModules: []`, the floor), the serving graph
 * (LoRA on all 7 modules) running a step without adapters, and the same with one rank-8 adapter.
 * The first two differ only by the LoRA machinery a base step carries. A fourth case runs the
 * serving graph's step on a worker thread (OnnxWorkerEngine, the server's --onnx-thread worker):
 * over the second case, what the crossing between threads costs a step.
 *
 * With --shape tinyllama the model has TinyLlama's widths too: what that machinery costs a real
 * decode step (the floor is the graph a server with no adapter source runs, kernels/engine-factory.ts).
 *
 *   npx tsx bench/onnx-step-overhead.ts [--steps 400] [--threads 2] [--format f32|int8|...] [--shape tiny|tinyllama]
 */
import { parseArgs } from 'node:util';
import type { StepPlan } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { OnnxWorkerEngine } from '../kernels/onnx/onnx-worker-engine.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../kernels/weight-quantization.js';
import { adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '400' },
    threads: { type: 'string', default: '2' },
    format: { type: 'string', default: 'f32' },
    shape: { type: 'string', default: 'tiny' },
  },
});
if (args.shape !== 'tiny' && args.shape !== 'tinyllama') throw new Error('--shape: tiny or tinyllama');
const fullWidth = args.shape === 'tinyllama';
const STEPS = Number(args.steps);
const format = args.format as WeightFormat;
if (!WEIGHT_FORMATS.includes(format)) throw new Error(`--format: one of ${WEIGHT_FORMATS.join(', ')}`);
const CONTEXT = 16;
// TinyLlama's depth and head layout at 1/32 of its widths (blocks of 32 for int4/int8 codes).
const SPEC = fullWidth
  ? TINYLLAMA_SPEC
  : {
      ...TINYLLAMA_SPEC,
      hiddenSize: 64,
      intermediateSize: 160,
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 256,
    };

function progress(message: string): void {
  process.stderr.write(`[onnx-step-overhead] ${message}\n`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const weights = syntheticWeights(SPEC);
  const config = weights.config;
  const layout = kvLayout(config);
  const adapter = syntheticAdapter(config, {
    name: 'r8',
    rank: 8,
    alpha: 16,
    targetModules: [...TARGET_MODULES],
    seed: 5,
  });
  const pool = new PagePool(
    1 + adapterPageCount(config, adapter) + 256 * layout.pagesPerBlock,
    config.hiddenSize,
  );
  const threads = Number(args.threads);
  progress(`engines: ${config.numLayers} layers, hidden ${config.hiddenSize}, ${format}, ${threads} threads`);
  const floor = await OnnxEngine.create(weights, pool, { threads, weightFormat: format, loraModules: [] });
  const serving = await OnnxEngine.create(weights, pool, { threads, weightFormat: format });
  const onWorker = await OnnxWorkerEngine.create(weights, pool, { threads, weightFormat: format });
  const adapterLayout = layoutAdapter(
    config,
    adapter,
    pool.allocate(adapterPageCount(config, adapter), 'adapter'),
  );
  serving.writeAdapter(adapterLayout, storeAdapter(adapter));
  const kv = new KvCache(pool, layout);
  const cases = [
    { label: 'graph without LoRA nodes (floor)', engine: floor, withAdapter: false },
    { label: 'serving graph, step without adapters', engine: serving, withAdapter: false },
    { label: 'serving graph, one rank-8 adapter', engine: serving, withAdapter: true },
    {
      label: 'serving graph on a worker thread, step without adapters',
      engine: onWorker,
      withAdapter: false,
    },
  ];
  const plan = (seqId: number, tokens: number[], startPos: number, withAdapter: boolean): StepPlan => ({
    sequences: [
      {
        seqId,
        tokens,
        startPos,
        pageTable: kv.pageTable(seqId),
        adapter: withAdapter ? adapterLayout : null,
        logits: 'last',
      },
    ],
  });
  const times = cases.map((): number[] => []);
  for (const [i, c] of cases.entries()) {
    if (!kv.reserve(i, CONTEXT + 1)) throw new Error('the pool holds no KV for the context');
    const prompt = Array.from({ length: CONTEXT }, (_, k) => (k * 7 + i) % config.vocabSize);
    await c.engine.step(plan(i, prompt, 0, c.withAdapter));
  }
  // Warm-up, then the cases in turn, step by step: the same token at the same position each time.
  for (let s = -20; s < STEPS; s++)
    for (const [i, c] of cases.entries()) {
      const started = performance.now();
      await c.engine.step(plan(i, [i + 1], CONTEXT, c.withAdapter));
      if (s >= 0) times[i].push(performance.now() - started);
    }
  await floor.close();
  await serving.close();
  await onWorker.close();

  const floorMs = median(times[0]);
  const rows = cases.map((c, i) => ({
    case: c.label,
    'median ms/step': Number(median(times[i]).toFixed(3)),
    'min ms/step': Number(Math.min(...times[i]).toFixed(3)),
    'over the floor, ms': Number((median(times[i]) - floorMs).toFixed(3)),
  }));
  for (const r of rows) progress(`${r.case}: ${r['median ms/step']} ms (+${r['over the floor, ms']})`);
  const files = writeBenchReport({
    name: `onnx-step-overhead${format === 'f32' ? '' : `-${format}`}${fullWidth ? '-tinyllama' : ''}`,
    title: fullWidth
      ? "onnx engine: what the LoRA machinery costs a decode step (TinyLlama's shape)"
      : "onnx engine: a step's fixed cost (22 layers, compute negligible)",
    context: {
      ...machineContext(),
      model: `synthetic, TinyLlama's 22 layers at hidden ${config.hiddenSize}, intermediate ${config.intermediateSize}, vocab ${config.vocabSize}${fullWidth ? " (TinyLlama's shape)" : ''}`,
      'base weights': format,
      threads,
      'steps per case': STEPS,
      context: `${CONTEXT} tokens, decode batch 1`,
    },
    rows,
    chart: {
      unit: 'ms per decode step (median)',
      bars: rows.map((r) => ({ label: r.case, value: r['median ms/step'] })),
    },
    notes: [
      'Wall time of engine.step per step; the cases interleaved step by step in one process, so load from elsewhere hits them alike.',
      fullWidth
        ? 'At these widths the floor is the model itself; the serving graph adds its LoRA machinery (the If per group of modules, its pass-through copies, the stack and segment inputs bound every run).'
        : "At these widths every kernel is a few microseconds: the times are what each run costs whatever the model's size (feeds and their binding, nodes, If branches, the JS around the run).",
      'over the floor: what the LoRA machinery costs a step that has no adapter, and one that has one.',
      "on a worker thread: the serving graph's step through OnnxWorkerEngine (the server's default, --onnx-thread worker); its difference from the second row is what the crossing costs a step (the plan posted, the logits moved back, a turn of the event loop before the step, two thread wake-ups).",
    ],
  });
  progress(`wrote ${files.join(', ')}`);
}

await main();
