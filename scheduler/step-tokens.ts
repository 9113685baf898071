import {
  type Engine,
  logitRows,
  type RowSampling,
  type SampledStep,
  type StepPlan,
} from '../kernels/engine.js';
import { sampleOnHost } from '../kernels/host-sampling.js';
import type { LogitAdjustments } from '../kernels/logit-adjustments.js';
import type { LogprobsMode } from '../kernels/logprobs.js';
import type { sampleToken, TokenSampling } from '../kernels/sample.js';
import type { Uniform } from './prng.js';

/** What turns one logit row into a token: its sequence's settings and seeded random stream. */
export interface RowSampler {
  readonly sampling: TokenSampling;
  readonly uniform: Uniform;
  /** This step's edits of the row's logits (penalties, logit_bias, min_tokens); null: none. */
  logitAdjustments(): LogitAdjustments | null;
}

/**
 * Runs one engine step and returns one token id per logit row, rows in plan order, with the
 * log-probabilities the plan's sequences asked for. An engine that samples itself
 * (Engine.sampleStep) reads back ids (and k log-probabilities per row) instead of [rows × vocab]
 * logits; otherwise `sample` runs on the host. Each row draws exactly one uniform from its
 * sequence's stream before the step on either path, so a seeded request gets the same tokens
 * whichever path serves it. Engines compute raw, unmasked log-probabilities only: any other
 * --logprobs-mode samples on the host.
 */
export async function stepTokens(
  engine: Engine,
  plan: StepPlan,
  rows: readonly RowSampler[],
  sample: typeof sampleToken,
  onEngine: boolean,
  logprobsMode: LogprobsMode = 'raw_logprobs',
): Promise<SampledStep> {
  const expected = logitRows(plan);
  if (rows.length !== expected) throw new Error(`${rows.length} samplers for ${expected} logit rows`);
  const sampling: RowSampling[] = rows.map((row) => ({
    temperature: row.sampling.temperature,
    topK: row.sampling.topK,
    topP: row.sampling.topP,
    minP: row.sampling.minP,
    ...(row.sampling.typicalP === undefined ? {} : { typicalP: row.sampling.typicalP }),
    uniform: row.uniform(),
    adjustments: row.logitAdjustments(),
  }));
  // The engine scores raw rows unmasked: a step where structured output meets log-probabilities
  // (their rows masked, as vLLM's are) samples on the host.
  const scoresMasked =
    sampling.some((s) => s.adjustments?.scoreOnly) && plan.sequences.some((s) => s.logprobs?.sampled);
  // Typical decoding has no device kernel: its rows are drawn on the host.
  const typical = sampling.some((s) => (s.typicalP ?? 1) < 1);
  if (!(onEngine && engine.sampleStep && logprobsMode === 'raw_logprobs' && !scoresMasked && !typical))
    return sampleOnHost(engine, plan, sampling, sample, logprobsMode);
  const result = await engine.sampleStep(plan, sampling);
  if (result.tokens.length !== expected)
    throw new Error(`returned ${result.tokens.length} token ids, expected ${expected}`);
  return result;
}
