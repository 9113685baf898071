/**
 * Scaling out on paper: N Loom replicas behind a router, on an S-LoRA-style trace (power-law
 * adapter popularity, Gamma arrivals), simulated event by event with one replica's step costs
 * as measured by bench/onnx-prefill-decode.ts and an adapter copy timed here. The offered load
 * grows with N (the same rate per replica), so a router that scales keeps throughput per replica
 * and adapter loads per request flat. Routers: round-robin, the inference gateway's picker on
 * vLLM's activity labels, and the same picker on Loom's residency labels.
 *
 *   npx tsx bench/replica-scaling.ts [--replicas 1,2,4,8] [--adapters 100] [--alpha 0.3] \
 *     [--rate-per-replica 0.3] [--duration 600] [--max-loras 8] [--max-batch 32] [--cv 1]
 *     [--adapter-load-ms MS]   (default: a host → pool copy timed here; a load from disk costs more)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import { syntheticConfig, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { mulberry32, sequenceSeed } from '../scheduler/prng.js';
import { ROUTER_KINDS, type SimRequest, simulateCluster } from './replicas/cluster-sim.js';
import { stepCostsFromOnnxBench } from './replicas/step-costs.js';
import { type ChartBar, type LineSeries, RESULTS_DIR, svgLineChart, writeBenchReport } from './report.js';
import { assignAdapters } from './serve/adapter-assignment.js';
import { arrivalOffsets } from './serve/arrivals.js';
import { uniformInt } from './serve/random-dataset.js';
import { mean, percentile } from './serve/statistics.js';

const { values: args } = parseArgs({
  options: {
    replicas: { type: 'string', default: '1,2,4,8' },
    adapters: { type: 'string', default: '100' },
    alpha: { type: 'string', default: '0.3' },
    'rate-per-replica': { type: 'string', default: '0.3' },
    duration: { type: 'string', default: '600' },
    'max-loras': { type: 'string', default: '8' },
    'max-batch': { type: 'string', default: '32' },
    cv: { type: 'string', default: '1' },
    'adapter-rank': { type: 'string', default: '16' },
    seed: { type: 'string', default: '42' },
    'adapter-load-ms': { type: 'string' },
  },
});
const replicaCounts = args.replicas.split(',').map(Number);
const numAdapters = Number(args.adapters);
const alpha = Number(args.alpha);
const ratePerReplica = Number(args['rate-per-replica']);
const duration = Number(args.duration);
const maxLoras = Number(args['max-loras']);
const maxBatch = Number(args['max-batch']);
const cv = Number(args.cv);
const rank = Number(args['adapter-rank']);
const seed = Number(args.seed);
for (const [name, value] of Object.entries({
  numAdapters,
  alpha,
  ratePerReplica,
  duration,
  maxLoras,
  maxBatch,
  cv,
  rank,
})) {
  if (!(value > 0)) throw new Error(`--${name} must be > 0, got ${value}`);
}
if (replicaCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--replicas: ${args.replicas}`);

/** Host → pool copy of one TinyLlama-shaped rank-r adapter on all 7 modules, timed on this machine. */
function timeAdapterCopyMs(): { ms: number; bytes: number } {
  const config = syntheticConfig(TINYLLAMA_SPEC);
  const perLayer = TARGET_MODULES.reduce((sum, m) => {
    const { inFeatures, outFeatures } = moduleShape(config, m);
    return sum + rank * (inFeatures + outFeatures);
  }, 0);
  const elements = perLayer * config.numLayers;
  const source = new Float32Array(elements).fill(1);
  const pool = new Float32Array(elements);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    pool.set(source);
    best = Math.min(best, performance.now() - start);
  }
  return { ms: best, bytes: elements * 4 };
}

const onnxResults = join(RESULTS_DIR, 'onnx-prefill-decode.json');
if (!existsSync(onnxResults))
  throw new Error(`${onnxResults} is missing: run npx tsx bench/onnx-prefill-decode.ts first`);
const copy = timeAdapterCopyMs();
const loadMs = args['adapter-load-ms'] === undefined ? copy.ms : Number(args['adapter-load-ms']);
if (!(loadMs >= 0)) throw new Error(`--adapter-load-ms must be ≥ 0, got ${args['adapter-load-ms']}`);
const costs = stepCostsFromOnnxBench(onnxResults, loadMs);

/** S-LoRA's trace: adapter = floor(power(α)·n), lengths uniform in [8, 128], Gamma gaps of cv. */
function trace(numReplicas: number): SimRequest[] {
  const rate = ratePerReplica * numReplicas;
  const count = Math.round(rate * duration);
  const stream = (k: number) => mulberry32(sequenceSeed(seed, k));
  const burstiness = 1 / (cv * cv);
  const offsets = arrivalOffsets(stream(0), count, rate, burstiness);
  const names = Array.from({ length: numAdapters }, (_, i) => `adapter-${i}`);
  const adapters = assignAdapters(stream(1), names, count, 'power-law', alpha);
  const lengths = stream(2);
  return offsets.map((arrival, id) => ({
    id,
    adapter: adapters[id],
    arrival,
    promptLen: uniformInt(lengths, 8, 128),
    outputLen: uniformInt(lengths, 8, 128),
  }));
}

function progress(message: string): void {
  process.stderr.write(`[replica-scaling] ${message}\n`);
}

const rows: Array<Record<string, string | number>> = [];
const throughputSeries: LineSeries[] = ROUTER_KINDS.map((router) => ({ label: router, points: [] }));
const loadsSeries: LineSeries[] = ROUTER_KINDS.map((router) => ({ label: router, points: [] }));
const bars: ChartBar[] = [];
for (const numReplicas of replicaCounts) {
  const requests = trace(numReplicas);
  ROUTER_KINDS.forEach((router, r) => {
    const { outcomes, numLoads } = simulateCluster(requests, {
      numReplicas,
      router,
      maxBatch,
      maxLoras,
      costs,
      seed,
    });
    const span = Math.max(...outcomes.map((o) => o.finish)) - Math.min(...requests.map((q) => q.arrival));
    const tokens = outcomes.reduce((sum, o) => sum + o.outputLen, 0);
    const ttft = outcomes.map((o) => o.firstToken - o.arrival);
    const e2e = outcomes.map((o) => o.finish - o.arrival);
    const throughput = outcomes.length / span;
    rows.push({
      replicas: numReplicas,
      router,
      requests: outcomes.length,
      'req/s': throughput,
      'req/s per replica': throughput / numReplicas,
      'out tok/s': tokens / span,
      'adapter loads / request': numLoads / outcomes.length,
      'mean TTFT s': mean(ttft),
      'p99 TTFT s': percentile(ttft, 99),
      'mean E2E s': mean(e2e),
    });
    throughputSeries[r].points.push([numReplicas, throughput]);
    loadsSeries[r].points.push([numReplicas, numLoads / outcomes.length]);
    bars.push({ label: `N=${numReplicas} ${router}`, value: numLoads / outcomes.length });
    progress(
      `N=${numReplicas} ${router}: ${throughput.toFixed(3)} req/s, ${(numLoads / outcomes.length).toFixed(3)} loads/request`,
    );
  });
}

const files = writeBenchReport({
  name: 'replica-scaling',
  title: 'Replicas behind a router: simulated scaling on an S-LoRA trace',
  context: {
    step_costs: costs.source,
    decode_ms_by_batch: costs.decodeMs.map(([b, ms]) => `${b}: ${ms.toFixed(1)}`).join(', '),
    prefill_ms_per_token: costs.prefillMsPerToken.toFixed(2),
    adapter_copy: `${(copy.bytes / 2 ** 20).toFixed(1)} MiB (TinyLlama shape, rank ${rank}, 7 modules) in ${copy.ms.toFixed(2)} ms, timed here`,
    adapter_load_ms: `${loadMs.toFixed(2)}${args['adapter-load-ms'] === undefined ? ' (the copy)' : ' (--adapter-load-ms)'}`,
    adapters: `${numAdapters}, power law alpha ${alpha}`,
    arrivals: `${ratePerReplica} req/s per replica, Gamma cv ${cv}, ${duration} s`,
    lengths: 'prompt and output uniform in [8, 128]',
    replica: `max batch ${maxBatch}, max resident adapters ${maxLoras}, FCFS, LRU eviction of idle adapters`,
    seed,
    date: new Date().toISOString(),
  },
  rows,
  chart: { unit: 'adapter loads per request', bars },
  notes: [
    'gateway = the endpoint picker of deploy/kubernetes (queue + KV-cache + LoRA-affinity scorers) reading vLLM labels (adapters running or waiting); residency = the same reading loom_lora_adapter_loaded.',
    'A simulation with measured step costs, not a measurement of a cluster: no network, no metric staleness, one engine per replica as bench/onnx-prefill-decode.ts measured it.',
  ],
  plots: [
    {
      name: 'throughput',
      svg: svgLineChart(
        'Throughput vs replicas (offered load grows with N)',
        { x: 'replicas', y: 'completed req/s' },
        throughputSeries,
      ),
    },
    {
      name: 'adapter-loads',
      svg: svgLineChart(
        'Adapter loads per request vs replicas',
        { x: 'replicas', y: 'loads per request' },
        loadsSeries,
      ),
    },
  ],
});
progress(`wrote ${files.join(', ')}`);
