import { newToolCallId, type ToolCall, type ToolCallDelta } from '../tool-call-stream.js';

/** What a piece of output adds to a choice's message: text, and calls (each whole). */
export interface AutoToolCallDelta {
  content: string;
  calls: ToolCallDelta[];
}

/** A call as a parser read it: the function's name and its arguments' JSON text. */
export interface ReadCall {
  name: string;
  arguments: string;
}

/**
 * tool_choice "auto" (--enable-auto-tool-choice with --tool-call-parser): the model writes free
 * text, and calls in its own format are read out of it. Streamed and collected choices go
 * through the same reader (a collected one is one push and the end), so both say the same: the
 * text that is not a call is the content, without trailing whitespace, and each call is sent
 * whole, once it is complete, with its arguments as vLLM writes them. A call that does not parse
 * stays in the content as the model wrote it. Each format is a subclass (parsers.ts names them).
 */
export abstract class AutoToolCallReader {
  readonly calls: ToolCall[] = [];
  private written = '';
  /** Output read but not yet settled (a tag or a call still arriving). */
  protected pending = '';
  private heldWhitespace = '';
  /** parallel_tool_calls: false keeps the first call only (the model's later ones are dropped). */
  maxCalls = Number.POSITIVE_INFINITY;

  /** The message's text so far. */
  get content(): string {
    return this.written;
  }

  abstract push(text: string): AutoToolCallDelta;

  /** The output ended: what was held back is settled. */
  abstract finish(): AutoToolCallDelta;

  /** A new call's id: vLLM's "chatcmpl-tool-…" unless the model's format asks for its own. */
  protected newId(): string {
    return newToolCallId();
  }

  protected emit(out: AutoToolCallDelta, text: string): void {
    const trailing = /\s*$/.exec(text)![0];
    const body = text.slice(0, text.length - trailing.length);
    if (body.length > 0) {
      out.content += this.heldWhitespace + body;
      this.written += this.heldWhitespace + body;
      this.heldWhitespace = '';
    }
    this.heldWhitespace += trailing;
  }

  /**
   * The text of `pending` before `tag` as content; true, with `pending` left after the tag, once
   * the tag is there; else false, holding back an end that may be the tag's start.
   */
  protected textUntil(out: AutoToolCallDelta, tag: string): boolean {
    const at = this.pending.indexOf(tag);
    const end = at >= 0 ? at : this.pending.length - partialTagAtEnd(this.pending, tag);
    this.emit(out, this.pending.slice(0, end));
    this.pending = this.pending.slice(at >= 0 ? at + tag.length : end);
    return at >= 0;
  }

  protected call(out: AutoToolCallDelta, call: ReadCall): void {
    if (this.calls.length >= this.maxCalls) return;
    const full: ToolCall = { id: this.newId(), type: 'function', function: { ...call } };
    this.calls.push(full);
    out.calls.push({ index: this.calls.length - 1, id: full.id, type: 'function', function: { ...call } });
  }
}

export function emptyDelta(): AutoToolCallDelta {
  return { content: '', calls: [] };
}

/** The longest end of `text` that starts `tag` (held back: the tag may be arriving). */
export function partialTagAtEnd(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--)
    if (tag.startsWith(text.slice(-n))) return n;
  return 0;
}
