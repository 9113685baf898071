/**
 * The onnx engine's steps on a worker thread (--onnx-thread worker, the default) against on the
 * server's own thread (--onnx-thread main), in one run: the same Loom server started both ways,
 * rounds alternating which goes first, each serving the same bench:serve workload while a prober
 * asks GET /health (once a second by default). onnxruntime-node runs a session synchronously, so on
 * the main thread every request, stream write and probe waits for the step in progress; on the
 * worker they do not. Reported per mode, min / median / max over the rounds: /health latency
 * (median, p99, max) during the load, TTFT and ITL (median, p99), the run's output throughput.
 *
 *   npx tsx bench/engine-thread.ts [--model DIR] [--quantization int8] [--rounds 3] \
 *     [--num-prompts 10] [--input-len 128] [--output-len 16] [--request-rate 0.5] [--probe-ms 1000] \
 *     [--name engine-thread]
 *
 * bench/results/engine-thread-tinyllama-int8.md: --model <synthetic TinyLlama> --quantization int8,
 * the rest as above.
 */
import { parseArgs } from 'node:util';
import { machineContext, markdownTable, writeBenchReport } from './report.js';
import {
  alternatingRounds,
  randomWorkloadFor,
  runOnLoomServer,
  startLoomServer,
  stopLoomServer,
} from './serve/loom-server.js';
import { percentile, spread } from './serve/statistics.js';
import { summarize } from './serve/summary.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    quantization: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'num-prompts': { type: 'string', default: '10' },
    'input-len': { type: 'string', default: '128' },
    'output-len': { type: 'string', default: '16' },
    'request-rate': { type: 'string', default: '0.5' },
    'probe-ms': { type: 'string', default: '1000' },
    seed: { type: 'string', default: '0' },
    name: { type: 'string', default: 'engine-thread' },
  },
});
const ROUNDS = Number(args.rounds);
const PROBE_MS = Number(args['probe-ms']);
const MODES = ['worker', 'main'] as const;
type Mode = (typeof MODES)[number];

function progress(message: string): void {
  process.stderr.write(`[bench:engine-thread] ${message}\n`);
}

interface RoundResult {
  healthMedianMs: number;
  healthP99Ms: number;
  healthMaxMs: number;
  probes: number;
  medianTtftMs: number;
  p99TtftMs: number;
  medianItlMs: number;
  p99ItlMs: number;
  outputTokensPerSecond: number;
  failed: number;
}

/** GET /health one after another, `PROBE_MS` apart, until `stop` resolves: each answer's latency in ms. */
async function probeHealth(baseUrl: string, stop: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  while (!stopped) {
    const started = performance.now();
    const response = await fetch(`${baseUrl}/health`);
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`/health answered ${response.status}`);
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, PROBE_MS));
  }
  return latencies;
}

async function measure(mode: Mode): Promise<RoundResult> {
  const flags = ['--engine', 'onnx', '--onnx-thread', mode, '--disable-log-stats', '--disable-log-requests'];
  if (args.model) flags.push('--model', args.model);
  if (args.quantization) flags.push('--quantization', args.quantization);
  const server = await startLoomServer(flags);
  try {
    const requests = await randomWorkloadFor(server, {
      numPrompts: Number(args['num-prompts']),
      inputLen: Number(args['input-len']),
      outputLen: Number(args['output-len']),
      seed: Number(args.seed),
      requestRate: args['request-rate'],
    });
    const run = runOnLoomServer(server, requests);
    const [{ outcomes, durationSeconds }, health] = await Promise.all([
      run,
      probeHealth(server.baseUrl, run),
    ]);
    const r = summarize(outcomes, durationSeconds, {
      percentiles: [99],
      metrics: ['ttft', 'itl'],
      slo: null,
    });
    return {
      healthMedianMs: percentile(health, 50),
      healthP99Ms: percentile(health, 99),
      healthMaxMs: Math.max(...health),
      probes: health.length,
      medianTtftMs: r.median_ttft_ms ?? 0,
      p99TtftMs: r.p99_ttft_ms ?? 0,
      medianItlMs: r.median_itl_ms ?? 0,
      p99ItlMs: r.p99_itl_ms ?? 0,
      outputTokensPerSecond: r.output_throughput ?? 0,
      failed: r.failed ?? 0,
    };
  } finally {
    await stopLoomServer(server);
  }
}

async function main(): Promise<void> {
  const results = await alternatingRounds(MODES, ROUNDS, measure, {
    start: (mode, round) => progress(`round ${round + 1}/${ROUNDS}, --onnx-thread ${mode}`),
    done: (r) =>
      progress(
        `  /health p99 ${r.healthP99Ms.toFixed(1)} ms (max ${r.healthMaxMs.toFixed(0)}), median ITL ${r.medianItlMs.toFixed(1)} ms, ${r.outputTokensPerSecond.toFixed(1)} output tok/s, failed ${r.failed}`,
      ),
  });
  const of = (mode: Mode, key: keyof RoundResult) => spread(results[mode].map((r) => r[key]));
  const rows = MODES.map((mode) => ({
    '--onnx-thread': mode,
    '/health median ms min/med/max': of(mode, 'healthMedianMs').text,
    '/health p99 ms': of(mode, 'healthP99Ms').text,
    '/health max ms': of(mode, 'healthMaxMs').text,
    'median TTFT ms': of(mode, 'medianTtftMs').text,
    'p99 TTFT ms': of(mode, 'p99TtftMs').text,
    'median ITL ms': of(mode, 'medianItlMs').text,
    'p99 ITL ms': of(mode, 'p99ItlMs').text,
    'output tok/s': of(mode, 'outputTokensPerSecond').text,
    failed: results[mode].reduce((sum, r) => sum + r.failed, 0),
  }));
  const ratio = (key: keyof RoundResult) => of('main', key).median / of('worker', key).median;
  const notes = [
    `Workload: ${args['num-prompts']} requests at rate ${args['request-rate']} (Poisson), ${args['input-len']} random prompt tokens, ${args['output-len']} output tokens (ignore_eos), token-id prompts, streamed; the same seed, so the same requests, in every run. Meanwhile GET /health one after another, ${PROBE_MS} ms apart (${of('worker', 'probes').text} probes a run with the worker, ${of('main', 'probes').text} on the main thread).`,
    `Medians over ${ROUNDS} rounds, main thread over worker: /health p99 ${ratio('healthP99Ms').toFixed(2)}×, /health max ${ratio('healthMaxMs').toFixed(2)}×, p99 TTFT ${ratio('p99TtftMs').toFixed(2)}×, median ITL ${ratio('medianItlMs').toFixed(2)}×, output throughput ${(1 / ratio('outputTokensPerSecond')).toFixed(2)}× of the worker's.`,
    'Each mode is a fresh server process per round (server/main.ts --engine onnx, --disable-log-stats --disable-log-requests); the modes alternate which runs first. The prober and the clients share this process, so their own event loop adds the same to both modes.',
  ];
  const context = {
    ...machineContext(),
    model: args.model ?? 'the embedded default model',
    quantization: args.quantization ?? 'none',
    rounds: ROUNDS,
  };
  const files = writeBenchReport({
    name: args.name,
    title: "The onnx engine's steps on a worker thread against on the server's thread",
    context,
    rows,
    notes,
    chart: {
      unit: '/health p99 latency under load, ms (median of rounds)',
      bars: MODES.map((mode) => ({ label: `--onnx-thread ${mode}`, value: of(mode, 'healthP99Ms').median })),
    },
  });
  progress(`wrote ${files.join(', ')}`);
  process.stdout.write(`${markdownTable(rows)}\n\n${notes.map((note) => `- ${note}`).join('\n')}\n`);
}

await main();
