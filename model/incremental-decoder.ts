import type { TextTokenizer } from './tokenizer.js';

const REPLACEMENT_CHAR = '\uFFFD';

/**
 * Turns a stream of token ids into a stream of text pieces, as vLLM's detokenizer does: each new
 * id's text is the decode of a short window minus the decode of the window without it, so
 * tokenizers whose pieces depend on neighbours (leading-space rules, byte fallback) come out right.
 * Text ending in U+FFFD is held back: the rest of a multi-byte character may still be coming.
 */
export class IncrementalDecoder {
  private readonly tokenizer: TextTokenizer;
  private readonly skipSpecialTokens: boolean;
  /** Ids from the start of the decode window; earlier ids are already emitted and dropped. */
  private ids: number[] = [];
  /** ids[0, readOffset) are emitted; ids[0, prefixOffset) only give context. */
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(tokenizer: TextTokenizer, skipSpecialTokens = true) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
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
    return piece;
  }

  /** Whatever is still held back (an incomplete character decodes as U+FFFD); then starts over. */
  flush(): string {
    const prefixText = this.decode(this.prefixOffset, this.readOffset);
    const fullText = this.decode(this.prefixOffset, this.ids.length);
    this.ids = [];
    this.prefixOffset = 0;
    this.readOffset = 0;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }

  private decode(from: number, to: number): string {
    if (to <= from) return '';
    return this.tokenizer.decode(this.ids.slice(from, to), this.skipSpecialTokens);
  }
}
