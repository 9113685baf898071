import type { FinishReason } from './request.js';

/** What a request asks of its decoder (vLLM's skip_special_tokens). */
export interface DecoderOptions {
  skipSpecialTokens: boolean;
}

/**
 * Turns token ids into text a piece at a time. model/incremental-decoder.ts's
 * IncrementalDecoder fits; tests use a table.
 */
export interface TokenDecoder {
  /** Text that token completes (may be '' while a multi-byte character is split). */
  push(tokenId: number): string;
  /** Whatever is still held, e.g. an incomplete character at the end. */
  flush(): string;
}

export interface StopConditions {
  /** Text that ends a choice; the match and anything after it is not emitted. */
  stop: readonly string[];
  /** EOS ids (none when the request ignores EOS) and the request's own stop token ids. */
  stopTokenIds: ReadonlySet<number>;
  /** Neither stop strings nor stop tokens end a choice before it has this many tokens (vLLM's min_tokens). */
  minTokens?: number;
  /**
   * vLLM's include_stop_str_in_output: the matched stop string (or the stop token's text) ends
   * the output instead of being cut off, and no text is held back waiting for a match.
   */
  includeStopStr?: boolean;
  maxTokens: number;
  promptLength: number;
  /** Tokens (prompt + generated) the model's context holds. */
  maxModelLen: number;
}

export interface StopVerdict {
  /** Text that is safe to emit now. */
  text: string;
  finishReason: FinishReason | null;
  /** What ended the choice when finishReason is 'stop': the stop string, or the stop token id. */
  stopReason?: string | number;
}

/**
 * Decides, token by token, what text a choice emits and when it ends. Text that could be the
 * start of a stop string is held back until the next tokens show it is not, so a stop string
 * split across tokens never leaks its first half.
 */
export class StopChecker {
  private pending = '';
  private numGenerated = 0;
  private readonly stops: string[];
  private readonly includeStop: boolean;
  /**
   * With includeStop, the last emitted characters (one fewer than the longest stop string): text
   * goes out at once, so a match may start in text already emitted and end in the new piece.
   */
  private emittedTail = '';
  private readonly tailLength: number;

  constructor(
    private readonly conditions: StopConditions,
    private readonly decoder: TokenDecoder,
  ) {
    this.stops = conditions.stop.filter((s) => s.length > 0);
    this.includeStop = conditions.includeStopStr ?? false;
    this.tailLength = this.includeStop ? Math.max(0, ...this.stops.map((s) => s.length - 1)) : 0;
  }

  /** One generated token: the text it releases, and whether it ends the choice. */
  accept(tokenId: number): StopVerdict {
    this.numGenerated++;
    const c = this.conditions;
    const minTokens = c.minTokens ?? 0;
    // vLLM's order: a stop token counts from the min_tokens-th token on, a stop string after it.
    if (this.numGenerated >= minTokens && c.stopTokenIds.has(tokenId)) {
      // The stop token's own text is part of the output only with includeStopStr.
      const last = this.includeStop ? this.decoder.push(tokenId) : '';
      const { text } = this.release(last + this.decoder.flush(), true);
      return { text, finishReason: 'stop', stopReason: tokenId };
    }
    const piece = this.decoder.push(tokenId);
    const atLength = this.numGenerated >= c.maxTokens || c.promptLength + this.numGenerated >= c.maxModelLen;
    const { text, matched } = this.release(
      atLength ? piece + this.decoder.flush() : piece,
      atLength,
      this.numGenerated > minTokens,
    );
    if (matched !== null) return { text, finishReason: 'stop', stopReason: matched };
    return { text, finishReason: atLength ? 'length' : null };
  }

  /** Ends the choice from outside (out of KV space): everything held is released. */
  drain(): string {
    return this.release(this.decoder.flush(), true).text;
  }

  /** `matched`: the stop string found in the text, or null. */
  private release(
    piece: string,
    isFinal: boolean,
    matchStops = true,
  ): { text: string; matched: string | null } {
    this.pending += piece;
    const match = matchStops ? this.earliestStop() : null;
    if (match) {
      const end = this.includeStop ? match.at + match.stop.length : match.at;
      const text = this.pending.slice(0, end);
      this.pending = '';
      return { text, matched: match.stop };
    }
    const held = isFinal || this.includeStop ? 0 : this.heldLength();
    const text = this.pending.slice(0, this.pending.length - held);
    this.pending = this.pending.slice(this.pending.length - held);
    if (this.tailLength > 0) this.emittedTail = (this.emittedTail + text).slice(-this.tailLength);
    return { text, matched: null };
  }

  /**
   * The earliest match, `at` relative to the pending text (negative: it starts in the emitted
   * tail). Without includeStop, earlier text never holds a match: every suffix that could start
   * one stays pending; with it, a match must end in the pending text (the tail's were found).
   */
  private earliestStop(): { at: number; stop: string } | null {
    const text = this.emittedTail + this.pending;
    const tail = this.emittedTail.length;
    let earliest: { at: number; stop: string } | null = null;
    for (const stop of this.stops) {
      const at = text.indexOf(stop, Math.max(0, tail - stop.length + 1)) - tail;
      if (at >= -tail && (earliest === null || at < earliest.at)) earliest = { at, stop };
    }
    return earliest;
  }

  /** Length of the longest suffix of the pending text that is a proper prefix of a stop string. */
  private heldLength(): number {
    let held = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > held; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          held = k;
          break;
        }
      }
    }
    return held;
  }
}
