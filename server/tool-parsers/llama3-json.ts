import {
  type AutoToolCallDelta,
  AutoToolCallReader,
  emptyDelta,
  type ReadCall,
} from './auto-tool-call-reader.js';
import { jsonCallOf } from './json-calls.js';
import { readJsonValue } from './python-values.js';

const PYTHON_TAG = '<|python_tag|>';

/**
 * Llama 3.1's JSON tool calls (vLLM's `llama3_json`): an output that starts with `{` (or
 * `<|python_tag|>`) is one or more `{"name": …, "parameters": …}` objects separated by `;`;
 * any other output is text. A call's output is held until it ends, then read whole; one that
 * does not parse is the content, as the model wrote it.
 */
export class Llama3JsonReader extends AutoToolCallReader {
  private mode: 'undecided' | 'text' | 'calls' = 'undecided';

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
    if (this.mode === 'text') {
      this.emit(out, this.pending);
      this.pending = '';
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    const text = this.pending;
    this.pending = '';
    if (this.mode !== 'calls') {
      this.emit(out, text);
      return out;
    }
    const calls = readJsonCalls(text.trimStart().replace(PYTHON_TAG, ''));
    if (calls) for (const call of calls) this.call(out, call);
    else this.emit(out, text);
    return out;
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
      call = jsonCallOf(read.value, ['arguments', 'parameters']);
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
