/**
 * Thousands of adapters (S-LoRA's scalability experiment, in process): the same seeded trace is
 * served with n = 1 … 2,000 registered adapters, adapter popularity drawn as S-LoRA draws it
 * (adapter = floor(power(α) · n), α = 1), ranks uniform 8 or mixed 8–64, LoRA on all 7 modules.
 * Reports throughput against n = 1, the prefetch hit rate, the share of the run the step loop spent
 * waiting on adapter copies, and start-up time and RSS against n (each measured in a fresh process).
 *
 *   npx tsx bench/adapter-scaling.ts [--requests 256] [--ns 1,10,100,1000,2000] [--max-loras 64]
 *                                    [--request-rate inf|R] [--engine onnx] [--model default|tinyllama] [--quick]
 *                                    [--pool-size 1GiB] [--skip-startup] [--onnx-thread worker|main]
 *                                    [--adapter-dtype F32|F16|BF16] [--warm-rounds K [--rounds-only]]
 *                                    [--name adapter-scaling]
 *
 * --warm-rounds K also serves every n's workload in turns, K rounds, on one engine with the largest n
 * registered (interleavedWarmRounds); --rounds-only reports only that.
 * --skip-startup leaves out the fresh-process start-up probes (a TinyLlama-shaped model loads again in
 * each); --pool-size must hold max-num-seqs distinct adapters besides the KV cache.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type EngineChoice, ONNX_THREAD_CHOICES, type OnnxThreadChoice } from '../kernels/engine-factory.js';
import type { TensorDtype } from '../model/float-convert.js';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import { DEFAULT_SPEC, syntheticConfig, TINYLLAMA_SPEC, writeSyntheticModel } from '../model/synthetic.js';
import { LlmEngine, type LlmEngineOptions } from '../scheduler/llm-engine.js';
import { mulberry32 } from '../scheduler/prng.js';
import { greedySampling } from '../scheduler/request.js';
import { machineContext, writeBenchReport } from './report.js';
import { percentile, spread } from './serve/statistics.js';
import { adapterFolder, DISTINCT_FILES, MIXED_RANKS, type RankMix } from './slora/adapter-folders.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '256' },
    ns: { type: 'string', default: '1,10,100,1000,2000' },
    'max-loras': { type: 'string', default: '256' },
    'max-cpu-loras': { type: 'string', default: 'all' },
    'max-num-seqs': { type: 'string', default: '32' },
    engine: { type: 'string', default: 'onnx' },
    model: { type: 'string', default: 'default' },
    seed: { type: 'string', default: '1' },
    name: { type: 'string', default: 'adapter-scaling' },
    quick: { type: 'boolean', default: false },
    'request-rate': { type: 'string', default: 'inf' },
    'startup-probe': { type: 'string' },
    'pool-size': { type: 'string', default: '1GiB' },
    'skip-startup': { type: 'boolean', default: false },
    mixes: { type: 'string', default: 'uniform,mixed' },
    'onnx-thread': { type: 'string', default: 'worker' },
    'adapter-dtype': { type: 'string', default: 'F32' },
    'warm-rounds': { type: 'string', default: '0' },
    'rounds-only': { type: 'boolean', default: false },
  },
});

const ALPHA = 1;
const ADAPTER_DTYPES: TensorDtype[] = ['F32', 'F16', 'BF16'];
const adapterDtype = args['adapter-dtype'] as TensorDtype;
if (!ADAPTER_DTYPES.includes(adapterDtype))
  throw new Error(`--adapter-dtype: one of ${ADAPTER_DTYPES.join(', ')}, not ${adapterDtype}`);
const warmRounds = Number(args['warm-rounds']);
if (!Number.isInteger(warmRounds) || warmRounds < 0)
  throw new Error(`--warm-rounds: a whole number of rounds, not ${args['warm-rounds']}`);
if (args['rounds-only'] && warmRounds === 0) throw new Error('--rounds-only needs --warm-rounds K');
const onnxThread = args['onnx-thread'] as OnnxThreadChoice;
if (!ONNX_THREAD_CHOICES.includes(onnxThread))
  throw new Error(`--onnx-thread: one of ${ONNX_THREAD_CHOICES.join(', ')}, not ${onnxThread}`);

function progress(message: string): void {
  process.stderr.write(`[adapter-scaling] ${message}\n`);
}

function engineOptions(modelDir: string, loraDir: string): LlmEngineOptions {
  return {
    modelDir,
    servedModelName: null,
    loraModules: [],
    loraDir,
    maxModelLen: 512,
    maxNumSeqs: Number(args['max-num-seqs']),
    maxNumBatchedTokens: 2048,
    engine: args.engine as EngineChoice,
    poolSize: args['pool-size'],
    chatTemplateFile: null,
    seed: 1,
    maxLoras: Number(args['max-loras']),
    // S-LoRA keeps every adapter in host memory and copies to the device on demand.
    maxCpuLoras: args['max-cpu-loras'] === 'all' ? 100_000 : Number(args['max-cpu-loras']),
    onnxThread,
    // The warm run repeats the cold run's prompts under the same adapters: with the prefix cache
    // it would skip their prefill, and the warm/cold ratio would measure that, not adapter loading.
    enablePrefixCaching: false,
  };
}

/** Child mode: start an engine over `loraDir`, print start-up seconds and RSS, exit. */
async function startupProbe(modelDir: string, loraDir: string): Promise<void> {
  const started = performance.now();
  const engine = await LlmEngine.create(engineOptions(modelDir, loraDir), { info: () => {} });
  const seconds = (performance.now() - started) / 1000;
  const rss = process.memoryUsage().rss;
  const registered = engine.stats().numRegisteredAdapters;
  await engine.close();
  process.stdout.write(`${JSON.stringify({ seconds, rss, registered })}\n`);
}

interface TracedRequest {
  /** Seconds after the start (Poisson arrivals; all 0 at an infinite rate). */
  arrival: number;
  /** The adapter is floor(u · n): one trace serves every n. */
  u: number;
  prompt: number[];
  maxTokens: number;
}

function trace(
  seed: number,
  numRequests: number,
  vocabSize: number,
  quick: boolean,
  rate: number,
): TracedRequest[] {
  const random = mulberry32(seed);
  const [inLo, inHi, outLo, outHi] = quick ? [8, 32, 8, 32] : [8, 128, 8, 128];
  const uniform = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  let clock = 0;
  return Array.from({ length: numRequests }, () => {
    if (Number.isFinite(rate)) clock += -Math.log(1 - random()) / rate;
    return {
      arrival: clock,
      // numpy's power(a) is U^(1/a); S-LoRA picks adapter floor(power(α) · n).
      u: random() ** (1 / ALPHA),
      prompt: Array.from({ length: uniform(inLo, inHi) }, () => uniform(3, vocabSize - 1)),
      maxTokens: uniform(outLo, outHi),
    };
  });
}

const sleepUntil = (started: number, seconds: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, started + seconds * 1000 - performance.now())));

/** Start-up seconds and RSS of an engine over `loraDir`, in a fresh process. */
function startupInChild(modelDir: string, loraDir: string): { seconds: number; rss: number } {
  const output = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/adapter-scaling.ts',
      '--startup-probe',
      `${modelDir}|${loraDir}`,
      '--engine',
      args.engine,
      '--max-loras',
      args['max-loras'],
      '--max-cpu-loras',
      args['max-cpu-loras'],
      '--pool-size',
      args['pool-size'],
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(output) as { seconds: number; rss: number };
}

const rankLabel = (mix: RankMix) => (mix === 'uniform' ? 'uniform 8' : 'mixed 8–64');

/** Serves `requests` on `engine`, each request's adapter floor(u · n) of `names`; tokens and seconds. */
async function runTrace(engine: LlmEngine, names: string[], n: number, requests: TracedRequest[]) {
  const started = performance.now();
  let tokens = 0;
  await Promise.all(
    requests.map(async (r, i) => {
      if (r.arrival > 0) await sleepUntil(started, r.arrival);
      const stream = engine.submit({
        requestId: `r${i}`,
        promptTokens: r.prompt,
        adapter: names[Math.min(n - 1, Math.floor(r.u * n))],
        sampling: greedySampling(r.maxTokens, { ignoreEos: true }),
      });
      for await (const _ of stream);
      tokens += stream.completionTokens;
    }),
  );
  return { seconds: (performance.now() - started) / 1000, tokens };
}

/**
 * Warm throughput of every n measured in turns on one engine: a shared machine's speed drifts by
 * more than the gap between n = 1 and n = 2,000 over the minutes between two engines' runs, so
 * each round serves every n's workload back to back on one engine with the largest n registered
 * (the workload of n uses the first n adapters; the step's cost depends on the adapters it runs,
 * not on how many are registered). One untimed pass at the largest n first puts the trace's
 * adapters in host RAM, as in the warm runs above.
 */
async function interleavedWarmRounds(
  modelDir: string,
  loraDir: string,
  ns: number[],
  rounds: number,
  requests: TracedRequest[],
  label: string,
) {
  const engine = await LlmEngine.create(engineOptions(modelDir, loraDir), { info: () => {} });
  try {
    const names = engine.adapters.list().map((a) => a.name);
    const largest = Math.max(...ns);
    if (names.length !== largest) throw new Error(`expected ${largest} adapters, found ${names.length}`);
    progress(`${label}: interleaved rounds: untimed pass at n=${largest}`);
    await runTrace(engine, names, largest, requests);
    const rates = new Map<number, number[]>(ns.map((n) => [n, []]));
    for (let round = 0; round < rounds; round++)
      for (const n of ns) {
        const { seconds, tokens } = await runTrace(engine, names, n, requests);
        rates.get(n)!.push(tokens / seconds);
        progress(`${label}: round ${round + 1}/${rounds} n=${n}: ${(tokens / seconds).toFixed(1)} tok/s`);
      }
    return rates;
  } finally {
    await engine.close();
  }
}

async function serveTrace(modelDir: string, loraDir: string, n: number, requests: TracedRequest[]) {
  const engine = await LlmEngine.create(engineOptions(modelDir, loraDir), { info: () => {} });
  try {
    const names = engine.adapters.list().map((a) => a.name);
    if (names.length !== n) throw new Error(`expected ${n} adapters, found ${names.length}`);
    const run = () => runTrace(engine, names, n, requests);
    const { seconds, tokens } = await run();
    const counted = { ...engine.stats().adapterCounters };
    // The same trace again, its adapters now resident where --max-loras allows: what is left is
    // the cost of batching many adapters, not of loading them.
    const warm = await run();
    const stats = engine.stats();
    const c = counted;
    const after = stats.adapterCounters;
    const loadingSeconds = (k: typeof c) =>
      k.blockingCopySeconds + k.readWaitSeconds + k.overlappedCopySeconds;
    return {
      seconds,
      tokensPerSecond: tokens / seconds,
      warmTokensPerSecond: warm.tokens / warm.seconds,
      requestsPerSecond: requests.length / seconds,
      prefetchHitRate: c.numPrefetchHits / Math.max(1, c.numPrefetchHits + c.numPrefetchMisses),
      copyWaitShare: (c.blockingCopySeconds + c.readWaitSeconds) / seconds,
      blockingCopyShare: c.blockingCopySeconds / seconds,
      readWaitShare: c.readWaitSeconds / seconds,
      overlappedCopySeconds: c.overlappedCopySeconds,
      besideStepsShare: c.overlappedCopySeconds / seconds,
      warmPoolLoads: after.numPoolLoads - c.numPoolLoads,
      warmLoadingShare: (loadingSeconds(after) - loadingSeconds(c)) / warm.seconds,
      diskLoads: c.numDiskLoads,
      poolLoads: c.numPoolLoads,
      overlappedPoolLoads: c.numOverlappedPoolLoads,
      evictions: c.numEvictions,
      steps: stats.numSteps,
      resident: stats.numResidentAdapters,
    };
  } finally {
    await engine.close();
  }
}

async function main(): Promise<void> {
  const spec = args.model === 'tinyllama' ? TINYLLAMA_SPEC : DEFAULT_SPEC;
  const ns = args.ns.split(',').map(Number);
  const numRequests = Number(args.requests);
  const root = await mkdtemp(join(tmpdir(), 'loom-adapter-scaling-'));
  try {
    const modelDir = join(root, 'model');
    progress(`writing the synthetic model (hidden ${spec.hiddenSize}, ${spec.numLayers} layers)`);
    await writeSyntheticModel(modelDir, spec);
    const rate = args['request-rate'] === 'inf' ? Number.POSITIVE_INFINITY : Number(args['request-rate']);
    const requests = trace(Number(args.seed), numRequests, spec.vocabSize, args.quick, rate);
    const rows: Array<Record<string, string | number>> = [];
    const bars: Array<{ label: string; value: number }> = [];
    const notes: string[] = [];
    const mixes = args.mixes.split(',').map((m) => {
      if (m !== 'uniform' && m !== 'mixed') throw new Error(`--mixes: ${m} is neither uniform nor mixed`);
      return m;
    });
    const roundRows: Array<Record<string, string | number>> = [];
    const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
    for (const mix of mixes) {
      if (!args['rounds-only']) {
        let baseline = 0;
        let warmBaseline = 0;
        for (const n of ns) {
          const folder = await adapterFolder(root, spec, mix, n, adapterDtype);
          const probe = args['skip-startup'] ? null : startupInChild(modelDir, folder);
          progress(
            `${mix} n=${n}: ${probe ? `start-up ${probe.seconds.toFixed(2)} s, RSS ${(probe.rss / 2 ** 20).toFixed(0)} MiB; ` : ''}serving ${numRequests} requests`,
          );
          const r = await serveTrace(modelDir, folder, n, requests);
          if (n === ns[0]) {
            baseline = r.tokensPerSecond;
            warmBaseline = r.warmTokensPerSecond;
          }
          const ratio = r.tokensPerSecond / baseline;
          const warmRatio = r.warmTokensPerSecond / warmBaseline;
          progress(
            `${mix} n=${n}: ${r.tokensPerSecond.toFixed(1)} tok/s (${(ratio * 100).toFixed(1)} % of n=${ns[0]}), warm ${r.warmTokensPerSecond.toFixed(1)} (${(warmRatio * 100).toFixed(1)} %), prefetch hits ${(r.prefetchHitRate * 100).toFixed(1)} %, copy wait ${(r.copyWaitShare * 100).toFixed(2)} % (copies ${(r.blockingCopyShare * 100).toFixed(2)} %, disk reads ${(r.readWaitShare * 100).toFixed(2)} %; ${r.overlappedPoolLoads} of ${r.poolLoads} copies overlapped, ${r.overlappedCopySeconds.toFixed(2)} s)`,
          );
          rows.push({
            ranks: rankLabel(mix),
            n,
            'tokens/s': r.tokensPerSecond,
            [`vs n=${ns[0]}`]: percent(ratio),
            'req/s': r.requestsPerSecond,
            'warm tokens/s': r.warmTokensPerSecond,
            [`warm vs n=${ns[0]}`]: percent(warmRatio),
            'prefetch hits': percent(r.prefetchHitRate),
            'copy wait': `${(r.copyWaitShare * 100).toFixed(2)} %`,
            'of it copies': `${(r.blockingCopyShare * 100).toFixed(2)} %`,
            'of it disk reads': `${(r.readWaitShare * 100).toFixed(2)} %`,
            'copies beside steps': `${(r.besideStepsShare * 100).toFixed(2)} %`,
            'warm pool loads': r.warmPoolLoads,
            'warm: all loading': `${(r.warmLoadingShare * 100).toFixed(2)} %`,
            'disk loads': r.diskLoads,
            'pool loads': r.poolLoads,
            evictions: r.evictions,
            'start-up s': probe ? probe.seconds : '—',
            'RSS MiB': probe ? Math.round(probe.rss / 2 ** 20) : '—',
          });
          bars.push({ label: `${mix} n=${n}`, value: r.tokensPerSecond });
        }
      }
      if (warmRounds > 0) {
        const folder = await adapterFolder(root, spec, mix, Math.max(...ns), adapterDtype);
        const rates = await interleavedWarmRounds(modelDir, folder, ns, warmRounds, requests, mix);
        const first = rates.get(ns[0])!;
        for (const n of ns) {
          const r = rates.get(n)!;
          const tokens = spread(r);
          const paired = spread(r.map((rate, i) => rate / first[i]));
          roundRows.push({
            ranks: rankLabel(mix),
            n,
            rounds: r.length,
            'median tokens/s': tokens.median,
            'min tokens/s': tokens.min,
            'max tokens/s': tokens.max,
            [`vs n=${ns[0]} (medians)`]: percent(tokens.median / percentile(first, 50)),
            [`vs n=${ns[0]} in the same round (median)`]: percent(paired.median),
            'same round, min–max': `${percent(paired.min)}–${percent(paired.max)}`,
          });
          if (args['rounds-only']) bars.push({ label: `${mix} n=${n}`, value: tokens.median });
        }
      }
    }
    notes.push(
      'Targets (issue 6): throughput at n = 2,000 ≥ 90 % of n = 1 (S-LoRA: 94.5 % uniform, 89.7 % mixed); copy wait ≤ 2 %.',
      `Trace: ${numRequests} requests, ${Number.isFinite(rate) ? `Poisson arrivals at ${rate} req/s` : 'submitted at once (saturation)'}, greedy, ignore_eos, same seed at every n; adapter = floor(power(${ALPHA})·n).`,
      `${DISTINCT_FILES} distinct weight files per rank mix, hard-linked under n names: every name is a separate adapter to the registry (read, made resident and evicted on its own).`,
      adapterTrafficNote(spec, Number(args['max-num-seqs'])),
    );
    if (!args['rounds-only'])
      notes.push(
        "tokens/s: the trace served cold (every adapter read from disk on first use: with n ≥ 100 nearly every request brings a new adapter). warm tokens/s: the same trace again with the adapters in host RAM (--max-cpu-loras all), S-LoRA's setting: adapters wait in main memory and are copied into the pool on demand.",
        "copy wait: seconds the step loop spent on adapter copies between steps plus idle waits for disk reads, over the cold run. copies beside steps: seconds of the copies made while a step was pending (prefetchDuringStep), over the same run. On the webgpu engine those overlap the GPU's work; on the onnx engine they do not: on its worker thread (--onnx-thread worker) the server's thread only posts the copy (the weights cross in the shared memory their file was read into, not cloned), and the engine's thread writes the pages after the step in progress, before the next; on the server's thread (--onnx-thread main) onnxruntime-node runs a session synchronously (inside a setImmediate), so a copy made while a step is pending runs before it. Either way the step loop spends copy wait plus copies beside steps on adapter loading. warm: all loading: the three together over the warm run (pool loads again after the cold run's evictions).",
      );
    if (warmRounds > 0)
      notes.push(
        `Rounds: every n's workload served warm in turns, ${warmRounds} rounds, on one engine with ${Math.max(...ns)} adapters registered (the workload of n uses the first n), after one untimed pass at the largest n; the machine's drift between two engines' runs minutes apart is larger than the gap measured. "in the same round" divides each round's figure by n = ${ns[0]}'s of that round.`,
      );
    const files = writeBenchReport({
      name: args.name,
      title: 'Throughput against the number of adapters (S-LoRA trace)',
      context: {
        ...machineContext(),
        engine: args.engine,
        model: `synthetic ${args.model} shape (hidden ${spec.hiddenSize}, ${spec.numLayers} layers, vocab ${spec.vocabSize})`,
        'max-loras': args['max-loras'],
        'max-cpu-loras': args['max-cpu-loras'],
        'max-num-seqs': args['max-num-seqs'],
        requests: numRequests,
        'request lengths': args.quick
          ? 'prompt 8–32, output 8–32 tokens (--quick)'
          : 'prompt 8–128, output 8–128 tokens',
        'request rate': args['request-rate'],
        'pool size': args['pool-size'],
        'adapter files': `${adapterDtype} (host copies keep it; pool pages are f32)`,
        'prefix caching': 'off (the warm run repeats the same prompts)',
        ...(warmRounds > 0 ? { 'warm rounds': warmRounds } : {}),
      },
      rows: args['rounds-only'] ? roundRows : rows,
      chart: {
        unit: args['rounds-only'] ? 'generated tokens/s, warm (median of rounds)' : 'generated tokens/s',
        bars,
      },
      notes,
      tables:
        roundRows.length > 0 && !args['rounds-only']
          ? [{ title: 'Warm throughput, every n in turns on one engine', rows: roundRows }]
          : [],
    });
    progress(`wrote ${files.join(', ')}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * What bounds the ratio where a decode step is memory-bound: a step whose sequences all have
 * distinct adapters reads every one of those adapters' A and B rows besides the base weights,
 * while at n = 1 they share one adapter. Any engine that reads each adapter once a step pays this.
 */
function adapterTrafficNote(spec: typeof DEFAULT_SPEC, sequences: number): string {
  const config = syntheticConfig(spec);
  const shapes = TARGET_MODULES.map((m) => moduleShape(config, m));
  const base =
    spec.numLayers * shapes.reduce((sum, { inFeatures, outFeatures }) => sum + inFeatures * outFeatures, 0) +
    spec.vocabSize * spec.hiddenSize;
  const rankRow =
    spec.numLayers * shapes.reduce((sum, { inFeatures, outFeatures }) => sum + inFeatures + outFeatures, 0);
  const share = (rank: number) => (sequences * rank * rankRow) / base;
  const mixedRank = MIXED_RANKS.reduce((a, b) => a + b, 0) / MIXED_RANKS.length;
  const describe = (label: string, rank: number) =>
    `${label}: +${(100 * share(rank)).toFixed(0)} % bytes, so at most ${(100 / (1 + share(rank))).toFixed(0)} % of n = 1`;
  return `Weight traffic at decode: ${sequences} sequences of distinct adapters (all 7 modules) read, besides the base model's linear layers and lm_head, ${describe('uniform rank 8', 8)}; ${describe(`mixed (mean rank ${mixedRank})`, mixedRank)}, where the step is memory-bound (at n = 1 one adapter's rows serve every sequence).`;
}

if (args['startup-probe']) {
  const [modelDir, loraDir] = args['startup-probe'].split('|');
  await startupProbe(modelDir, loraDir);
} else {
  await main();
}
