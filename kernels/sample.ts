/** What sampleToken needs of a request's SamplingParams. */
export interface TokenSampling {
  /** 0 means greedy. */
  temperature: number;
  /** 0 means off. */
  topK: number;
  /** 1 means off. */
  topP: number;
  /** 0 or absent means off: tokens less likely than minP × the most likely one's probability are dropped. */
  minP?: number;
  /**
   * 1 or absent means off: HF's typical decoding (TGI's and LoRAX's typical_p), after top-k and
   * top-p, as their warpers run (typicalSurvivors).
   */
  typicalP?: number;
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
 * How far below the top logit (in units of temperature) candidates are first looked for: the
 * tokens beyond e^-8 of the top token's weight rarely matter, so most draws sort a handful of
 * tokens instead of the vocabulary. When they do matter, the next width (then all) is tried.
 */
const CANDIDATE_WIDTHS = [8, 24, Number.POSITIVE_INFINITY];

/**
 * Draws one token from a row of logits, deterministically given `uniform` ∈ [0, 1), so a device
 * sampler can be checked against it token for token:
 *  1. temperature 0: argmax.
 *  2. Weights w = exp((logit − max) / temperature), i.e. softmax(logits / T) unnormalised, in f64.
 *  3. Candidates in descending-probability order, ties to the lower index (probability is
 *     monotone in the logit, so this sorts by logit).
 *  3½. min-p (0 = off) drops candidates whose weight is below min_p (the top token's weight is
 *     1): vLLM applies it to the tempered logits before top-k and top-p, so both see only what
 *     it kept.
 *  4. top-k (0 = off) keeps the first k; their probabilities are renormalised (as HF's and
 *     vLLM's top-k mask before top-p's softmax).
 *  5. top-p (1 = off) keeps the shortest prefix whose cumulative probability reaches top_p.
 *  6. Renormalise the kept prefix and return the first candidate whose cumulative probability
 *     exceeds uniform (inverse CDF, walked in the same order).
 * Sums over a prefix run in candidate order; the total over the whole vocabulary (no top-k) runs
 * in index order.
 */
export function sampleToken(logits: Float32Array, params: TokenSampling, uniform: number): number {
  if (!(uniform >= 0 && uniform < 1)) throw new Error(`sampleToken: uniform ${uniform} is not in [0, 1)`);
  if (params.temperature <= 0) return argmax(logits);
  if ((params.typicalP ?? 1) < 1) {
    const { weights } = samplingWeights(logits, params);
    const kept = keptTokens(logits, params);
    let keptWeight = 0;
    for (const t of kept) keptWeight += weights[t];
    const threshold = uniform * keptWeight;
    let cumulative = 0;
    for (const t of kept) {
      cumulative += weights[t];
      if (threshold < cumulative) return t;
    }
    return kept[kept.length - 1];
  }
  const { maxLogit, weights, total } = samplingWeights(logits, params);
  for (const width of CANDIDATE_WIDTHS) {
    const order = candidatesInOrder(logits, maxLogit - width * params.temperature);
    const token = drawFromPrefix(order, weights, total, params, uniform);
    if (token !== undefined) return token;
  }
  throw new Error('sampleToken: no candidate (logits are not finite)');
}

/** Steps 2 and 3½: each token's weight (min-p's dropped ones 0) and their total, in index order. */
function samplingWeights(
  logits: Float32Array,
  params: TokenSampling,
): { maxLogit: number; weights: Float64Array; total: number } {
  const maxLogit = logits[argmax(logits)];
  const minP = params.minP ?? 0;
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = Math.exp((logits[i] - maxLogit) / params.temperature);
    weights[i] = w < minP ? 0 : w;
    total += weights[i];
  }
  return { maxLogit, weights, total };
}

/**
 * The tokens sampleToken may draw from a row at temperature > 0, most likely first: steps 2–5
 * over the whole vocabulary, without the tokens of no weight (min-p's, −Infinity logits). vLLM's
 * processed log-probabilities (--logprobs-mode) are over these alone.
 */
export function keptTokens(logits: Float32Array, params: TokenSampling): Int32Array {
  if (!(params.temperature > 0)) throw new Error('keptTokens: a greedy row keeps every token');
  const { weights, total } = samplingWeights(logits, params);
  const order = candidatesInOrder(logits, Number.NEGATIVE_INFINITY);
  const prefix = keptPrefix(order, weights, total, params);
  // The whole vocabulary's order always holds the answer.
  if (!prefix) throw new Error('keptTokens: no candidate (logits are not finite)');
  const kept = order.subarray(0, prefix.kept).filter((t) => weights[t] > 0);
  const typicalP = params.typicalP ?? 1;
  return typicalP < 1 ? typicalSurvivors(kept, weights, typicalP) : kept;
}

/**
 * HF's typical decoding over the candidates top-k and top-p kept (their weights renormalised):
 * each token's distance from the entropy, |−log p − H|; the tokens closest to it, fewest first,
 * until their probability reaches typicalP (at least one), in the candidates' order.
 */
export function typicalSurvivors(kept: Int32Array, weights: Float64Array, typicalP: number): Int32Array {
  let total = 0;
  for (const t of kept) total += weights[t];
  const logp = Float64Array.from(kept, (t) => Math.log(weights[t] / total));
  let entropy = 0;
  for (const l of logp) entropy -= Math.exp(l) * l;
  const distance = logp.map((l) => Math.abs(-l - entropy));
  const byDistance = Array.from(kept.keys()).sort((a, b) => distance[a] - distance[b] || a - b);
  // HF keeps every token whose distance is at most the one at which the mass reaches typicalP.
  let cumulative = 0;
  let last = byDistance.length - 1;
  for (let i = 0; i < byDistance.length; i++) {
    cumulative += Math.exp(logp[byDistance[i]]);
    if (!(cumulative < typicalP)) {
      last = i;
      break;
    }
  }
  const limit = distance[byDistance[last]];
  return kept.filter((_, i) => distance[i] <= limit);
}

/** Tokens with logit ≥ cutoff, in sampling order: a prefix of the whole vocabulary's order. */
function candidatesInOrder(logits: Float32Array, cutoff: number): Int32Array {
  let count = 0;
  for (let i = 0; i < logits.length; i++) if (!(logits[i] < cutoff)) count++;
  const order = new Int32Array(count);
  for (let i = 0, n = 0; i < logits.length; i++) if (!(logits[i] < cutoff)) order[n++] = i;
  return order.sort((a, b) => logits[b] - logits[a] || a - b);
}

/**
 * Steps 4–5 over `order`, a prefix of the full candidate order: how many candidates top-k and
 * top-p keep, and their weight; undefined when the answer may lie beyond the prefix.
 */
function keptPrefix(
  order: Int32Array,
  weights: Float64Array,
  total: number,
  params: TokenSampling,
): { kept: number; keptWeight: number } | undefined {
  let kept = params.topK > 0 ? Math.min(params.topK, weights.length) : weights.length;
  let keptWeight = total;
  if (params.topK > 0) {
    if (kept > order.length) return undefined;
    keptWeight = 0;
    for (let i = 0; i < kept; i++) keptWeight += weights[order[i]];
  }

  if (params.topP < 1) {
    const target = params.topP * keptWeight;
    let cumulative = 0;
    let reached = false;
    const walk = Math.min(kept, order.length);
    for (let i = 0; i < walk; i++) {
      cumulative += weights[order[i]];
      if (cumulative >= target) {
        kept = i + 1;
        keptWeight = cumulative;
        reached = true;
        break;
      }
    }
    if (!reached && walk < kept) return undefined;
  }
  return { kept, keptWeight };
}

/**
 * Steps 4–6 over `order`, a prefix of the full candidate order. Returns undefined when the
 * answer may lie beyond the prefix (never when the prefix is the whole vocabulary).
 */
function drawFromPrefix(
  order: Int32Array,
  weights: Float64Array,
  total: number,
  params: TokenSampling,
  uniform: number,
): number | undefined {
  const prefix = keptPrefix(order, weights, total, params);
  if (!prefix) return undefined;
  const { kept, keptWeight } = prefix;
  const threshold = uniform * keptWeight;
  let cumulative = 0;
  const walk = Math.min(kept, order.length);
  for (let i = 0; i < walk; i++) {
    cumulative += weights[order[i]];
    if (threshold < cumulative) return order[i];
  }
  if (walk < kept) return undefined;
  // Rounding can leave the last cumulative sum a hair below the threshold: take the last kept
  // token that has any probability (never a masked, -Infinity one).
  let last = kept - 1;
  while (last > 0 && weights[order[last]] === 0) last--;
  return order[last];
}
