/**
 * A serving load test in the manner of `vllm bench serve`: random prompts of exact token
 * lengths, Poisson/Gamma arrivals, optional concurrency cap, requests spread over LoRA adapters
 * (random, round-robin or S-LoRA's power law), streamed over HTTP from any OpenAI-compatible
 * server on this machine. Prints vLLM's result block, writes JSON + Markdown + SVG plots under
 * bench/results/ and, with --save-result, vLLM's result JSON.
 *
 *   npm run bench:serve -- --num-prompts 50 --request-rate 2 4 8 --lora-modules a b c \
 *     --lora-assignment power-law --lora-alpha 0.5 --goodput ttft:500 tpot:100
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { TextTokenizer } from '../model/tokenizer.js';
import { RESULTS_DIR, writeBenchReport } from './report.js';
import { runWorkload, type WorkloadProgress } from './serve/run-workload.js';
import {
  BenchArgsError,
  parseServeBenchArgs,
  SERVE_BENCH_HELP,
  type ServeBenchArgs,
} from './serve/serve-args.js';
import {
  type RunSettings,
  rateText,
  type ServeRun,
  serveBenchReport,
  terminalTable,
  vllmResult,
} from './serve/serve-report.js';
import { summarize, summarizeByModel } from './serve/summary.js';
import { buildWorkload } from './serve/workload.js';

class BenchSetupError extends Error {}

interface ModelCard {
  id: string;
  root?: string | null;
}

async function listModels(baseUrl: string): Promise<ModelCard[]> {
  let response: Response;
  try {
    response = await fetch(`${baseUrl}/v1/models`, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new BenchSetupError(`cannot reach ${baseUrl}/v1/models: ${(error as Error).message}`);
  }
  if (!response.ok) throw new BenchSetupError(`${baseUrl}/v1/models answered ${response.status}`);
  const body = (await response.json()) as { data?: ModelCard[] };
  if (!body.data?.length) throw new BenchSetupError(`${baseUrl}/v1/models lists no model`);
  return body.data;
}

/** --tokenizer, else the model card's root when it is a directory on this machine with tokenizer.json. */
async function loadTokenizer(
  args: ServeBenchArgs,
  card: ModelCard,
): Promise<{ dir: string; tokenizer: TextTokenizer }> {
  const dir = args.tokenizer ?? card.root ?? null;
  if (dir === null || !existsSync(join(dir, 'tokenizer.json'))) {
    throw new BenchSetupError(
      `no tokenizer: the server's card for "${card.id}" names no local directory with tokenizer.json; pass --tokenizer DIR`,
    );
  }
  return { dir, tokenizer: await TextTokenizer.fromDir(dir) };
}

function progressPrinter(rate: number): (p: WorkloadProgress) => void {
  const isTty = process.stderr.isTTY === true;
  let lastDecile = -1;
  return (p) => {
    const width = 30;
    const filled = Math.round((p.numDone / p.numTotal) * width);
    const bar = `${'#'.repeat(filled)}${' '.repeat(width - filled)}`;
    const text = `[bench:serve] rate ${rateText(rate)} [${bar}] ${p.numDone}/${p.numTotal} done, ${p.numFailed} failed, ${p.numInFlight} in flight, ${p.elapsedSeconds.toFixed(1)} s`;
    if (isTty) {
      process.stderr.write(`\r${text}${p.numDone === p.numTotal ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor((p.numDone / p.numTotal) * 10);
    if (decile !== lastDecile) {
      lastDecile = decile;
      process.stderr.write(`${text}\n`);
    }
  };
}

async function main(): Promise<void> {
  const parsed = parseServeBenchArgs(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(SERVE_BENCH_HELP);
    return;
  }
  const args = parsed;
  const cards = await listModels(args.baseUrl);
  const card = args.model === null ? cards[0] : cards.find((c) => c.id === args.model);
  if (!card)
    throw new BenchSetupError(
      `--model "${args.model}" is not served (listed: ${cards.map((c) => c.id).join(', ')})`,
    );
  const missing = args.loraModules.filter((name) => !cards.some((c) => c.id === name));
  if (missing.length > 0)
    throw new BenchSetupError(
      `--lora-modules: ${missing.join(', ')} not served (listed: ${cards.map((c) => c.id).join(', ')})`,
    );
  const { dir: tokenizerDir, tokenizer } = await loadTokenizer(args, card);
  // Text prompts as vLLM's random dataset makes them: decode, re-encode, cut to length, decode
  // again, so the text is close to the intended length (the server's own count is reported).
  const toText = (ids: number[]) =>
    tokenizer.decode(tokenizer.encode(tokenizer.decode(ids, false), false).slice(0, ids.length), false);
  const vocabulary = { vocabSize: tokenizer.vocabSize, decode: args.promptFormat === 'text' ? toText : null };
  const settings: RunSettings = {
    baseUrl: args.baseUrl,
    endpoint: args.endpoint,
    model: card.id,
    tokenizer: tokenizerDir,
    numPrompts: args.numPrompts,
    burstiness: args.burstiness,
    maxConcurrency: args.maxConcurrency,
    percentiles: args.metricPercentiles,
    metrics: args.percentileMetrics,
  };
  const summaryOptions = {
    percentiles: args.metricPercentiles,
    metrics: args.percentileMetrics,
    slo: args.slo,
  };

  const runs: ServeRun[] = [];
  for (const requestRate of args.requestRates) {
    const requests = buildWorkload(args, card.id, requestRate, vocabulary);
    const { outcomes, durationSeconds } = await runWorkload(requests, {
      baseUrl: args.baseUrl,
      endpoint: args.endpoint,
      promptFormat: args.promptFormat,
      ignoreEos: args.ignoreEos,
      timeoutMs: args.requestTimeoutSeconds * 1000,
      maxConcurrency: args.maxConcurrency,
      onProgress: progressPrinter(requestRate),
    });
    const run: ServeRun = {
      requestRate,
      outcomes,
      summary: summarize(outcomes, durationSeconds, summaryOptions),
      perAdapter: summarizeByModel(outcomes, durationSeconds, summaryOptions),
    };
    runs.push(run);
    process.stdout.write(`${terminalTable(run, settings)}\n`);
    const firstError = outcomes.find((o) => !o.success)?.error;
    if (firstError) process.stderr.write(`[bench:serve] first failure: ${firstError}\n`);
  }

  const context = {
    base_url: args.baseUrl,
    endpoint: args.endpoint,
    model: card.id,
    num_prompts: args.numPrompts,
    random_input_len: args.randomInputLen,
    random_output_len: args.randomOutputLen,
    random_range_ratio: args.randomRangeRatio,
    prompt_format: args.promptFormat,
    ignore_eos: String(args.ignoreEos),
    burstiness: args.burstiness,
    max_concurrency: args.maxConcurrency ?? 'none',
    seed: args.seed,
    lora_modules: args.loraModules.length === 0 ? 'none (base model)' : args.loraModules.join(' '),
    lora_assignment: args.loraModules.length === 0 ? '-' : `${args.loraAssignment} (alpha ${args.loraAlpha})`,
    goodput: args.slo
      ? Object.entries(args.slo)
          .map(([k, v]) => `${k}:${v}ms`)
          .join(' ')
      : 'none',
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${availableParallelism()}`,
    load_average: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    date: new Date().toISOString(),
  };
  const files = writeBenchReport(
    serveBenchReport(args.resultFilename, runs, settings, context),
    args.resultDir ?? RESULTS_DIR,
  );
  if (args.saveResult !== null) {
    mkdirSync(dirname(args.saveResult), { recursive: true });
    const results = runs.map((run) => vllmResult(run, settings));
    writeFileSync(
      args.saveResult,
      `${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`,
    );
    files.push(args.saveResult);
  }
  process.stderr.write(`[bench:serve] wrote ${files.join(', ')}\n`);
}

main().catch((error: unknown) => {
  if (error instanceof BenchArgsError || error instanceof BenchSetupError) {
    console.error(`bench:serve: ${error.message}`);
    process.exit(error instanceof BenchArgsError ? 2 : 1);
  }
  console.error(error);
  process.exit(1);
});
