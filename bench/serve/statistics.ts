/**
 * Percentiles, means and the goodput SLO as `vllm bench serve` computes them (numpy's
 * defaults: linear interpolation between closest ranks, population standard deviation), so
 * figures from Loom's benchmark and vLLM's compare one to one.
 */

/** numpy.percentile's default ("linear"): rank p/100·(n−1), interpolated between neighbours. 0 when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

/** Min / median / max of a measure over a benchmark's rounds, and that as text ("1.20 / 1.31 / 1.50"). */
export function spread(values: readonly number[]): {
  min: number;
  median: number;
  max: number;
  text: string;
} {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const median = percentile(values, 50);
  const digits = median >= 100 ? 0 : median >= 10 ? 1 : 2;
  return { min, median, max, text: [min, median, max].map((v) => v.toFixed(digits)).join(' / ') };
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Population standard deviation (numpy.std's default). */
export function std(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((sum, v) => sum + (v - m) ** 2, 0) / values.length);
}

/** vLLM's key for a percentile: `p99`, `p99.9`. */
export function percentileKey(p: number): string {
  return `p${Number.isInteger(p) ? p.toFixed(0) : String(p)}`;
}

export type SloMetric = 'ttft' | 'tpot' | 'e2el';
export const SLO_METRICS: readonly SloMetric[] = ['ttft', 'tpot', 'e2el'];
/** Service-level objectives in milliseconds; a request is good when it meets every one given. */
export type Slo = Partial<Record<SloMetric, number>>;

/** `--goodput ttft:500 tpot:50`: vLLM's KEY:MILLISECONDS pairs. */
export function parseGoodput(pairs: readonly string[]): Slo {
  const slo: Slo = {};
  for (const pair of pairs) {
    const match = /^([a-z0-9]+):(.+)$/.exec(pair);
    if (!match) throw new RangeError(`--goodput: "${pair}" is not KEY:MILLISECONDS (e.g. ttft:500)`);
    const [, key, value] = match;
    if (!(SLO_METRICS as readonly string[]).includes(key))
      throw new RangeError(`--goodput: unknown metric "${key}" (use ${SLO_METRICS.join(', ')})`);
    const ms = Number(value);
    if (!Number.isFinite(ms) || ms <= 0)
      throw new RangeError(`--goodput: ${key} needs a positive number of milliseconds, got "${value}"`);
    slo[key as SloMetric] = ms;
  }
  return slo;
}

/** Whether one request's figures (milliseconds) meet every objective in `slo`. */
export function meetsSlo(slo: Slo, figuresMs: Record<SloMetric, number>): boolean {
  return SLO_METRICS.every((metric) => slo[metric] === undefined || figuresMs[metric] <= slo[metric]);
}
