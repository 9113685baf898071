/**
 * Edits of a few tokens' logits before a row is sampled: vLLM's allowed_token_ids, logit_bias,
 * min_tokens, and its repetition, frequency and presence penalties, in vLLM's order. With
 * allowOnly, every other token's logit is −Infinity first. Each listed token's logit l becomes
 *   l₁ = l + bias                                   (logit_bias, LoRAX's watermark; -Infinity: min_tokens' mask)
 *   l₂ = l₁ > 0 ? l₁ / repetition : l₁ · repetition (repetition_penalty, on tokens already seen)
 *   l₃ = l₂ − subtract                              (frequency · count + presence, output tokens)
 * Tokens not listed keep their logit. Sparse because a row touches only the tokens its sequence
 * has seen or the request names, a few hundred of a vocabulary of tens of thousands.
 * Raw log-probabilities (vLLM's default logprobs mode) see none of these edits but structured
 * output's mask (scoreOnly).
 */
export interface LogitAdjustments {
  /** Distinct token ids. */
  readonly tokens: Int32Array;
  /** Added first. */
  readonly bias: Float32Array;
  /** Divides a positive logit, multiplies a negative one; 1 leaves it. */
  readonly repetition: Float32Array;
  /** Subtracted last. */
  readonly subtract: Float32Array;
  /** vLLM's allowed_token_ids: the only tokens that keep a finite logit (distinct ids); null: all. */
  readonly allowOnly?: Int32Array | null;
  /**
   * Structured output's next tokens (within allowOnly). vLLM masks the logits with them before its
   * sampler, so even its raw log-probabilities are of the masked row (renormalised over these);
   * allowed_token_ids and the other edits act inside the sampler, after raw log-probabilities.
   * Null or absent: no structured output here.
   */
  readonly scoreOnly?: Int32Array | null;
}

/** A copy of `row` where only `allowed` keep their logits (the rest −Infinity). */
export function maskedLogits(row: ArrayLike<number>, allowed: Int32Array): Float32Array {
  const out = new Float32Array(row.length).fill(Number.NEGATIVE_INFINITY);
  for (const t of allowed) out[t] = row[t];
  return out;
}

/** A copy of `row` with `adjustments` applied (the engine's logits stay as they are). */
export function adjustedLogits(row: Float32Array, adjustments: LogitAdjustments): Float32Array {
  const { tokens, bias, repetition, subtract, allowOnly } = adjustments;
  let out: Float32Array;
  // Edits of a masked token leave it at −Infinity: −∞ + b, −∞ · r and −∞ − s are all −∞.
  if (allowOnly) out = maskedLogits(row, allowOnly);
  else out = row.slice();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    // Rounded to f32 after each operation, as a framework computing in f32 logits would.
    let l = Math.fround(out[t] + bias[i]);
    const r = repetition[i];
    if (r !== 1) l = Math.fround(l > 0 ? l / r : l * r);
    out[t] = l - subtract[i];
  }
  return out;
}
