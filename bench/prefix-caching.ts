/**
 * Automatic prefix caching, on against off, in one run: the same Loom server (server/main.ts) is
 * started with and without --no-enable-prefix-caching, rounds alternating which goes first, and
 * each serves the same bench:serve workload: every prompt begins with one shared random prefix
 * (vLLM's --random-prefix-len: a system prompt), then a random question of its own. Reported per
 * mode, min / median / max over the rounds: time to first token (mean, median, p99), the run's
 * duration and output throughput, and the prefix cache's hit rate from /metrics.
 *
 *   npx tsx bench/prefix-caching.ts [--model DIR] [--engine onnx] [--rounds 3] [--num-prompts 32] \
 *     [--prefix-len 512] [--input-len 32] [--output-len 16] [--request-rate inf] [--name prefix-caching]
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
import { spread } from './serve/statistics.js';
import { summarize } from './serve/summary.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    engine: { type: 'string', default: 'onnx' },
    rounds: { type: 'string', default: '3' },
    'num-prompts': { type: 'string', default: '32' },
    'prefix-len': { type: 'string', default: '512' },
    'input-len': { type: 'string', default: '32' },
    'output-len': { type: 'string', default: '16' },
    'request-rate': { type: 'string', default: 'inf' },
    seed: { type: 'string', default: '0' },
    name: { type: 'string', default: 'prefix-caching' },
  },
});
const ROUNDS = Number(args.rounds);
const MODES = ['on', 'off'] as const;
type Mode = (typeof MODES)[number];

function progress(message: string): void {
  process.stderr.write(`[bench:prefix-caching] ${message}\n`);
}

interface RoundResult {
  meanTtftMs: number;
  medianTtftMs: number;
  p99TtftMs: number;
  durationSeconds: number;
  outputTokensPerSecond: number;
  failed: number;
  /** Cached prompt tokens over prompt tokens looked up (vllm:prefix_cache_hits / _queries). */
  hitRate: number;
}

/** A counter's value summed over its series, from Prometheus text. */
function counterTotal(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest.startsWith(' ') || rest.startsWith('{')) total += Number(line.split(' ').at(-1));
  }
  return total;
}

async function measure(mode: Mode): Promise<RoundResult> {
  const flags = ['--engine', args.engine, '--disable-log-stats', '--disable-log-requests'];
  if (args.model) flags.push('--model', args.model);
  if (mode === 'off') flags.push('--no-enable-prefix-caching');
  const server = await startLoomServer(flags);
  try {
    const requests = await randomWorkloadFor(server, {
      numPrompts: Number(args['num-prompts']),
      prefixLen: Number(args['prefix-len']),
      inputLen: Number(args['input-len']),
      outputLen: Number(args['output-len']),
      seed: Number(args.seed),
      requestRate: args['request-rate'],
    });
    const { outcomes, durationSeconds } = await runOnLoomServer(server, requests);
    const r = summarize(outcomes, durationSeconds, { percentiles: [99], metrics: ['ttft'], slo: null });
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    const queries = counterTotal(metrics, 'vllm:prefix_cache_queries_total');
    return {
      meanTtftMs: r.mean_ttft_ms ?? 0,
      medianTtftMs: r.median_ttft_ms ?? 0,
      p99TtftMs: r.p99_ttft_ms ?? 0,
      durationSeconds,
      outputTokensPerSecond: r.output_throughput ?? 0,
      failed: r.failed ?? 0,
      hitRate: queries > 0 ? counterTotal(metrics, 'vllm:prefix_cache_hits_total') / queries : 0,
    };
  } finally {
    await stopLoomServer(server);
  }
}

async function main(): Promise<void> {
  const results = await alternatingRounds(MODES, ROUNDS, measure, {
    start: (mode, round) => progress(`round ${round + 1}/${ROUNDS}, prefix caching ${mode}`),
    done: (r) =>
      progress(
        `  mean TTFT ${r.meanTtftMs.toFixed(0)} ms, ${r.outputTokensPerSecond.toFixed(1)} output tok/s, hit rate ${(100 * r.hitRate).toFixed(1)} %, failed ${r.failed}`,
      ),
  });
  const of = (mode: Mode, key: keyof RoundResult) => spread(results[mode].map((r) => r[key]));
  const rows = MODES.map((mode) => ({
    'prefix caching': mode,
    'mean TTFT ms min/med/max': of(mode, 'meanTtftMs').text,
    'median TTFT ms': of(mode, 'medianTtftMs').text,
    'p99 TTFT ms': of(mode, 'p99TtftMs').text,
    'duration s': of(mode, 'durationSeconds').text,
    'output tok/s': of(mode, 'outputTokensPerSecond').text,
    'hit rate %': spread(results[mode].map((r) => 100 * r.hitRate)).text,
    failed: results[mode].reduce((sum, r) => sum + r.failed, 0),
  }));
  const ratio = (key: keyof RoundResult) => of('off', key).median / of('on', key).median;
  const notes = [
    `Workload: ${args['num-prompts']} requests at rate ${args['request-rate']}, each a shared ${args['prefix-len']}-token random prefix then ${args['input-len']} random tokens of its own, ${args['output-len']} output tokens (ignore_eos), token-id prompts; the same seed, so the same prompts, in every run.`,
    `Medians over ${ROUNDS} rounds: mean TTFT ${ratio('meanTtftMs').toFixed(2)}× lower with prefix caching, p99 TTFT ${ratio('p99TtftMs').toFixed(2)}× lower, the run ${ratio('durationSeconds').toFixed(2)}× shorter, output throughput ${(1 / ratio('outputTokensPerSecond')).toFixed(2)}× higher.`,
    'Hit rate: vllm:prefix_cache_hits_total over vllm:prefix_cache_queries_total at the end of the run (prompt tokens found cached over prompt tokens looked up at admission). Requests admitted in the first step find nothing: the shared prefix is computed by that step.',
    'Each mode is a fresh server process per round (server/main.ts, --disable-log-stats --disable-log-requests); the modes alternate which runs first.',
  ];
  const context = {
    ...machineContext(),
    engine: args.engine,
    model: args.model ?? 'the embedded default model',
    rounds: ROUNDS,
  };
  const files = writeBenchReport({
    name: args.name,
    title: 'Automatic prefix caching: a shared system prompt, on against off',
    context,
    rows,
    notes,
    chart: {
      unit: 'mean TTFT, ms (median of rounds)',
      bars: MODES.map((mode) => ({ label: `prefix caching ${mode}`, value: of(mode, 'meanTtftMs').median })),
    },
  });
  progress(`wrote ${files.join(', ')}`);
  process.stdout.write(`${markdownTable(rows)}\n\n${notes.map((note) => `- ${note}`).join('\n')}\n`);
}

await main();
