import type { Guide, GuideCursor, GuideState, TokenGuide } from './token-guide.js';

/**
 * Structured output for a reasoning model: the output is free until it has written `marker`
 * (`</think>`, the end of its reasoning), and follows the grammar from the byte after it, as vLLM
 * starts structured output once the reasoning ends. The marker may be cut over tokens, and the
 * token that ends it may carry the answer's first bytes.
 */
export class ReasoningGatedGuide implements Guide {
  constructor(
    private readonly inner: TokenGuide,
    private readonly marker: Uint8Array,
  ) {}

  start(): GuideCursor {
    return new GatedCursor(this.inner, this.marker);
  }
}

class GatedCursor implements GuideCursor {
  /** The grammar's place, once the reasoning has ended. */
  private state: GuideState | null = null;
  /** The last bytes written, too few to hold the marker yet. */
  private tail: number[] = [];

  constructor(
    private readonly inner: TokenGuide,
    private readonly marker: Uint8Array,
  ) {}

  advance(id: number): void {
    if (this.state) {
      this.state.advance(id);
      return;
    }
    const bytes = this.inner.bytesOf(id);
    if (!bytes) return;
    const seen = [...this.tail, ...bytes];
    const at = indexOf(seen, this.marker);
    if (at < 0) {
      this.tail = seen.slice(Math.max(0, seen.length - (this.marker.length - 1)));
      return;
    }
    this.state = this.inner.start();
    this.state.advanceBytes(seen.slice(at + this.marker.length));
  }

  get isDead(): boolean {
    return this.state?.isDead ?? false;
  }

  allowedTokens(endTokens: readonly number[]): Int32Array | null {
    return this.state ? this.state.allowedTokens(endTokens) : null;
  }
}

function indexOf(haystack: readonly number[], needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
