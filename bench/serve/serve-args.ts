import { ADAPTER_ASSIGNMENTS, type AdapterAssignment } from './adapter-assignment.js';
import { parseGoodput, type Slo } from './statistics.js';
import { ENDPOINTS, type Endpoint } from './stream-request.js';
import { LATENCY_METRICS, type LatencyMetric } from './summary.js';

/** `npm run bench:serve -- …` flags, spelled as `vllm bench serve` spells them. */
export interface ServeBenchArgs {
  baseUrl: string;
  endpoint: Endpoint;
  /** null: the first model the server lists. */
  model: string | null;
  /** A directory with tokenizer.json; null: the base model card's `root` when it is one. */
  tokenizer: string | null;
  numPrompts: number;
  /** One run per rate; Infinity sends everything at once. */
  requestRates: number[];
  burstiness: number;
  maxConcurrency: number | null;
  randomInputLen: number;
  /** Tokens every prompt begins with (one random draw shared by all), before its own random input. */
  randomPrefixLen: number;
  randomOutputLen: number;
  randomRangeRatio: number;
  ignoreEos: boolean;
  seed: number;
  loraModules: string[];
  loraAssignment: AdapterAssignment;
  loraAlpha: number;
  slo: Slo | null;
  percentileMetrics: LatencyMetric[];
  metricPercentiles: number[];
  saveResult: string | null;
  resultDir: string | null;
  resultFilename: string;
  promptFormat: 'ids' | 'text';
  requestTimeoutSeconds: number;
}

export class BenchArgsError extends Error {}

export const SERVE_BENCH_HELP = `npm run bench:serve -- [flags]

Load-tests an OpenAI-compatible server on this machine (Loom, vLLM, SGLang) with streaming
requests, as \`vllm bench serve\` does with its random dataset.

  --base-url URL                 server to test, loopback only (default http://HOST:PORT)
  --host HOST, --port N          the server when --base-url is not given (default 127.0.0.1, 8000)
  --endpoint PATH                /v1/completions (default) or /v1/chat/completions
  --model NAME                   base model name (default: the first model the server lists)
  --tokenizer DIR                tokenizer.json for the vocabulary and text prompts
                                 (default: the base model card's root directory, as Loom reports it)
  --num-prompts N                requests per run (default 100)
  --request-rate R [R…]          requests/s, Poisson arrivals; inf = all at once (default inf);
                                 several rates run one after another (a load sweep)
  --burstiness B                 Gamma shape of the gaps (default 1 = Poisson; S-LoRA cv = 1/√B)
  --max-concurrency N            cap on requests in flight
  --random-input-len N           prompt tokens (default 256)
  --random-prefix-len N          tokens every prompt begins with, drawn once and shared (a system
                                 prompt: what prefix caching reuses), before the random input (default 0)
  --random-output-len N          max_tokens (default 64)
  --random-range-ratio R         lengths uniform in [len·(1−R), len·(1+R)] (default 0)
  --ignore-eos                   generate exactly max_tokens
  --seed N                       workload seed (default 0)
  --lora-modules NAME [NAME…]    adapters to spread the requests over (default: the base model)
  --lora-assignment KIND         random (default), round-robin or power-law
  --lora-alpha A                 power-law exponent: adapter = floor(U^(1/A)·n) (default 1)
  --goodput KEY:MS [KEY:MS…]     SLOs for goodput and attainment: ttft, tpot, e2el in ms
  --percentile-metrics LIST      default ttft,tpot,itl,e2el
  --metric-percentiles LIST      default 90,99
  --prompt-format ids|text       prompts as token ids (exact lengths; default for completions) or text
  --request-timeout S            seconds before a request counts as failed (default 600)
  --save-result FILE             vLLM-format JSON of the (last) run, per-request arrays included
  --result-dir DIR               where the report goes (default bench/results)
  --result-filename STEM         report file stem (default serve)
`;

const LIST_FLAGS = new Set(['--request-rate', '--lora-modules', '--goodput']);
const BOOLEAN_FLAGS = new Set(['--ignore-eos', '--help']);
const VALUE_FLAGS = new Set([
  '--base-url',
  '--host',
  '--port',
  '--endpoint',
  '--model',
  '--tokenizer',
  '--num-prompts',
  '--burstiness',
  '--max-concurrency',
  '--random-input-len',
  '--random-prefix-len',
  '--random-output-len',
  '--random-range-ratio',
  '--seed',
  '--lora-assignment',
  '--lora-alpha',
  '--percentile-metrics',
  '--metric-percentiles',
  '--save-result',
  '--result-dir',
  '--result-filename',
  '--prompt-format',
  '--request-timeout',
]);

/** Splits argv into flag → values; list flags take every value up to the next flag. */
function readFlags(argv: readonly string[]): Map<string, string[]> {
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (!token.startsWith('--')) throw new BenchArgsError(`unexpected argument "${token}"`);
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    const values: string[] = eq < 0 ? [] : [token.slice(eq + 1)];
    if (BOOLEAN_FLAGS.has(name)) {
      if (values.length > 0) throw new BenchArgsError(`${name} takes no value`);
    } else if (LIST_FLAGS.has(name)) {
      while (eq < 0 && i + 1 < argv.length && !argv[i + 1].startsWith('--')) values.push(argv[++i]);
      if (values.length === 0) throw new BenchArgsError(`${name} needs at least one value`);
    } else if (VALUE_FLAGS.has(name)) {
      if (eq < 0) {
        if (i + 1 >= argv.length) throw new BenchArgsError(`${name} needs a value`);
        values.push(argv[++i]);
      }
    } else {
      throw new BenchArgsError(`unknown flag ${name} (see --help)`);
    }
    if (flags.has(name)) throw new BenchArgsError(`${name} given twice`);
    flags.set(name, values);
  }
  return flags;
}

function integer(flag: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum)
    throw new BenchArgsError(`${flag} must be an integer ≥ ${minimum}, got "${text}"`);
  return value;
}

function positive(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new BenchArgsError(`${flag} must be a number > 0, got "${text}"`);
  return value;
}

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text))
    throw new BenchArgsError(`${flag} must be one of ${allowed.join(', ')}, got "${text}"`);
  return text as T;
}

/** Load tests talk only to this machine. */
function loopbackUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BenchArgsError(`--base-url "${text}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new BenchArgsError(`--base-url must be http(s), got "${text}"`);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))
    throw new BenchArgsError(
      `--base-url must point at this machine (127.0.0.1, localhost, [::1]), got "${url.hostname}"`,
    );
  return url.href.replace(/\/+$/, '');
}

export function parseServeBenchArgs(argv: readonly string[]): ServeBenchArgs | 'help' {
  const flags = readFlags(argv);
  if (flags.has('--help')) return 'help';
  const one = (name: string, fallback: string): string => flags.get(name)?.[0] ?? fallback;
  const endpoint = oneOf('--endpoint', one('--endpoint', '/v1/completions'), ENDPOINTS);
  const promptFormat = oneOf(
    '--prompt-format',
    one('--prompt-format', endpoint === '/v1/chat/completions' ? 'text' : 'ids'),
    ['ids', 'text'] as const,
  );
  if (promptFormat === 'ids' && endpoint === '/v1/chat/completions')
    throw new BenchArgsError('--prompt-format ids needs --endpoint /v1/completions (chat messages are text)');
  const rateTexts = flags.get('--request-rate') ?? ['inf'];
  const requestRates = rateTexts.map((r) =>
    r === 'inf' ? Number.POSITIVE_INFINITY : positive('--request-rate', r),
  );
  const maxConcurrency = flags.has('--max-concurrency')
    ? integer('--max-concurrency', one('--max-concurrency', ''), 1)
    : null;
  const listOf = (flag: string, fallback: string) =>
    one(flag, fallback)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  const percentileMetrics = listOf('--percentile-metrics', LATENCY_METRICS.join(',')).map((m) =>
    oneOf('--percentile-metrics', m, LATENCY_METRICS),
  );
  const metricPercentiles = listOf('--metric-percentiles', '90,99').map((p) => {
    const value = Number(p);
    if (!(value > 0 && value < 100))
      throw new BenchArgsError(`--metric-percentiles: ${p} is not in (0, 100)`);
    return value;
  });
  const rangeRatio = Number(one('--random-range-ratio', '0'));
  if (!(rangeRatio >= 0 && rangeRatio < 1))
    throw new BenchArgsError(
      `--random-range-ratio must be in [0, 1), got "${one('--random-range-ratio', '')}"`,
    );
  let slo: Slo | null = null;
  if (flags.has('--goodput')) {
    try {
      slo = parseGoodput(flags.get('--goodput')!);
    } catch (error) {
      throw new BenchArgsError((error as Error).message);
    }
  }
  return {
    baseUrl: loopbackUrl(
      one(
        '--base-url',
        `http://${one('--host', '127.0.0.1')}:${integer('--port', one('--port', '8000'), 1)}`,
      ),
    ),
    endpoint,
    model: flags.get('--model')?.[0] ?? null,
    tokenizer: flags.get('--tokenizer')?.[0] ?? null,
    numPrompts: integer('--num-prompts', one('--num-prompts', '100'), 1),
    requestRates,
    burstiness: positive('--burstiness', one('--burstiness', '1')),
    maxConcurrency,
    randomInputLen: integer('--random-input-len', one('--random-input-len', '256'), 1),
    randomPrefixLen: integer('--random-prefix-len', one('--random-prefix-len', '0'), 0),
    randomOutputLen: integer('--random-output-len', one('--random-output-len', '64'), 1),
    randomRangeRatio: rangeRatio,
    ignoreEos: flags.has('--ignore-eos'),
    seed: integer('--seed', one('--seed', '0'), 0),
    loraModules: flags.get('--lora-modules') ?? [],
    loraAssignment: oneOf('--lora-assignment', one('--lora-assignment', 'random'), ADAPTER_ASSIGNMENTS),
    loraAlpha: positive('--lora-alpha', one('--lora-alpha', '1')),
    slo,
    percentileMetrics,
    metricPercentiles,
    saveResult: flags.get('--save-result')?.[0] ?? null,
    resultDir: flags.get('--result-dir')?.[0] ?? null,
    resultFilename: one('--result-filename', 'serve'),
    promptFormat,
    requestTimeoutSeconds: positive('--request-timeout', one('--request-timeout', '600')),
  };
}
