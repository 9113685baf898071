import type { LogitAdjustments } from '../kernels/logit-adjustments.js';
import type { Guide, GuideCursor } from '../structured/token-guide.js';
import { greenList, type WatermarkParams } from './watermark.js';

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
  /**
   * Structured output (response_format, guided_json, guided_choice): only tokens that keep the
   * output within the request's grammar may be sampled, and the end only where it is complete.
   */
  guide?: Guide | null;
  /** LoRAX's watermark (watermark.ts): the previous token's green list gets delta added first. */
  watermark?: WatermarkParams | null;
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
  /** This choice's place in its structured output; null: none asked. */
  private readonly guideState: GuideCursor | null;
  /** What may end a structured output: the stop tokens, and the model's EOS even under ignore_eos. */
  private readonly endTokenIds: readonly number[];

  private constructor(
    private readonly params: LogitEditParams,
    promptTokens: readonly number[],
    /** EOS (unless ignore_eos) and stop_token_ids: what min_tokens masks. */
    private readonly stopTokenIds: readonly number[],
    eosTokenIds: readonly number[],
  ) {
    this.promptTokens = params.repetitionPenalty !== 1 ? [...new Set(promptTokens)] : [];
    this.allowOnly = params.allowedTokenIds ? Int32Array.from(new Set(params.allowedTokenIds)) : null;
    this.guideState = params.guide?.start() ?? null;
    this.endTokenIds = [...new Set([...stopTokenIds, ...eosTokenIds])];
  }

  /** Null when the request edits nothing. */
  static for(
    params: LogitEditParams,
    promptTokens: readonly number[],
    stopTokenIds: Iterable<number>,
    eosTokenIds: readonly number[] = [],
  ): SequenceLogitEdits | null {
    const edits =
      params.presencePenalty !== 0 ||
      params.frequencyPenalty !== 0 ||
      params.repetitionPenalty !== 1 ||
      params.logitBias.size > 0 ||
      params.minTokens > 0 ||
      params.allowedTokenIds != null ||
      (params.badWords?.length ?? 0) > 0 ||
      params.guide != null ||
      params.watermark != null;
    return edits ? new SequenceLogitEdits(params, promptTokens, [...stopTokenIds], eosTokenIds) : null;
  }

  /** A generated token (not a prompt token). */
  recordOutput(tokenId: number): void {
    this.outputCounts.set(tokenId, (this.outputCounts.get(tokenId) ?? 0) + 1);
    this.guideState?.advance(tokenId);
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
    // The watermark's green list (half the vocabulary) takes the first entries, found by its own
    // index rather than the map, in arrays sized once: a decode step pays ~1 ms for it.
    const green = p.watermark
      ? greenList(tokenIds[tokenIds.length - 1], p.watermark.vocabSize, p.watermark.gamma)
      : null;
    const numGreen = green?.ids.length ?? 0;
    const most =
      numGreen +
      p.logitBias.size +
      this.stopTokenIds.length +
      (p.badWords?.length ?? 0) +
      this.promptTokens.length +
      this.outputCounts.size;
    const tokens = new Int32Array(most);
    const bias = new Float32Array(most);
    const repetition = new Float32Array(most).fill(1);
    const subtract = new Float32Array(most);
    if (green) {
      tokens.set(green.ids);
      bias.fill(p.watermark!.delta, 0, numGreen);
    }
    const slot = new Map<number, number>();
    let used = numGreen;
    const entry = (token: number): number => {
      const greenAt = green ? green.position[token] : -1;
      if (greenAt >= 0) return greenAt;
      let i = slot.get(token);
      if (i === undefined) {
        i = used++;
        slot.set(token, i);
        tokens[i] = token;
      }
      return i;
    };
    for (const [token, b] of p.logitBias) bias[entry(token)] += b;
    const guided = this.guideState?.allowedTokens(this.endTokenIds) ?? null;
    const allowOnly = this.allowedNext(guided);
    // A complete structured output may only end: min_tokens cannot hold it open.
    const onlyEnds =
      this.guideState !== null && (allowOnly?.every((t) => this.endTokenIds.includes(t)) ?? false);
    if (numGenerated < p.minTokens && !onlyEnds)
      for (const token of this.stopTokenIds) bias[entry(token)] = -Infinity;
    for (const token of this.bannedNext(tokenIds, numPromptTokens)) bias[entry(token)] = -Infinity;
    if (p.repetitionPenalty !== 1) {
      for (const token of this.promptTokens) repetition[entry(token)] = p.repetitionPenalty;
      for (const token of this.outputCounts.keys()) repetition[entry(token)] = p.repetitionPenalty;
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [token, count] of this.outputCounts)
        subtract[entry(token)] = p.frequencyPenalty * count + p.presencePenalty;
    }
    if (used === 0 && !allowOnly) return null;
    return {
      tokens: tokens.subarray(0, used),
      bias: bias.subarray(0, used),
      repetition: repetition.subarray(0, used),
      subtract: subtract.subarray(0, used),
      allowOnly,
      scoreOnly: guided,
    };
  }

  /** allowed_token_ids, and the structured output's next tokens `guided` (both: the tokens in both). */
  private allowedNext(guided: Int32Array | null): Int32Array | null {
    if (!guided || !this.allowOnly) return guided ?? this.allowOnly;
    const both = new Set(this.allowOnly);
    const kept = guided.filter((t) => both.has(t));
    // Nothing in both: the request's two constraints leave no token; let the output end.
    return kept.length > 0 ? kept : Int32Array.from(this.endTokenIds);
  }
}
