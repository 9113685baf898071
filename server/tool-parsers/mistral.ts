import { randomInt } from 'node:crypto';
import { type AutoToolCallDelta, AutoToolCallReader, emptyDelta } from './auto-tool-call-reader.js';
import { jsonCallOf } from './json-calls.js';
import { PyDict, readJsonValue } from './python-values.js';

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

  push(text: string): AutoToolCallDelta {
    const out = emptyDelta();
    this.pending += text;
    if (!this.inCalls) {
      if (!this.textUntil(out, TOOL_CALLS)) return out;
      this.inCalls = true;
    }
    // A call's text ends where the next one's token starts.
    for (let next = this.pending.indexOf(TOOL_CALLS); next >= 0; next = this.pending.indexOf(TOOL_CALLS)) {
      this.readCalls(out, this.pending.slice(0, next));
      this.pending = this.pending.slice(next + TOOL_CALLS.length);
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    if (this.inCalls) this.readCalls(out, this.pending);
    else this.emit(out, this.pending);
    this.pending = '';
    return out;
  }

  protected override newId(): string {
    let id = '';
    for (let i = 0; i < 9; i++) id += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
    return id;
  }

  /** The text after one [TOOL_CALLS] token; what cannot be read as calls stays in the content. */
  private readCalls(out: AutoToolCallDelta, text: string): void {
    const body = text.trim();
    if (body.startsWith('[') || body.startsWith('{')) {
      try {
        const { value, end } = readJsonValue(body);
        // Arguments left out are none, as vLLM reads them.
        const calls = (Array.isArray(value) ? value : [value]).map((v) =>
          jsonCallOf(v, ['arguments'], new PyDict()),
        );
        if (calls.length > 0 && calls.every((c) => c !== null)) {
          for (const call of calls) this.call(out, call!);
          // vLLM drops what follows the array; Loom keeps it as text.
          this.emit(out, body.slice(end));
          return;
        }
      } catch {
        // Not JSON: the text as written.
      }
    } else {
      const brace = body.indexOf('{');
      const name = brace < 0 ? '' : body.slice(0, brace).replace(ARGS, '').trim();
      if (name !== '') {
        this.call(out, { name, arguments: body.slice(brace) });
        return;
      }
    }
    this.emit(out, `${TOOL_CALLS}${text}`);
  }
}
