import type { LogitAdjustments } from '../kernels/logit-adjustments.js';

/** What a request asks of its logits before sampling (vLLM's SamplingParams of the same names). */
export interface LogitEditParams {
  /** Subtracted once from every token the choice has generated; 0 is off. */
  presencePenalty: number;
  /** Subtracted per time the choice has generated the token; 0 is off. */
  frequencyPenalty: number;
  /** Divides (positive) or multiplies (negative) logits of tokens in the prompt or the output; 1 is off. */
  repetitionPenalty: number;
  /** Added to those tokens' logits (already clamped to ±100, as vLLM does). */
  logitBias: ReadonlyMap<number, number>;
  /** Stop tokens may not be sampled before this many tokens are generated; 0 is off. */
  minTokens: number;
  /** vLLM's allowed_token_ids: the only tokens that may be sampled; null: all. */
  allowedTokenIds?: readonly number[] | null;
  /**
   * vLLM's bad_words as token sequences: a word's last token may not follow its other tokens
   * among the generated ones (a one-token word is never sampled).
   */
  badWords?: ReadonlyArray<readonly number[]>;
}

export const NO_LOGIT_EDITS: LogitEditParams = {
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: new Map(),
  minTokens: 0,
};

/**
 * One choice's logit edits, step after step: counts of its generated tokens (presence and
 * frequency see the output only, repetition the prompt too, as in vLLM), and the stop tokens
 * min_tokens masks. Made only for a choice that asks for an edit: the rest sample untouched
 * rows, on the engine where it samples.
 */
export class SequenceLogitEdits {
  private readonly outputCounts = new Map<number, number>();
  private readonly allowOnly: Int32Array | null;
  /** Distinct prompt tokens, kept only when repetition_penalty applies. */
  private readonly promptTokens: readonly number[];

  private constructor(
    private readonly params: LogitEditParams,
    promptTokens: readonly number[],
    /** EOS (unless ignore_eos) and stop_token_ids: what min_tokens masks. */
    private readonly stopTokenIds: readonly number[],
  ) {
    this.promptTokens = params.repetitionPenalty !== 1 ? [...new Set(promptTokens)] : [];
    this.allowOnly = params.allowedTokenIds ? Int32Array.from(new Set(params.allowedTokenIds)) : null;
  }

  /** Null when the request edits nothing. */
  static for(
    params: LogitEditParams,
    promptTokens: readonly number[],
    stopTokenIds: Iterable<number>,
  ): SequenceLogitEdits | null {
    const edits =
      params.presencePenalty !== 0 ||
      params.frequencyPenalty !== 0 ||
      params.repetitionPenalty !== 1 ||
      params.logitBias.size > 0 ||
      params.minTokens > 0 ||
      params.allowedTokenIds != null ||
      (params.badWords?.length ?? 0) > 0;
    return edits ? new SequenceLogitEdits(params, promptTokens, [...stopTokenIds]) : null;
  }

  /** A generated token (not a prompt token). */
  recordOutput(tokenId: number): void {
    this.outputCounts.set(tokenId, (this.outputCounts.get(tokenId) ?? 0) + 1);
  }

  /**
   * Last tokens of bad words whose other tokens end the generated ones, tokenIds[numPromptTokens..]
   * (vLLM's apply_bad_words: the prompt does not count).
   */
  private bannedNext(tokenIds: readonly number[], numPromptTokens: number): number[] {
    const end = tokenIds.length;
    const banned: number[] = [];
    for (const word of this.params.badWords ?? []) {
      const prefix = word.length - 1;
      if (prefix > end - numPromptTokens) continue;
      let matches = true;
      for (let i = 0; i < prefix && matches; i++) matches = tokenIds[end - prefix + i] === word[i];
      if (matches) banned.push(word[prefix]);
    }
    return banned;
  }

  /**
   * The edits of the row that samples the choice's next token, given the choice's tokens (prompt,
   * then the generated ones); null if none.
   */
  adjustments(tokenIds: readonly number[], numPromptTokens: number): LogitAdjustments | null {
    const p = this.params;
    const numGenerated = tokenIds.length - numPromptTokens;
    const slot = new Map<number, number>();
    const tokens: number[] = [];
    const bias: number[] = [];
    const repetition: number[] = [];
    const subtract: number[] = [];
    const entry = (token: number): number => {
      let i = slot.get(token);
      if (i === undefined) {
        i = tokens.length;
        slot.set(token, i);
        tokens.push(token);
        bias.push(0);
        repetition.push(1);
        subtract.push(0);
      }
      return i;
    };
    for (const [token, b] of p.logitBias) bias[entry(token)] += b;
    if (numGenerated < p.minTokens) for (const token of this.stopTokenIds) bias[entry(token)] = -Infinity;
    for (const token of this.bannedNext(tokenIds, numPromptTokens)) bias[entry(token)] = -Infinity;
    if (p.repetitionPenalty !== 1) {
      for (const token of this.promptTokens) repetition[entry(token)] = p.repetitionPenalty;
      for (const token of this.outputCounts.keys()) repetition[entry(token)] = p.repetitionPenalty;
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [token, count] of this.outputCounts)
        subtract[entry(token)] = p.frequencyPenalty * count + p.presencePenalty;
    }
    if (tokens.length === 0 && !this.allowOnly) return null;
    return {
      tokens: Int32Array.from(tokens),
      bias: Float32Array.from(bias),
      repetition: Float32Array.from(repetition),
      subtract: Float32Array.from(subtract),
      allowOnly: this.allowOnly,
    };
  }
}
