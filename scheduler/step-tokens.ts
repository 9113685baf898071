import { type Engine, logitRows, type RowSampling, type StepPlan } from '../kernels/engine.js';
import type { sampleToken, TokenSampling } from '../kernels/sample.js';
import type { Uniform } from './prng.js';

/** What turns one logit row into a token: its sequence's settings and seeded random stream. */
export interface RowSampler {
  readonly sampling: TokenSampling;
  readonly uniform: Uniform;
}

/**
 * Runs one engine step and returns one token id per logit row, rows in plan order. An engine
 * that samples itself (Engine.sampleStep) reads back ids instead of [rows × vocab] logits;
 * otherwise `sample` runs on the host. Each row draws exactly one uniform from its sequence's
 * stream on either path (before the step on the engine, after it on the host), so a seeded
 * request gets the same tokens whichever path serves it.
 */
export async function stepTokens(
  engine: Engine,
  plan: StepPlan,
  rows: readonly RowSampler[],
  sample: typeof sampleToken,
  onEngine: boolean,
): Promise<Int32Array> {
  const expected = logitRows(plan);
  if (rows.length !== expected) throw new Error(`${rows.length} samplers for ${expected} logit rows`);
  if (onEngine && engine.sampleStep) {
    const sampling: RowSampling[] = rows.map(({ sampling: s, uniform }) => ({
      temperature: s.temperature,
      topK: s.topK,
      topP: s.topP,
      uniform: uniform(),
    }));
    const ids = await engine.sampleStep(plan, sampling);
    if (ids.length !== expected) throw new Error(`returned ${ids.length} token ids, expected ${expected}`);
    return ids;
  }
  const vocab = engine.config.vocabSize;
  const logits = await engine.step(plan);
  if (logits.length !== expected * vocab)
    throw new Error(`returned ${logits.length} logits, expected ${expected * vocab}`);
  return Int32Array.from(rows, ({ sampling, uniform }, r) =>
    sample(logits.subarray(r * vocab, (r + 1) * vocab), sampling, uniform()),
  );
}
