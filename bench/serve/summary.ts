import { mean, meetsSlo, percentile, percentileKey, type Slo, std } from './statistics.js';
import type { RequestOutcome } from './stream-request.js';

export type LatencyMetric = 'ttft' | 'tpot' | 'itl' | 'e2el';
export const LATENCY_METRICS: readonly LatencyMetric[] = ['ttft', 'tpot', 'itl', 'e2el'];

export interface SummaryOptions {
  /** `--metric-percentiles`, e.g. [90, 99]. */
  percentiles: readonly number[];
  /** `--percentile-metrics`. */
  metrics: readonly LatencyMetric[];
  /** `--goodput`; null when none was given. */
  slo: Slo | null;
}

/** Per request, in seconds: TPOT is 0 for a one-token output, as in vLLM (it counts as meeting a TPOT SLO). */
function tpotOf(outcome: RequestOutcome): number {
  return outcome.outputTokens > 1 ? (outcome.latency - outcome.ttft) / (outcome.outputTokens - 1) : 0;
}

/** Peak number of requests in flight at once, from their start and end times. */
export function maxConcurrentRequests(outcomes: readonly RequestOutcome[]): number {
  const events = outcomes.flatMap((o) => [
    { at: o.startOffset, delta: 1 },
    { at: o.startOffset + o.latency, delta: -1 },
  ]);
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let peak = 0;
  for (const { delta } of events) {
    current += delta;
    peak = Math.max(peak, current);
  }
  return peak;
}

/** The most streamed chunks (≈ tokens) that arrived within one whole second of the run. */
export function maxOutputTokensPerSecond(outcomes: readonly RequestOutcome[]): number {
  const perSecond = new Map<number, number>();
  for (const o of outcomes) {
    if (!o.success) continue;
    let at = o.startOffset + o.ttft;
    const add = () => perSecond.set(Math.floor(at), (perSecond.get(Math.floor(at)) ?? 0) + 1);
    add();
    for (const gap of o.itl) {
      at += gap;
      add();
    }
  }
  return Math.max(0, ...perSecond.values());
}

/**
 * The figures of `vllm bench serve` under its key names (`request_throughput`,
 * `mean_ttft_ms`, `p99_itl_ms`, …) over `outcomes`, plus `failed` and, with an SLO,
 * `request_goodput` and `slo_attainment` (good requests / all requests, failed ones miss).
 */
export function summarize(
  outcomes: readonly RequestOutcome[],
  durationSeconds: number,
  options: SummaryOptions,
): Record<string, number | null> {
  const completed = outcomes.filter((o) => o.success);
  const ms = (seconds: readonly number[]) => seconds.map((s) => s * 1000);
  const series: Record<LatencyMetric, number[]> = {
    ttft: ms(completed.map((o) => o.ttft)),
    tpot: ms(completed.filter((o) => o.outputTokens > 1).map(tpotOf)),
    itl: ms(completed.flatMap((o) => o.itl)),
    e2el: ms(completed.map((o) => o.latency)),
  };
  const totalInput = completed.reduce((sum, o) => sum + o.promptTokens, 0);
  const totalOutput = completed.reduce((sum, o) => sum + o.outputTokens, 0);
  const result: Record<string, number | null> = {
    duration: durationSeconds,
    completed: completed.length,
    failed: outcomes.length - completed.length,
    total_input_tokens: totalInput,
    total_output_tokens: totalOutput,
    request_throughput: completed.length / durationSeconds,
    request_goodput: null,
    output_throughput: totalOutput / durationSeconds,
    total_token_throughput: (totalInput + totalOutput) / durationSeconds,
    max_output_tokens_per_s: maxOutputTokensPerSecond(outcomes),
    max_concurrent_requests: maxConcurrentRequests(outcomes),
  };
  if (options.slo) {
    const slo = options.slo;
    const good = completed.filter((o) =>
      meetsSlo(slo, { ttft: o.ttft * 1000, tpot: tpotOf(o) * 1000, e2el: o.latency * 1000 }),
    ).length;
    result.request_goodput = good / durationSeconds;
    result.slo_attainment = outcomes.length === 0 ? 0 : good / outcomes.length;
  }
  for (const metric of options.metrics) {
    const values = series[metric];
    result[`mean_${metric}_ms`] = mean(values);
    result[`median_${metric}_ms`] = percentile(values, 50);
    result[`std_${metric}_ms`] = std(values);
    for (const p of options.percentiles) result[`${percentileKey(p)}_${metric}_ms`] = percentile(values, p);
  }
  return result;
}

/** summarize() per requested model (adapter or base), over the same duration. */
export function summarizeByModel(
  outcomes: readonly RequestOutcome[],
  durationSeconds: number,
  options: SummaryOptions,
): Record<string, Record<string, number | null>> {
  const byModel = new Map<string, RequestOutcome[]>();
  for (const o of outcomes) byModel.set(o.model, [...(byModel.get(o.model) ?? []), o]);
  const names = [...byModel.keys()].sort();
  return Object.fromEntries(
    names.map((name) => [name, summarize(byModel.get(name)!, durationSeconds, options)]),
  );
}
