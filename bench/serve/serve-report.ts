import { type BenchReport, type LineSeries, svgLineChart } from '../report.js';
import { percentileKey } from './statistics.js';
import type { RequestOutcome } from './stream-request.js';
import type { LatencyMetric } from './summary.js';

/** One finished run at one request rate. */
export interface ServeRun {
  requestRate: number;
  outcomes: RequestOutcome[];
  summary: Record<string, number | null>;
  perAdapter: Record<string, Record<string, number | null>>;
}

export interface RunSettings {
  baseUrl: string;
  endpoint: string;
  model: string;
  tokenizer: string | null;
  numPrompts: number;
  burstiness: number;
  maxConcurrency: number | null;
  percentiles: readonly number[];
  metrics: readonly LatencyMetric[];
}

const METRIC_TITLES: Record<LatencyMetric, [string, string]> = {
  ttft: ['Time to First Token', 'TTFT'],
  tpot: ['Time per Output Token (excl. 1st token)', 'TPOT'],
  itl: ['Inter-token Latency', 'ITL'],
  e2el: ['End-to-end Latency', 'E2EL'],
};

export function rateText(rate: number): string {
  return rate === Number.POSITIVE_INFINITY ? 'inf' : String(rate);
}

function fixed(value: number | null | undefined): string {
  return value === null || value === undefined
    ? '-'
    : Number.isInteger(value)
      ? String(value)
      : value.toFixed(2);
}

/** vLLM's end-of-run block, plus failed requests, SLO attainment and a per-adapter table. */
export function terminalTable(run: ServeRun, settings: RunSettings): string {
  const s = run.summary;
  const line = (label: string, value: number | string | null | undefined) =>
    `${label.padEnd(40)} ${typeof value === 'string' ? value : fixed(value)}`;
  const lines = [
    `${'='.repeat(12)} Serving Benchmark Result ${'='.repeat(12)}`,
    line('Successful requests:', s.completed),
    line('Failed requests:', s.failed),
    line('Request rate configured (RPS):', rateText(run.requestRate)),
    line('Maximum request concurrency:', settings.maxConcurrency ?? 'none'),
    line('Benchmark duration (s):', s.duration),
    line('Total input tokens:', s.total_input_tokens),
    line('Total generated tokens:', s.total_output_tokens),
    line('Request throughput (req/s):', s.request_throughput),
    ...(s.request_goodput === null ? [] : [line('Request goodput (req/s):', s.request_goodput)]),
    ...(s.slo_attainment === undefined ? [] : [line('SLO attainment (%):', (s.slo_attainment ?? 0) * 100)]),
    line('Output token throughput (tok/s):', s.output_throughput),
    line('Peak output token throughput (tok/s):', s.max_output_tokens_per_s),
    line('Peak concurrent requests:', s.max_concurrent_requests),
    line('Total Token throughput (tok/s):', s.total_token_throughput),
  ];
  for (const metric of settings.metrics) {
    const [title, short] = METRIC_TITLES[metric];
    lines.push(title.padStart(25 + title.length / 2, '-').padEnd(50, '-'));
    lines.push(line(`Mean ${short} (ms):`, s[`mean_${metric}_ms`]));
    lines.push(line(`Median ${short} (ms):`, s[`median_${metric}_ms`]));
    for (const p of settings.percentiles)
      lines.push(line(`P${p} ${short} (ms):`, s[`${percentileKey(p)}_${metric}_ms`]));
  }
  lines.push('='.repeat(50));
  const adapters = adapterRows(run, settings);
  if (adapters.length > 1) {
    const cols = Object.keys(adapters[0]);
    const cells = adapters.map((row) =>
      cols.map((c) => (typeof row[c] === 'number' ? fixed(row[c]) : row[c])),
    );
    const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
    lines.push('Per model:');
    lines.push(cols.map((c, i) => c.padEnd(widths[i])).join('  '));
    for (const row of cells) lines.push(row.map((v, i) => v.padEnd(widths[i])).join('  '));
  }
  return lines.join('\n');
}

/** Per adapter (or base model): counts, throughput, mean and tail latencies, SLO attainment. */
function adapterRows(run: ServeRun, settings: RunSettings): Array<Record<string, string | number>> {
  const tail = percentileKey(Math.max(...settings.percentiles, 50));
  return Object.entries(run.perAdapter).map(([model, s]) => ({
    model,
    completed: s.completed ?? 0,
    failed: s.failed ?? 0,
    'req/s': s.request_throughput ?? 0,
    'out tok/s': s.output_throughput ?? 0,
    'mean TTFT ms': s.mean_ttft_ms ?? 0,
    [`${tail} TTFT ms`]: s[`${tail}_ttft_ms`] ?? 0,
    'mean TPOT ms': s.mean_tpot_ms ?? 0,
    [`${tail} E2EL ms`]: s[`${tail}_e2el_ms`] ?? 0,
    'SLO %': s.slo_attainment === undefined ? '-' : (s.slo_attainment ?? 0) * 100,
  }));
}

/** `--save-result`: vLLM's result JSON (settings, figures, per-request arrays) plus the per-adapter figures. */
export function vllmResult(run: ServeRun, settings: RunSettings): Record<string, unknown> {
  const completed = run.outcomes.filter((o) => o.success);
  return {
    date: new Date().toISOString(),
    backend: settings.endpoint === '/v1/chat/completions' ? 'openai-chat' : 'openai',
    base_url: settings.baseUrl,
    endpoint: settings.endpoint,
    model_id: settings.model,
    tokenizer_id: settings.tokenizer,
    num_prompts: settings.numPrompts,
    request_rate: run.requestRate === Number.POSITIVE_INFINITY ? 'inf' : run.requestRate,
    burstiness: settings.burstiness,
    max_concurrency: settings.maxConcurrency,
    ...run.summary,
    input_lens: completed.map((o) => o.promptTokens),
    output_lens: completed.map((o) => o.outputTokens),
    ttfts: completed.map((o) => o.ttft),
    itls: completed.map((o) => o.itl),
    generated_texts: completed.map((o) => o.generatedText),
    errors: run.outcomes.filter((o) => !o.success).map((o) => o.error),
    per_adapter: run.perAdapter,
  };
}

/** Empirical CDF points (value, fraction ≤ value) of `values`, thinned to at most ~200 points. */
export function cdfPoints(values: readonly number[]): [number, number][] {
  const sorted = [...values].sort((a, b) => a - b);
  const stride = Math.max(1, Math.ceil(sorted.length / 200));
  const points: [number, number][] = [];
  for (let i = 0; i < sorted.length; i += stride) points.push([sorted[i], (i + 1) / sorted.length]);
  if (sorted.length > 0 && points.at(-1)![1] !== 1) points.push([sorted.at(-1)!, 1]);
  return points;
}

/** The Markdown/JSON/SVG record for bench/results: one row per run, per-adapter tables, plots. */
export function serveBenchReport(
  name: string,
  runs: ServeRun[],
  settings: RunSettings,
  context: Record<string, string | number>,
): BenchReport {
  const tail = percentileKey(Math.max(...settings.percentiles, 50));
  const rows = runs.map((run) => {
    const s = run.summary;
    return {
      'rate (req/s)': rateText(run.requestRate),
      completed: s.completed ?? 0,
      failed: s.failed ?? 0,
      'req/s': s.request_throughput ?? 0,
      'out tok/s': s.output_throughput ?? 0,
      'mean TTFT ms': s.mean_ttft_ms ?? 0,
      [`${tail} TTFT ms`]: s[`${tail}_ttft_ms`] ?? 0,
      'mean TPOT ms': s.mean_tpot_ms ?? 0,
      'mean ITL ms': s.mean_itl_ms ?? 0,
      [`${tail} E2EL ms`]: s[`${tail}_e2el_ms`] ?? 0,
      'SLO %': s.slo_attainment === undefined ? '-' : (s.slo_attainment ?? 0) * 100,
    };
  });
  const ms = (values: number[]) => values.map((v) => v * 1000);
  const cdf: LineSeries[] = runs.flatMap((run) => {
    const done = run.outcomes.filter((o) => o.success);
    const at = `rate ${rateText(run.requestRate)}`;
    return [
      { label: `E2EL, ${at}`, points: cdfPoints(ms(done.map((o) => o.latency))) },
      { label: `TTFT, ${at}`, points: cdfPoints(ms(done.map((o) => o.ttft))) },
    ];
  });
  const plots = [
    {
      name: 'latency-cdf',
      svg: svgLineChart('Latency CDF', { x: 'ms', y: 'fraction of requests', yMax: 1 }, cdf),
    },
  ];
  const finite = runs.filter((run) => Number.isFinite(run.requestRate));
  if (finite.length >= 2) {
    const against = (key: string, scale = 1): [number, number][] =>
      finite.map((run) => [run.requestRate, (run.summary[key] ?? 0) * scale]);
    plots.push({
      name: 'throughput-vs-load',
      svg: svgLineChart('Throughput vs offered load', { x: 'request rate (req/s)', y: 'tokens/s' }, [
        { label: 'output tokens/s', points: against('output_throughput') },
      ]),
    });
    if (finite[0].summary.slo_attainment !== undefined) {
      plots.push({
        name: 'slo-attainment-vs-load',
        svg: svgLineChart(
          'SLO attainment vs offered load',
          { x: 'request rate (req/s)', y: 'SLO attainment (%)', yMax: 100 },
          [{ label: 'requests meeting every --goodput SLO', points: against('slo_attainment', 100) }],
        ),
      });
    }
  }
  return {
    name,
    title: 'Serving benchmark (vllm bench serve workload)',
    context,
    rows,
    chart: {
      unit: 'output tokens/s',
      bars: runs.map((run) => ({
        label: `rate ${rateText(run.requestRate)}`,
        value: run.summary.output_throughput ?? 0,
      })),
    },
    tables: runs.map((run) => ({
      title: `Per model at rate ${rateText(run.requestRate)}`,
      rows: adapterRows(run, settings),
    })),
    plots,
  };
}
