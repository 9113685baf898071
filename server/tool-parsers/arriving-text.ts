import { partialTagAtEnd } from './auto-tool-call-reader.js';

/**
 * A call's text while it arrives, kept in pieces until the tag that ends it shows up. Appended to
 * one string and searched for the tag at every piece, the text was copied whole each time (V8
 * flattens a string it searches): 1.7 s of the server's thread for one 141 KB call. Here only
 * the new piece and the few characters before it are searched, and the text is joined only when
 * it is read.
 */
export class ArrivingText {
  private pieces: string[] = [];
  /** Its length so far. */
  length = 0;
  /** The last characters, where the tag may have begun. */
  private tail = '';

  constructor(private readonly tag: string) {}

  /** Adds `text` unless the tag is in it (with the characters before it): true when added. */
  append(text: string): boolean {
    const window = this.tail + text;
    if (window.includes(this.tag)) return false;
    this.pieces.push(text);
    this.length += text.length;
    this.tail = window.slice(Math.max(0, window.length - (this.tag.length - 1)));
    return true;
  }

  /** The text so far (kept joined, so the next read joins only what came since). */
  text(): string {
    const whole = this.pieces.join('');
    this.pieces = [whole];
    return whole;
  }

  /** The text so far, short of the tag's start where one may be arriving at its end. */
  beforeTag(): string {
    const whole = this.text();
    return whole.slice(0, whole.length - partialTagAtEnd(whole, this.tag));
  }

  /** The text so far, and nothing kept. */
  take(): string {
    const whole = this.pieces.join('');
    this.restart('');
    return whole;
  }

  /** Starts again from `text`, which does not hold the tag. */
  restart(text: string): void {
    this.pieces = [text];
    this.length = text.length;
    this.tail = text.slice(Math.max(0, text.length - (this.tag.length - 1)));
  }
}
