import { ArrivingText } from './arriving-text.js';
import {
  type AutoToolCallDelta,
  AutoToolCallReader,
  emptyDelta,
  type ReadCall,
} from './auto-tool-call-reader.js';
import { jsonCallOf } from './json-calls.js';
import { partialJsonCall } from './partial-json.js';
import { readJson } from './python-values.js';

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/**
 * Hermes 2 Pro's format (vLLM's `hermes`, also Qwen 2.5's and Loom's embedded template's):
 * each call `<tool_call>{"name": …, "arguments": …}</tool_call>` in the text.
 */
export class HermesReader extends AutoToolCallReader {
  /** Inside a call, whose text since the opening tag is `body` (not `pending`). */
  private inCall = false;
  private readonly body = new ArrivingText(CLOSE);

  push(text: string): AutoToolCallDelta {
    const out = emptyDelta();
    if (this.inCall) {
      if (this.body.append(text)) {
        this.sendArriving(out);
        return out;
      }
      // The call ends in this piece: read on from its whole text.
      this.pending = this.body.take() + text;
    } else this.pending += text;
    for (;;) {
      if (this.inCall) {
        const end = this.pending.indexOf(CLOSE);
        if (end < 0) {
          this.body.restart(this.pending);
          this.pending = '';
          this.sendArriving(out);
          break;
        }
        this.endCall(out, this.pending.slice(0, end), true);
        this.pending = this.pending.slice(end + CLOSE.length);
        continue;
      }
      if (!this.textUntil(out, OPEN)) break;
      this.inCall = true;
    }
    return out;
  }

  finish(): AutoToolCallDelta {
    const out = emptyDelta();
    // A call cut at the end (no closing tag) is read as far as it goes, as vLLM's regex does.
    if (this.inCall) this.endCall(out, this.body.take(), false);
    else this.emit(out, this.pending);
    this.pending = '';
    return out;
  }

  /** Streamed: the arriving call sent as far as it can be read, short of a closing tag's start. */
  private sendArriving(out: AutoToolCallDelta): void {
    if (!this.readsArriving(this.body.length)) return;
    const arriving = partialJsonCall(this.body.beforeTag(), ['arguments']);
    this.callArriving(out, arriving.name, arriving.arguments);
  }

  private endCall(out: AutoToolCallDelta, body: string, closed: boolean): void {
    this.inCall = false;
    let call: ReadCall | null = null;
    try {
      call = jsonCallOf(readJson(body), ['arguments']);
    } catch {
      call = null;
    }
    if (this.callEnded(out, call)) return;
    if (call) this.call(out, call);
    else this.emit(out, `${OPEN}${body}${closed ? CLOSE : ''}`);
  }
}
