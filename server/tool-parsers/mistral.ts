import { randomInt } from 'node:crypto';
import { ArrivingText } from './arriving-text.js';
import {
  type AutoToolCallDelta,
  AutoToolCallReader,
  emptyDelta,
  type ReadCall,
} from './auto-tool-call-reader.js';
import { jsonCallOf } from './json-calls.js';
import { partialJsonCall, skipWhitespace } from './partial-json.js';
import { PyDict, type PyValue, readJsonValue } from './python-values.js';

const TOOL_CALLS = '[TOOL_CALLS]';
const ARGS = '[ARGS]';
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Mistral's tool calls (vLLM's `mistral`): text, then `[TOOL_CALLS]` and the calls. Models of
 * tokenizers before v11 write one JSON array, `[TOOL_CALLS][{"name": …, "arguments": …}]`; later
 * ones write each call after its own token, `[TOOL_CALLS]name{…}` (`[TOOL_CALLS]name[ARGS]{…}`
 * as an HF tokenizer decodes it). vLLM tells the two apart by the tokenizer's vocabulary; Loom by
 * what follows the token, since a function's name never starts with `[` or `{`. As vLLM, the
 * later form's arguments are passed on as the model wrote them, and ids are 9 letters and digits
 * (Mistral's chat templates refuse others when the calls come back in the next request).
 */
export class MistralReader extends AutoToolCallReader {
  private inCalls = false;
  /** After the first [TOOL_CALLS]: the text since the last one (not `pending`). */
  private readonly segment = new ArrivingText(TOOL_CALLS);
  /** Streamed: calls of the current [TOOL_CALLS] token's array already read whole. */
  private segmentCallsRead = 0;

  push(text: string): AutoToolCallDelta {
    const out = emptyDelta();
    if (this.inCalls) {
      if (this.segment.append(text)) {
        this.readArrivingCalls(out);
        return out;
      }
      this.pending = this.segment.take() + text;
    } else {
      this.pending += text;
      if (!this.textUntil(out, TOOL_CALLS)) return out;
      this.inCalls = true;
    }
    // A call's text ends where the next one's token starts.
    for (let next = this.pending.indexOf(TOOL_CALLS); next >= 0; next = this.pending.indexOf(TOOL_CALLS)) {
      this.readCalls(out, this.pending.slice(0, next));
      this.pending = this.pending.slice(next + TOOL_CALLS.length);
    }
    this.segment.restart(this.pending);
    this.pending = '';
    this.readArrivingCalls(out);
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    if (this.inCalls) this.readCalls(out, this.segment.take());
    else this.emit(out, this.pending);
    this.pending = '';
    return out;
  }

  protected override newId(): string {
    let id = '';
    for (let i = 0; i < 9; i++) id += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
    return id;
  }

  /**
   * The text after one [TOOL_CALLS] token; what cannot be read as calls stays in the content.
   * Streamed, the calls already read whole are not read again, and the one arriving is finished.
   */
  private readCalls(out: AutoToolCallDelta, text: string): void {
    const body = text.trim();
    const alreadyRead = this.segmentCallsRead;
    this.segmentCallsRead = 0;
    if (body.startsWith('[') || body.startsWith('{')) {
      try {
        const { value, end } = readJsonValue(body);
        const calls = (Array.isArray(value) ? value : [value]).map(callOf);
        if (calls.length > 0 && calls.every((c) => c !== null)) {
          for (const call of calls.slice(alreadyRead)) if (!this.callEnded(out, call)) this.call(out, call!);
          // vLLM drops what follows the array; Loom keeps it as text.
          this.emit(out, body.slice(end));
          return;
        }
      } catch {
        // Not JSON: the text as written.
      }
    } else {
      const call = v11Call(body);
      if (call) {
        if (!this.callEnded(out, call)) this.call(out, call);
        return;
      }
    }
    this.callEnded(out, null);
    this.emit(out, `${TOOL_CALLS}${text}`);
  }

  /** Streamed: the calls of the current [TOOL_CALLS] token as they arrive. */
  private readArrivingCalls(out: AutoToolCallDelta): void {
    if (!this.inCalls || !this.readsArriving(this.segment.length)) return;
    const body = this.segment.beforeTag().trimStart();
    if (!body.startsWith('[') && !body.startsWith('{')) {
      const call = v11Call(body);
      if (call) this.callArriving(out, call.name, call.arguments.trimEnd());
      return;
    }
    // Before v11: call objects, one alone or in an array, each read whole once it has ended.
    const list = body.startsWith('[');
    let at = list ? 1 : 0;
    for (let i = 0; ; i++) {
      at = skipWhitespace(body, at);
      if (at >= body.length) return;
      let read: { value: PyValue; end: number };
      try {
        read = readJsonValue(body, at);
      } catch {
        const arriving = partialJsonCall(body.slice(at), ['arguments']);
        if (arriving.state !== 'malformed') this.callArriving(out, arriving.name, arriving.arguments);
        return;
      }
      if (i >= this.segmentCallsRead) {
        const call = callOf(read.value);
        // Not a call: the token's text is read whole at its end.
        if (!call) return;
        if (!this.callEnded(out, call)) this.call(out, call);
        this.segmentCallsRead++;
      }
      at = skipWhitespace(body, read.end);
      if (!list || body[at] !== ',') return;
      at++;
    }
  }
}

/** A call object before v11; arguments left out are none, as vLLM reads them. */
function callOf(value: PyValue): ReadCall | null {
  return jsonCallOf(value, ['arguments'], new PyDict());
}

/** `name{…}` or `name[ARGS]{…}`: the arguments as the model wrote them; null when it is not that. */
function v11Call(body: string): ReadCall | null {
  const brace = body.indexOf('{');
  const name = brace < 0 ? '' : body.slice(0, brace).replace(ARGS, '').trim();
  return name === '' ? null : { name, arguments: body.slice(brace) };
}
