/**
 * S-LoRA's experiments, served over HTTP: a synthetic model with n = 1 … 2,000 adapters written by
 * model/synthetic (LoRA on all 7 modules), ranks uniform 8 (S1-like) or mixed 8–64 (S2-like), the
 * same seeded trace at every n (adapter = floor(power(α)·n), Poisson or all-at-once arrivals),
 * sent by bench:serve's workload code to a real `npm start` process per (ranks, n, mode). Modes:
 * Loom's batched adapters and, in the same run, the baselines `--lora-mode padded` (PEFT-style)
 * and `--lora-mode merged` (one adapter merged at a time). Writes S-LoRA's table shape and a plot
 * of throughput against n to bench/results/slora.*.
 *
 *   npm run bench:slora -- --quick            # small model, under 10 minutes on 2 cores
 *   npm run bench:slora                       # TinyLlama-shaped (hours on 2 cores)
 *   flags: --ns 1,10,100,1000,2000 --modes batched,padded,merged --num-prompts N --request-rate R|inf
 *          --max-loras N --seed N --padded-max-n 100 --merged-max-n 10 (quick) / 100 (baselines stop there)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SPEC, TINYLLAMA_SPEC, writeSyntheticModel } from '../model/synthetic.js';
import { type LineSeries, machineContext, svgLineChart, writeBenchReport } from './report.js';
import { runOnLoomServer, startLoomServer, stopLoomServer } from './serve/loom-server.js';
import { parseServeBenchArgs, type ServeBenchArgs } from './serve/serve-args.js';
import { summarize } from './serve/summary.js';
import { buildWorkload } from './serve/workload.js';
import { adapterFolder, DISTINCT_FILES, type RankMix } from './slora/adapter-folders.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    ns: { type: 'string', default: '1,10,100,1000,2000' },
    modes: { type: 'string', default: 'batched,padded,merged' },
    'num-prompts': { type: 'string' },
    'request-rate': { type: 'string', default: 'inf' },
    'max-loras': { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
    'padded-max-n': { type: 'string', default: '100' },
    'merged-max-n': { type: 'string' },
  },
});

const MODES = args.modes.split(',');
const NS = args.ns.split(',').map(Number);
const spec = args.quick ? DEFAULT_SPEC : TINYLLAMA_SPEC;
const numPrompts = Number(args['num-prompts'] ?? (args.quick ? 48 : 200));
/** S-LoRA's first-token objective for SLO attainment (seconds), scaled to the machine's pace in quick mode. */
const SLO_TTFT_MS = args.quick ? 2000 : 10000;

/** The largest n a mode runs at: the merged baseline swaps weights per adapter and crawls past a few. */
function baselineMaxN(mode: string): number {
  if (mode === 'padded') return Number(args['padded-max-n']);
  if (mode === 'merged') return Number(args['merged-max-n'] ?? (args.quick ? 10 : 100));
  return Number.POSITIVE_INFINITY;
}

function progress(message: string): void {
  process.stderr.write(`[bench:slora] ${message}\n`);
}

async function adapterNames(baseUrl: string): Promise<{ base: string; adapters: string[] }> {
  const body = (await (await fetch(`${baseUrl}/v1/models`)).json()) as {
    data: { id: string; parent: string | null }[];
  };
  const base = body.data.find((c) => c.parent === null)!.id;
  return { base, adapters: body.data.filter((c) => c.parent !== null).map((c) => c.id) };
}

async function measure(
  modelDir: string,
  folder: string,
  mode: string,
): Promise<Record<string, number | null>> {
  const server = await startLoomServer([
    '--model',
    modelDir,
    '--lora-dir',
    folder,
    '--engine',
    'onnx',
    '--lora-mode',
    mode,
    '--max-loras',
    args['max-loras'],
    '--max-num-seqs',
    '32',
    '--pool-size',
    args.quick ? '1GiB' : '6GiB',
    '--max-model-len',
    '1024',
  ]);
  try {
    const { base, adapters } = await adapterNames(server.baseUrl);
    const bench: ServeBenchArgs = {
      ...(parseServeBenchArgs([]) as ServeBenchArgs),
      baseUrl: server.baseUrl,
      numPrompts,
      randomInputLen: args.quick ? 24 : 256,
      randomOutputLen: args.quick ? 24 : 128,
      randomRangeRatio: 0.6,
      ignoreEos: true,
      seed: Number(args.seed),
      loraModules: adapters,
      loraAssignment: 'power-law',
      loraAlpha: 1,
    };
    const rate = args['request-rate'] === 'inf' ? Number.POSITIVE_INFINITY : Number(args['request-rate']);
    const requests = buildWorkload(bench, base, rate, { vocabSize: spec.vocabSize, decode: null });
    const { outcomes, durationSeconds } = await runOnLoomServer(server, requests);
    return summarize(outcomes, durationSeconds, {
      percentiles: [90, 99],
      metrics: ['ttft', 'tpot', 'e2el'],
      slo: { ttft: SLO_TTFT_MS },
    });
  } finally {
    await stopLoomServer(server);
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'loom-slora-'));
  try {
    const modelDir = join(root, 'model');
    progress(`writing the synthetic model (hidden ${spec.hiddenSize}, ${spec.numLayers} layers)`);
    await writeSyntheticModel(modelDir, spec);
    const rows: Array<Record<string, string | number>> = [];
    const series: LineSeries[] = [];
    const bars: Array<{ label: string; value: number }> = [];
    for (const mix of ['uniform', 'mixed'] as RankMix[]) {
      for (const mode of MODES) {
        const points: [number, number][] = [];
        for (const n of NS) {
          // The baselines collapse as n grows (that is the point); past a hundred adapters they
          // would take the run's whole time budget, as S-LoRA's baselines ran out of memory.
          if (n > baselineMaxN(mode)) continue;
          const folder = await adapterFolder(root, spec, mix, n);
          progress(`${mix} ranks, n=${n}, --lora-mode ${mode}: ${numPrompts} requests`);
          const r = await measure(modelDir, folder, mode);
          const throughput = r.request_throughput ?? 0;
          progress(
            `  ${throughput.toFixed(2)} req/s, ${(r.output_throughput ?? 0).toFixed(1)} tok/s, mean TTFT ${(r.mean_ttft_ms ?? 0).toFixed(0)} ms, SLO ${(100 * (r.slo_attainment ?? 0)).toFixed(1)} %, failed ${r.failed}`,
          );
          rows.push({
            ranks: mix === 'uniform' ? 'uniform 8' : 'mixed 8–64',
            n,
            mode,
            'throughput req/s': throughput,
            'output tok/s': r.output_throughput ?? 0,
            'avg latency s': (r.mean_e2el_ms ?? 0) / 1000,
            'avg first-token s': (r.mean_ttft_ms ?? 0) / 1000,
            'p99 first-token s': (r.p99_ttft_ms ?? 0) / 1000,
            'SLO attainment': `${(100 * (r.slo_attainment ?? 0)).toFixed(1)} %`,
            failed: r.failed ?? 0,
          });
          points.push([n, throughput]);
          bars.push({ label: `${mix} ${mode} n=${n}`, value: throughput });
        }
        series.push({ label: `${mix} ${mode}`, points });
      }
    }
    const batchedAt = (mix: string, n: number) =>
      rows.find((r) => r.ranks.toString().startsWith(mix) && r.mode === 'batched' && r.n === n)?.[
        'throughput req/s'
      ] as number | undefined;
    const notes = ['uniform', 'mixed'].flatMap((mix) => {
      const first = batchedAt(mix, NS[0]);
      const last = batchedAt(mix, NS.at(-1)!);
      return first && last
        ? [
            `${mix}: batched throughput at n = ${NS.at(-1)} is ${((100 * last) / first).toFixed(1)} % of n = ${NS[0]}.`,
          ]
        : [];
    });
    notes.push(
      'Target (issue 6): ≥ 90 % at n = 2,000 of n = 1 (S-LoRA: 94.5 % uniform, 89.7 % mixed).',
      `SLO: first token within ${SLO_TTFT_MS / 1000} s. ${DISTINCT_FILES} distinct weight files per rank mix, hard-linked under n names (each name is a separate adapter to the server).`,
      `padded: every adapter padded to the largest rank in one batched matmul (PEFT-style); merged: one adapter merged into the weights at a time, swapped as needed (a server without multi-adapter batching); they run up to n = ${baselineMaxN('padded')} and ${baselineMaxN('merged')}.`,
    );
    const files = writeBenchReport({
      name: 'slora',
      title: 'S-LoRA experiments: throughput against the number of adapters',
      context: {
        ...machineContext(),
        model: `${args.quick ? 'default' : 'TinyLlama-shaped'} (hidden ${spec.hiddenSize}, ${spec.numLayers} layers)`,
        engine: 'onnx',
        requests: numPrompts,
        'request rate': args['request-rate'],
        'max-loras': args['max-loras'],
      },
      rows,
      chart: { unit: 'req/s', bars },
      notes,
      plots: [
        {
          name: 'throughput',
          svg: svgLineChart('Throughput against n (adapters)', { x: 'n', y: 'req/s' }, series),
        },
      ],
    });
    progress(`wrote ${files.join(', ')}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
