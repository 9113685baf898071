import type { RowSampling } from './engine.js';
import { adjustedLogits } from './logit-adjustments.js';
import { keptTokens } from './sample.js';

/**
 * Log-probabilities of a logit row, as vLLM reports them by default (`logprobs_mode=raw_logprobs`):
 * the log-softmax of the raw logits the sampler drew from, before temperature, top-k or top-p
 * (so they do not depend on the sampling settings). Shared by the host sampler's path and the
 * tests that check the webgpu kernel (logprobs.wgsl), which computes the same on the device.
 * vLLM's other --logprobs-mode values are here too (processedLogits, rowScores), on the host.
 */

/**
 * vLLM's --logprobs-mode: what a sampled token's `logprob` (and its top tokens') reports: the
 * log-softmax of the raw logits (the default), the raw logits themselves, or either of the
 * processed logits the token was drawn from (processedLogits).
 */
export const LOGPROBS_MODES = [
  'raw_logprobs',
  'raw_logits',
  'processed_logprobs',
  'processed_logits',
] as const;
export type LogprobsMode = (typeof LOGPROBS_MODES)[number];

/** vLLM's default `--max-logprobs`: the most top tokens one row may ask for unless the flag says otherwise. */
export const DEFAULT_MAX_LOGPROBS = 20;

/** One row's answer: the chosen token's log-probability and the row's most likely tokens. */
export interface TokenLogprobs {
  /** The token the row scored: the one sampled from it, or (prompt logprobs) the prompt's next token. */
  tokenId: number;
  logprob: number;
  /**
   * vLLM's rank of the scored token: how many tokens of the row have a logit at least as large
   * (itself included; 1 for the argmax, ties ranked last). NaN logits count for nothing.
   */
  rank: number;
  /** The top tokens, most likely first (ties: the lower id first), and their log-probabilities. */
  topIds: Int32Array;
  topLogprobs: Float32Array;
}

/** log Σ exp(logits), in f64 from the largest logit (−Infinity for a row of −Infinity). */
export function logSumExp(row: ArrayLike<number>): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum);
}

/**
 * The `k` largest logits' indices, largest first, ties to the lower index; NaN ranks below every
 * number. One pass keeping a sorted list of k, so a 32k vocabulary costs no sort.
 */
export function topIndices(row: ArrayLike<number>, k: number): Int32Array {
  const count = Math.min(k, row.length);
  const ids = new Int32Array(count);
  if (count === 0) return ids;
  const values = new Float64Array(count);
  let size = 0;
  for (let i = 0; i < row.length; i++) {
    const x = Number.isNaN(row[i]) ? Number.NEGATIVE_INFINITY : row[i];
    if (size === count && !(x > values[count - 1])) continue;
    let at = Math.min(size, count - 1);
    while (at > 0 && x > values[at - 1]) {
      values[at] = values[at - 1];
      ids[at] = ids[at - 1];
      at--;
    }
    values[at] = x;
    ids[at] = i;
    if (size < count) size++;
  }
  return ids;
}

/** vLLM's rank of `tokenId` in `row` (TokenLogprobs.rank). */
export function rankOf(row: ArrayLike<number>, tokenId: number): number {
  const x = row[tokenId];
  let count = 0;
  for (let i = 0; i < row.length; i++) if (row[i] >= x) count++;
  return count;
}

/** Row's log-probabilities: of `tokenId`, and of its `topK` most likely tokens. */
export function rowLogprobs(row: ArrayLike<number>, tokenId: number, topK: number): TokenLogprobs {
  const norm = logSumExp(row);
  const topIds = topIndices(row, topK);
  return {
    tokenId,
    // f32 like the listed ones (and the device's), so a sampled token among the top has one value.
    logprob: Math.fround(row[tokenId] - norm),
    rank: rankOf(row, tokenId),
    topIds,
    topLogprobs: Float32Array.from(topIds, (id) => row[id] - norm),
  };
}

/**
 * vLLM's processed logits of a sampled row: its logit edits applied (penalties, logit_bias,
 * allowed tokens and structured output's mask); then, for a row sampled at a temperature, divided
 * by it, every token sampleToken could not draw (min-p, top-k, top-p) at −Infinity.
 */
export function processedLogits(row: Float32Array, settings: RowSampling): Float32Array {
  const adjusted = settings.adjustments ? adjustedLogits(row, settings.adjustments) : row.slice();
  if (settings.temperature <= 0) return adjusted;
  const out = new Float32Array(adjusted.length).fill(Number.NEGATIVE_INFINITY);
  for (const t of keptTokens(adjusted, settings)) out[t] = Math.fround(adjusted[t] / settings.temperature);
  return out;
}

/**
 * A row's answer as a mode reports it: log-probabilities (rowLogprobs), or, for the *_logits
 * modes, the logits themselves in their place (the top tokens are the same ones either way).
 */
export function rowScores(
  row: ArrayLike<number>,
  tokenId: number,
  topK: number,
  asLogits: boolean,
): TokenLogprobs {
  if (!asLogits) return rowLogprobs(row, tokenId, topK);
  const topIds = topIndices(row, topK);
  return {
    tokenId,
    logprob: Math.fround(row[tokenId]),
    rank: rankOf(row, tokenId),
    topIds,
    topLogprobs: Float32Array.from(topIds, (id) => row[id]),
  };
}
