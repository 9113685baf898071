import { type Engine, logitRows, type RowSampling, type SampledStep, type StepPlan } from './engine.js';
import { adjustedLogits, maskedLogits } from './logit-adjustments.js';
import { collectLogprobs, widenForLogprobs } from './logprob-rows.js';
import { type LogprobsMode, processedLogits, rowLogprobs, rowScores } from './logprobs.js';
import { sampleToken } from './sample.js';

/**
 * Engine.sampleStep for engines that return logits (reference, onnx, merged): runs step(), samples
 * each row on the host with `sample` (kernels/sample.ts's definition), and computes the
 * log-probabilities the sequences ask for from the same logits (kernels/logprobs.ts). A sequence
 * that asks for prompt log-probabilities runs with logits 'all' so its prompt rows come back too;
 * they are scored, not sampled. `mode` (vLLM's --logprobs-mode) says what a sampled row's scores
 * are (raw ones of a structured output's row masked as vLLM masks it, LogitAdjustments.scoreOnly);
 * prompt rows are always scored as log-probabilities of the raw logits, as vLLM's are.
 */
export async function sampleOnHost(
  engine: Pick<Engine, 'step' | 'config'>,
  plan: StepPlan,
  sampling: ReadonlyArray<RowSampling>,
  sample: typeof sampleToken = sampleToken,
  mode: LogprobsMode = 'raw_logprobs',
): Promise<SampledStep> {
  const expected = logitRows(plan);
  if (sampling.length !== expected) throw new Error(`${sampling.length} samplers for ${expected} logit rows`);
  const vocab = engine.config.vocabSize;
  const { wide, rows } = widenForLogprobs(plan);
  const logits = await engine.step(wide);
  if (logits.length !== rows.length * vocab)
    throw new Error(`returned ${logits.length} logits, expected ${rows.length * vocab}`);
  const rowOf = (w: number) => logits.subarray(w * vocab, (w + 1) * vocab);
  const tokens = new Int32Array(expected);
  rows.forEach(({ sampleRow }, w) => {
    if (sampleRow < 0) return;
    const settings = sampling[sampleRow];
    const row = settings.adjustments ? adjustedLogits(rowOf(w), settings.adjustments) : rowOf(w);
    tokens[sampleRow] = sample(row, settings, settings.uniform);
  });
  const scored = collectLogprobs(plan, rows, (w) => {
    const { target, topK, sampleRow } = rows[w];
    if (target !== 'sampled') return rowLogprobs(rowOf(w), target, topK ?? 0);
    const settings = sampling[sampleRow];
    const processed = mode === 'processed_logprobs' || mode === 'processed_logits';
    const guided = settings.adjustments?.scoreOnly;
    const row = processed
      ? processedLogits(rowOf(w), settings)
      : guided
        ? maskedLogits(rowOf(w), guided)
        : rowOf(w);
    return rowScores(row, tokens[sampleRow], topK ?? 0, mode.endsWith('_logits'));
  });
  return { tokens, ...scored };
}
