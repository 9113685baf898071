import { CleanUpStream } from './clean-up-tokenization.js';
import type { TextTokenizer } from './tokenizer.js';

const REPLACEMENT_CHAR = '\uFFFD';

/** What the decoder reads of a tokenizer: its raw decode, and whether it cleans up spaces after. */
export type PieceTokenizer = Pick<TextTokenizer, 'decodeRaw' | 'cleansUpSpaces'>;

/**
 * Turns a stream of token ids into a stream of text pieces, as vLLM's detokenizer does: each new
 * id's text is the decode of a short window minus the decode of the window without it, so
 * tokenizers whose pieces depend on neighbours (leading-space rules, byte fallback) come out right.
 * Text ending in U+FFFD is held back: the rest of a multi-byte character may still be coming.
 * Where the tokenizer cleans up spaces (HF's `clean_up_tokenization_spaces`), the raw pieces go
 * through a CleanUpStream, so the pieces join to exactly the one-shot `decode` of all the ids.
 */
export class IncrementalDecoder {
  private readonly tokenizer: PieceTokenizer;
  private readonly skipSpecialTokens: boolean;
  private readonly cleanUp: CleanUpStream | null;
  /** Ids from the start of the decode window; earlier ids are already emitted and dropped. */
  private ids: number[] = [];
  /** ids[0, readOffset) are emitted; ids[0, prefixOffset) only give context. */
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(tokenizer: PieceTokenizer, skipSpecialTokens = true) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
    this.cleanUp = tokenizer.cleansUpSpaces ? new CleanUpStream() : null;
  }

  /** Adds one id; returns the text that is now final (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decode(this.prefixOffset, this.readOffset);
    const fullText = this.decode(this.prefixOffset, this.ids.length);
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT_CHAR)) return '';
    const piece = fullText.slice(prefixText.length);
    this.ids = this.ids.slice(this.readOffset);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
    return this.cleanUp ? this.cleanUp.push(piece) : piece;
  }

  /** Whatever is still held back (an incomplete character decodes as U+FFFD); then starts over. */
  flush(): string {
    const prefixText = this.decode(this.prefixOffset, this.readOffset);
    const fullText = this.decode(this.prefixOffset, this.ids.length);
    this.ids = [];
    this.prefixOffset = 0;
    this.readOffset = 0;
    const piece = fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
    return this.cleanUp ? this.cleanUp.push(piece) + this.cleanUp.flush() : piece;
  }

  private decode(from: number, to: number): string {
    if (to <= from) return '';
    return this.tokenizer.decodeRaw(this.ids.slice(from, to), this.skipSpecialTokens);
  }
}
