import type { Guide, GuideCursor, GuideState, TokenGuide } from './token-guide.js';

/** How a reasoning model's reasoning ends, and what follows it. */
export interface ReasoningGate {
  /** The text that ends the reasoning (`</think>`), as bytes. */
  readonly marker: Uint8Array;
  /** The bytes each token adds to the text (null: none, as a special token). */
  readonly bytesOf: (id: number) => Uint8Array | null;
  /** Structured output after the reasoning; null: the answer is free. */
  readonly inner: TokenGuide | null;
  /**
   * vLLM's thinking_token_budget: after this many tokens of reasoning the marker's tokens
   * (`markerTokens`) are forced, one a step, ending it; null: no budget.
   */
  readonly budget: number | null;
  readonly markerTokens: readonly number[];
}

/**
 * Structured output for a reasoning model, and its thinking budget: the output is free until it
 * has written `marker` (`</think>`, the end of its reasoning), and follows the grammar from the
 * byte after it, as vLLM starts structured output once the reasoning ends. The marker may be cut
 * over tokens, and the token that ends it may carry the answer's first bytes. With a budget,
 * reasoning that reaches it unended is ended: its next tokens are the marker's (vLLM's
 * thinking-budget logits processor forces the end-of-thinking token ids so).
 */
export class ReasoningGatedGuide implements Guide {
  constructor(private readonly gate: ReasoningGate) {}

  start(): GuideCursor {
    return new GatedCursor(this.gate);
  }
}

class GatedCursor implements GuideCursor {
  /** The grammar's place, once the reasoning has ended (null before, or without a grammar). */
  private state: GuideState | null = null;
  private ended = false;
  /** Tokens generated while the reasoning ran. */
  private reasoningTokens = 0;
  /** The last bytes written, too few to hold the marker yet. */
  private tail: number[] = [];

  constructor(private readonly gate: ReasoningGate) {}

  advance(id: number): void {
    if (this.ended) {
      this.state?.advance(id);
      return;
    }
    this.reasoningTokens++;
    const bytes = this.gate.bytesOf(id) ?? new Uint8Array(0);
    const seen = [...this.tail, ...bytes];
    const at = indexOf(seen, this.gate.marker);
    if (at >= 0) {
      this.end(seen.slice(at + this.gate.marker.length));
      return;
    }
    // The budget's forced marker is complete even where its tokens spell it without bytes (special tokens).
    const { budget, markerTokens } = this.gate;
    if (budget !== null && this.reasoningTokens >= budget + markerTokens.length) {
      this.end([]);
      return;
    }
    this.tail = seen.slice(Math.max(0, seen.length - (this.gate.marker.length - 1)));
  }

  private end(rest: number[]): void {
    this.ended = true;
    this.tail = [];
    if (!this.gate.inner) return;
    this.state = this.gate.inner.start();
    this.state.advanceBytes(rest);
  }

  get isDead(): boolean {
    return this.state?.isDead ?? false;
  }

  allowedTokens(endTokens: readonly number[]): Int32Array | null {
    if (this.ended) return this.state ? this.state.allowedTokens(endTokens) : null;
    const { budget, markerTokens } = this.gate;
    if (budget === null || this.reasoningTokens < budget) return null;
    return Int32Array.of(markerTokens[this.reasoningTokens - budget]);
  }
}

function indexOf(haystack: readonly number[], needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
