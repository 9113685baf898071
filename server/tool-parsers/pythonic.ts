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
 * `<|python_start|>` … `<|python_end|>`, which are not part of it. The calls are sent once the
 * output ends; the text is released as soon as it can no longer become a list of calls.
 */
export class PythonicReader extends AutoToolCallReader {
  private mode: 'undecided' | 'text' | 'calls' = 'undecided';

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
    if (this.mode === 'calls' && readPythonCalls(this.callText(true)).kind === 'not-calls')
      this.mode = 'text';
    if (this.mode === 'text') {
      this.emit(out, this.pending);
      this.pending = '';
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    const read = this.mode === 'calls' ? readPythonCalls(this.callText(false)) : null;
    if (read?.kind === 'calls') for (const call of read.calls) this.call(out, call);
    else this.emit(out, this.pending);
    this.pending = '';
    return out;
  }

  /** The held text as the list is read from: Llama 4's end tag left out (also one still arriving). */
  private callText(arriving: boolean): string {
    if (!this.llama4) return this.pending;
    const text = this.pending.replaceAll(PYTHON_END, '');
    return arriving ? text.slice(0, text.length - partialTagAtEnd(text, PYTHON_END)) : text;
  }
}
