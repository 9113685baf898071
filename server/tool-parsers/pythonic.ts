import {
  type AutoToolCallDelta,
  AutoToolCallReader,
  emptyDelta,
  partialTagAtEnd,
} from './auto-tool-call-reader.js';
import { readPythonCalls } from './python-calls.js';

const PYTHON_START = '<|python_start|>';
const PYTHON_END = '<|python_end|>';

/**
 * Llama 3.2's and 4's Python calls (vLLM's `pythonic` and `llama4_pythonic`): an output that
 * starts with `[` is read as a list of calls, `[get_weather(city='Oslo'), ping()]`, whole or
 * not at all (python-calls.ts); any other output is text. Llama 4 may wrap the list in
 * `<|python_start|>` … `<|python_end|>`, which are not part of it. Collected, the calls are read
 * once the output ends; streamed, each call is sent while it arrives (a string argument as it
 * comes, any other once the `,` or `)` after it has come), as vLLM's streaming parser does. The
 * text is released as soon as it can no longer become a list of calls.
 */
export class PythonicReader extends AutoToolCallReader {
  private mode: 'undecided' | 'text' | 'calls' = 'undecided';
  /** Streamed: calls of the list already sent whole. */
  private callsRead = 0;

  constructor(private readonly llama4: boolean) {
    super();
  }

  push(text: string): AutoToolCallDelta {
    const out = emptyDelta();
    this.pending += text;
    if (this.mode === 'undecided') {
      if (this.pending.length === 0) return out;
      if (this.llama4 && this.pending.startsWith(PYTHON_START)) {
        this.pending = this.pending.slice(PYTHON_START.length);
        this.mode = 'calls';
      } else if (this.llama4 && PYTHON_START.startsWith(this.pending)) return out;
      // As vLLM: a list at the very start (no whitespace before it) is calls.
      else this.mode = this.pending.startsWith('[') ? 'calls' : 'text';
    }
    // Read again as it grows (readsAgain): a list that is not calls is let go as text a little later.
    if (this.mode === 'calls' && this.readsAgain(this.pending.length)) {
      const read = readPythonCalls(this.callText(true));
      if (read.kind === 'not-calls') this.mode = 'text';
      else if (read.kind === 'partial' && this.streamsCalls) {
        this.sendCalls(out, read.calls);
        if (read.arriving) this.callArriving(out, read.arriving.name, read.arriving.arguments);
      }
    }
    if (this.mode === 'text') {
      this.callEnded(out, null);
      this.emit(out, this.pending);
      this.pending = '';
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    const read = this.mode === 'calls' ? readPythonCalls(this.callText(false)) : null;
    if (read?.kind === 'calls') this.sendCalls(out, read.calls);
    else {
      this.callEnded(out, null);
      this.emit(out, this.pending);
    }
    this.pending = '';
    return out;
  }

  /** The list's whole calls not sent yet (the first may be the one that was arriving). */
  private sendCalls(out: AutoToolCallDelta, calls: ReadonlyArray<{ name: string; arguments: string }>): void {
    for (const call of calls.slice(this.callsRead)) if (!this.callEnded(out, call)) this.call(out, call);
    this.callsRead = Math.max(this.callsRead, calls.length);
  }

  /** The held text as the list is read from: Llama 4's end tag left out (also one still arriving). */
  private callText(arriving: boolean): string {
    if (!this.llama4) return this.pending;
    const text = this.pending.replaceAll(PYTHON_END, '');
    return arriving ? text.slice(0, text.length - partialTagAtEnd(text, PYTHON_END)) : text;
  }
}
