import { newToolCallId, type ToolCall, type ToolCallDelta } from './tool-call-stream.js';

/** The model formats `--tool-call-parser` reads (vLLM's parser names). */
export const TOOL_CALL_PARSERS = ['hermes', 'llama3_json'] as const;
export type ToolCallParserName = (typeof TOOL_CALL_PARSERS)[number];

/** What a piece of output adds to a choice's message: text, and calls (each whole). */
export interface AutoToolCallDelta {
  content: string;
  calls: ToolCallDelta[];
}

/** Python's json.dumps(value, ensure_ascii=False): how vLLM's parsers write a call's arguments. */
export function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`)
      .join(', ')}}`;
  return JSON.stringify(value);
}

/** A call the model wrote as JSON {"name": …, <argumentsKey>: …}, or null when it is not one. */
function callOf(json: unknown, argumentKeys: readonly string[]): { name: string; arguments: string } | null {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return null;
  const o = json as Record<string, unknown>;
  const key = argumentKeys.find((k) => k in o);
  if (typeof o.name !== 'string' || key === undefined) return null;
  return { name: o.name, arguments: pythonJson(o[key]) };
}

/**
 * tool_choice "auto" (--enable-auto-tool-choice with --tool-call-parser): the model writes free
 * text, and calls in its own format are read out of it. Streamed and collected choices go
 * through the same reader (a collected one is one push and the end), so both say the same: the
 * text that is not a call is the content, without trailing whitespace, and each call is sent
 * whole, once it is complete, with its arguments as vLLM writes them (json.dumps of what the
 * model wrote). A call that does not parse stays in the content as the model wrote it.
 */
export abstract class AutoToolCallReader {
  readonly calls: ToolCall[] = [];
  private written = '';
  private heldWhitespace = '';
  /** parallel_tool_calls: false keeps the first call only (the model's later ones are dropped). */
  private maxCalls = Number.POSITIVE_INFINITY;

  static for(parser: ToolCallParserName, maxCalls = Number.POSITIVE_INFINITY): AutoToolCallReader {
    const reader = parser === 'hermes' ? new HermesReader() : new Llama3JsonReader();
    reader.maxCalls = maxCalls;
    return reader;
  }

  /** The message's text so far. */
  get content(): string {
    return this.written;
  }

  abstract push(text: string): AutoToolCallDelta;

  /** The output ended: what was held back is settled. */
  abstract finish(): AutoToolCallDelta;

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

  protected call(out: AutoToolCallDelta, call: { name: string; arguments: string }): void {
    if (this.calls.length >= this.maxCalls) return;
    const full: ToolCall = { id: newToolCallId(), type: 'function', function: call };
    this.calls.push(full);
    out.calls.push({ index: this.calls.length - 1, id: full.id, type: 'function', function: { ...call } });
  }
}

/** The longest end of `text` that starts `tag` (held back: the tag may be arriving). */
function partialTagAtEnd(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--)
    if (tag.startsWith(text.slice(-n))) return n;
  return 0;
}

const HERMES_OPEN = '<tool_call>';
const HERMES_CLOSE = '</tool_call>';

/**
 * Hermes 2 Pro's format (vLLM's `hermes`, also Qwen 2.5's and Loom's embedded template's):
 * each call `<tool_call>{"name": …, "arguments": …}</tool_call>` in the text.
 */
class HermesReader extends AutoToolCallReader {
  private pending = '';
  /** Inside a call: its text since the opening tag. */
  private inCall = false;

  push(text: string): AutoToolCallDelta {
    const out: AutoToolCallDelta = { content: '', calls: [] };
    this.pending += text;
    for (;;) {
      if (this.inCall) {
        const end = this.pending.indexOf(HERMES_CLOSE);
        if (end < 0) break;
        this.endCall(out, this.pending.slice(0, end), true);
        this.pending = this.pending.slice(end + HERMES_CLOSE.length);
        continue;
      }
      const start = this.pending.indexOf(HERMES_OPEN);
      if (start < 0) {
        const keep = partialTagAtEnd(this.pending, HERMES_OPEN);
        this.emit(out, this.pending.slice(0, this.pending.length - keep));
        this.pending = this.pending.slice(this.pending.length - keep);
        break;
      }
      this.emit(out, this.pending.slice(0, start));
      this.pending = this.pending.slice(start + HERMES_OPEN.length);
      this.inCall = true;
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out: AutoToolCallDelta = { content: '', calls: [] };
    // A call cut at the end (no closing tag) is read as far as it goes, as vLLM's regex does.
    if (this.inCall) this.endCall(out, this.pending, false);
    else this.emit(out, this.pending);
    this.pending = '';
    return out;
  }

  private endCall(out: AutoToolCallDelta, body: string, closed: boolean): void {
    this.inCall = false;
    let call: { name: string; arguments: string } | null = null;
    try {
      call = callOf(JSON.parse(body), ['arguments']);
    } catch {
      call = null;
    }
    if (call) this.call(out, call);
    else this.emit(out, `${HERMES_OPEN}${body}${closed ? HERMES_CLOSE : ''}`);
  }
}

const PYTHON_TAG = '<|python_tag|>';

/**
 * Llama 3.1's JSON tool calls (vLLM's `llama3_json`): an output that starts with `{` (or
 * `<|python_tag|>`) is one or more `{"name": …, "parameters": …}` objects separated by `;`;
 * any other output is text. A call's output is held until it ends, then read whole; one that
 * does not parse is the content, as the model wrote it.
 */
class Llama3JsonReader extends AutoToolCallReader {
  private pending = '';
  private mode: 'undecided' | 'text' | 'calls' = 'undecided';

  push(text: string): AutoToolCallDelta {
    const out: AutoToolCallDelta = { content: '', calls: [] };
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
    const out: AutoToolCallDelta = { content: '', calls: [] };
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
function readJsonCalls(text: string): Array<{ name: string; arguments: string }> | null {
  const calls: Array<{ name: string; arguments: string }> = [];
  let rest = text.trim();
  while (rest.length > 0) {
    const end = jsonObjectEnd(rest);
    if (end < 0) return null;
    let call: { name: string; arguments: string } | null;
    try {
      call = callOf(JSON.parse(rest.slice(0, end)), ['arguments', 'parameters']);
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

/** Where the JSON object at the start of `text` ends (after its closing brace), or −1. */
function jsonObjectEnd(text: string): number {
  if (!text.startsWith('{')) return -1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}
