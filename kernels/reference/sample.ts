/** What sampleToken needs of a request's SamplingParams. */
export interface TokenSampling {
  /** 0 means greedy. */
  temperature: number;
  /** 0 means off. */
  topK: number;
  /** 1 means off. */
  topP: number;
}

/** Index of the largest value; the lowest index wins ties (NaN never wins). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    if (row[i] > bestValue) {
      bestValue = row[i];
      best = i;
    }
  }
  return best;
}

/**
 * Draws one token from a row of logits, deterministically given `uniform` ∈ [0, 1), so a device
 * sampler can be checked against it token for token:
 *  1. temperature 0: argmax.
 *  2. p = softmax(logits / temperature), in f64 with the maximum subtracted.
 *  3. Candidates in descending-probability order, ties to the lower index (probability is
 *     monotone in the logit, so this sorts by logit).
 *  4. top-k (0 = off) keeps the first k; their probabilities are renormalised (as HF's and
 *     vLLM's top-k mask before top-p's softmax).
 *  5. top-p (1 = off) keeps the shortest prefix whose cumulative probability reaches top_p.
 *  6. Renormalise the kept prefix and return the first candidate whose cumulative probability
 *     exceeds uniform (inverse CDF, walked in the same order).
 */
export function sampleToken(logits: Float32Array, params: TokenSampling, uniform: number): number {
  if (!(uniform >= 0 && uniform < 1)) throw new Error(`sampleToken: uniform ${uniform} is not in [0, 1)`);
  if (params.temperature <= 0) return argmax(logits);
  const vocab = logits.length;
  const maxLogit = logits[argmax(logits)];
  const weights = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) weights[i] = Math.exp((logits[i] - maxLogit) / params.temperature);

  const order = new Int32Array(vocab);
  for (let i = 0; i < vocab; i++) order[i] = i;
  order.sort((a, b) => logits[b] - logits[a] || a - b);

  let kept = params.topK > 0 ? Math.min(params.topK, vocab) : vocab;
  let keptWeight = 0;
  for (let i = 0; i < kept; i++) keptWeight += weights[order[i]];

  if (params.topP < 1) {
    const target = params.topP * keptWeight;
    let cumulative = 0;
    for (let i = 0; i < kept; i++) {
      cumulative += weights[order[i]];
      if (cumulative >= target) {
        kept = i + 1;
        keptWeight = cumulative;
        break;
      }
    }
  }

  const threshold = uniform * keptWeight;
  let cumulative = 0;
  for (let i = 0; i < kept; i++) {
    cumulative += weights[order[i]];
    if (threshold < cumulative) return order[i];
  }
  // Rounding can leave the last cumulative sum a hair below the threshold.
  return order[kept - 1];
}
