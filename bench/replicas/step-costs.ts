import { readFileSync } from 'node:fs';

/**
 * What one replica's engine step costs, in milliseconds: a decode step of `batch` sequences
 * (every sequence with its own adapter), each prefill token of newly admitted requests, and
 * copying one adapter from host memory into the pool.
 */
export interface StepCosts {
  /** Measured decode step times: [batch size, ms], ascending by batch. */
  decodeMs: [number, number][];
  prefillMsPerToken: number;
  adapterLoadMs: number;
  /** Where the figures come from, for the report. */
  source: string;
}

/** Decode time at `batch`: linear between measured batch sizes, extrapolated past the ends. */
export function decodeStepMs(costs: StepCosts, batch: number): number {
  if (batch <= 0) return 0;
  const points = costs.decodeMs;
  if (points.length === 1) return points[0][1];
  let i = 1;
  while (i < points.length - 1 && points[i][0] < batch) i++;
  const [b0, t0] = points[i - 1];
  const [b1, t1] = points[i];
  return Math.max(0, t0 + ((t1 - t0) * (batch - b0)) / (b1 - b0));
}

/** One engine step: a decode over `batch` sequences, `prefillTokens` prompt tokens, `loads` adapter copies. */
export function stepMs(costs: StepCosts, batch: number, prefillTokens: number, loads: number): number {
  return decodeStepMs(costs, batch) + prefillTokens * costs.prefillMsPerToken + loads * costs.adapterLoadMs;
}

interface OnnxBenchRow {
  measure: string;
  base_ms_per_step: number | string;
  lora_ms_per_step: number | string;
}

/**
 * Step costs measured by bench/onnx-prefill-decode.ts (its JSON under bench/results/): decode with
 * one adapter per sequence at each measured batch size, prefill per token from its prompt run.
 */
export function stepCostsFromOnnxBench(file: string, adapterLoadMs: number): StepCosts {
  const report = JSON.parse(readFileSync(file, 'utf8')) as {
    rows: OnnxBenchRow[];
    context: Record<string, unknown>;
  };
  const decodeMs: [number, number][] = [];
  let prefillMsPerToken: number | null = null;
  for (const row of report.rows) {
    const decode = /^decode batch (\d+)$/.exec(row.measure);
    if (decode && typeof row.lora_ms_per_step === 'number')
      decodeMs.push([Number(decode[1]), row.lora_ms_per_step]);
    const prefill = /^prefill (\d+) tokens$/.exec(row.measure);
    if (prefill && typeof row.base_ms_per_step === 'number')
      prefillMsPerToken = row.base_ms_per_step / Number(prefill[1]);
  }
  if (decodeMs.length === 0 || prefillMsPerToken === null)
    throw new Error(`${file}: no "decode batch N" rows with lora_ms_per_step or no "prefill N tokens" row`);
  decodeMs.sort((a, b) => a[0] - b[0]);
  return {
    decodeMs,
    prefillMsPerToken,
    adapterLoadMs,
    source: `${file} (${report.context.model ?? 'model'}, ${report.context.date ?? 'undated'})`,
  };
}
