import {
  type AutoToolCallDelta,
  AutoToolCallReader,
  emptyDelta,
  type ReadCall,
} from './auto-tool-call-reader.js';
import { jsonCallOf } from './json-calls.js';
import { partialJsonCall } from './partial-json.js';
import { readJsonValue } from './python-values.js';

const PYTHON_TAG = '<|python_tag|>';

const ARGUMENT_KEYS = ['arguments', 'parameters'];

/**
 * Llama 3.1's JSON tool calls (vLLM's `llama3_json`): an output that starts with `{` (or
 * `<|python_tag|>`) is one or more `{"name": …, "parameters": …}` objects separated by `;`;
 * any other output is text. Collected, the output is read whole at its end, and one that does
 * not parse as calls is the content, as the model wrote it. Streamed, each call is sent while it
 * arrives, and from where the text stops being calls on, it is the content.
 */
export class Llama3JsonReader extends AutoToolCallReader {
  private mode: 'undecided' | 'text' | 'calls' = 'undecided';
  /** Streamed: calls read whole so far (`pending` starts after the last one). */
  private callsRead = 0;

  push(text: string): AutoToolCallDelta {
    const out = emptyDelta();
    this.pending += text;
    if (this.mode === 'undecided') {
      const start = this.pending.trimStart();
      if (start.length === 0) return out;
      if (start.startsWith('{') || start.startsWith(PYTHON_TAG)) this.mode = 'calls';
      else if (PYTHON_TAG.startsWith(start)) return out;
      else this.mode = 'text';
    }
    if (this.mode === 'calls' && this.streamsCalls) this.readArrivingCalls(out);
    if (this.mode === 'text') {
      this.emit(out, this.pending);
      this.pending = '';
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    // Streamed: every call that has ended is read first, however long the text has grown.
    if (this.mode === 'calls' && this.streamsCalls) this.readArrivingCalls(out, true);
    const text = this.pending;
    this.pending = '';
    if (this.mode !== 'calls') {
      this.emit(out, text);
      return out;
    }
    if (this.callsRead > 0 || this.callIsArriving) {
      // What is left of a streamed output is a call cut short (it keeps what it was sent) or the
      // start of one: it is the content, as the model wrote it.
      this.callEnded(out, null);
      if (!/^[\s;]*$/.test(text)) this.emit(out, text);
      return out;
    }
    const calls = readJsonCalls(text.trimStart().replace(PYTHON_TAG, ''));
    if (calls) for (const call of calls) this.call(out, call);
    else this.emit(out, text);
    return out;
  }

  /**
   * The text of the call `pending` starts with (after the python tag, or the `;` after a call),
   * or null when it is not the start of one; '' while that cannot be told yet.
   */
  private nextCall(): string | null {
    let rest = this.pending.trimStart();
    if (this.callsRead === 0) {
      if (rest.startsWith(PYTHON_TAG)) rest = rest.slice(PYTHON_TAG.length).trimStart();
      else if (PYTHON_TAG.startsWith(rest)) return '';
    } else {
      if (rest.length === 0) return '';
      if (!rest.startsWith(';')) return null;
      rest = rest.slice(1).trimStart();
    }
    return rest.length === 0 || rest.startsWith('{') ? rest : null;
  }

  /**
   * Streamed: each call whole is sent (or finished), the one arriving is sent as far as it came;
   * `all` at the end, when the text is read whatever readsArriving says.
   */
  private readArrivingCalls(out: AutoToolCallDelta, all = false): void {
    for (;;) {
      // Before anything that copies the text (trimming it does).
      if (!all && !this.readsArriving(this.pending.length)) return;
      const rest = this.nextCall();
      if (rest === null) {
        this.mode = 'text';
        return;
      }
      if (rest === '') return;
      const arriving = partialJsonCall(rest, ARGUMENT_KEYS);
      if (arriving.state === 'partial') {
        this.callArriving(out, arriving.name, arriving.arguments);
        return;
      }
      // The object ended (or the text is not JSON): read it whole.
      let whole: { call: ReadCall | null; end: number } | null = null;
      try {
        const read = readJsonValue(rest);
        whole = { call: jsonCallOf(read.value, ARGUMENT_KEYS), end: read.end };
      } catch {
        whole = null;
      }
      if (!this.callEnded(out, whole?.call ?? null) && whole?.call) this.call(out, whole.call);
      if (!whole?.call) {
        // Not a call: from here on, the output is text.
        this.mode = 'text';
        return;
      }
      this.callsRead++;
      this.pending = rest.slice(whole.end);
    }
  }
}

/** `{…}; {…}` as calls, or null when any part is not one. */
function readJsonCalls(text: string): ReadCall[] | null {
  const calls: ReadCall[] = [];
  let rest = text.trim();
  while (rest.length > 0) {
    if (!rest.startsWith('{')) return null;
    let call: ReadCall | null;
    let end: number;
    try {
      const read = readJsonValue(rest);
      call = jsonCallOf(read.value, ARGUMENT_KEYS);
      end = read.end;
    } catch {
      return null;
    }
    if (!call) return null;
    calls.push(call);
    rest = rest.slice(end).trimStart();
    if (rest.startsWith(';')) rest = rest.slice(1).trimStart();
    else if (rest.length > 0) return null;
  }
  return calls.length > 0 ? calls : null;
}
