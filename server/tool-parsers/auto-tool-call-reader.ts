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
 * text, and calls in its own format are read out of it. The text that is not a call is the
 * content, without trailing whitespace; a call's arguments are as vLLM writes them. A collected
 * choice is one push and the end: each call is read whole, and one that does not parse stays in
 * the content as the model wrote it.
 *
 * A streamed choice (`streamsCalls`) sends a call as vLLM's streaming parsers do: its id and name
 * once its arguments have begun, then its arguments as they come (the start of what json.dumps
 * writes, as far as no later text can change it: partial-json.ts, python-calls.ts),
 * so a client sees the call begin while the model is still writing it. For a call that parses,
 * the deltas add up to what the collected choice says. A call whose text turns out not to be one
 * after it was announced (bad JSON after its arguments began) cannot be taken back: it stays a
 * call with the arguments sent before the text went wrong, and its text is the content too, as
 * the collected choice has it. One that parses to other arguments than were sent (a key written
 * twice, two arguments keys) keeps what was sent.
 * Each format is a subclass (parsers.ts names them).
 */
export abstract class AutoToolCallReader {
  readonly calls: ToolCall[] = [];
  private written = '';
  /** Output read but not yet settled (a tag or a call still arriving). */
  protected pending = '';
  private heldWhitespace = '';
  /** parallel_tool_calls: false keeps the first call only (the model's later ones are dropped). */
  maxCalls = Number.POSITIVE_INFINITY;
  /** A streamed choice: calls are announced, and their arguments sent, while they arrive. */
  streamsCalls = false;
  /** The call being sent while it arrives: where it is in `calls`, and whether its text went wrong. */
  private arriving: { index: number; stopped: boolean } | null = null;
  /** How long the arriving calls' text was when it was last read (readsArriving). */
  private arrivingReadAt = 0;

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

  /**
   * A call whose text is still arriving, as far as it can be read (its name, and the start of its
   * arguments: null while they have not begun): announced once both are there, then sent the
   * arguments' new part each time. Collected choices wait for the end.
   */
  protected callArriving(out: AutoToolCallDelta, name: string | null, args: string | null): void {
    if (!this.streamsCalls) return;
    if (!this.arriving) {
      // The arguments key too: JSON with a "name" in it is not yet a call (a model answering
      // with data, `{"name": "Ada", "age": 36}`, is text).
      if (name === null || args === null || this.calls.length >= this.maxCalls) return;
      const call: ToolCall = { id: this.newId(), type: 'function', function: { name, arguments: '' } };
      this.calls.push(call);
      this.arriving = { index: this.calls.length - 1, stopped: false };
      out.calls.push({
        index: this.arriving.index,
        id: call.id,
        type: 'function',
        function: { name, arguments: '' },
      });
    }
    if (args !== null) this.sendArguments(out, this.arriving, args);
  }

  /** Streamed: whether to read the calls still arriving again (readsAgain); collected choices read them at the end. */
  protected readsArriving(length: number): boolean {
    return this.streamsCalls && this.readsAgain(length);
  }

  /**
   * Whether to read the text of the calls still arriving again, now that it is `length` long. Each
   * read goes over the whole text (partial-json.ts, python-calls.ts), so reading it at every piece
   * costs the square of a call's length: 3.4 s of the server's thread for one 22 KB call cut in
   * 4-character pieces. A text up to ARRIVING_READ_EVERY_PIECE is read at every piece; a longer one
   * once it has grown by a sixteenth since, so a call costs a multiple of its length in all, and
   * its arguments still go out in pieces of at most a sixteenth of what came before. A shorter text
   * than the last read is a new call's.
   */
  protected readsAgain(length: number): boolean {
    if (length < this.arrivingReadAt) this.arrivingReadAt = 0;
    if (length > ARRIVING_READ_EVERY_PIECE && length - this.arrivingReadAt < this.arrivingReadAt / 16)
      return false;
    this.arrivingReadAt = length;
    return true;
  }

  /** Whether a call is being sent while it arrives. */
  protected get callIsArriving(): boolean {
    return this.arriving !== null;
  }

  /** Arguments of the arriving call so far: the new part is sent, unless it does not extend what was. */
  private sendArguments(
    out: AutoToolCallDelta,
    arriving: { index: number; stopped: boolean },
    args: string,
  ): void {
    const sent = this.calls[arriving.index].function;
    if (arriving.stopped) return;
    if (!args.startsWith(sent.arguments)) {
      arriving.stopped = true;
      return;
    }
    const more = args.slice(sent.arguments.length);
    if (more.length === 0) return;
    sent.arguments = args;
    // The announcing delta stays name only (arguments ''), as vLLM's and OpenAI's first delta.
    const last = out.calls[out.calls.length - 1];
    if (last?.index === arriving.index && last.id === undefined) last.function.arguments += more;
    else out.calls.push({ index: arriving.index, function: { arguments: more } });
  }

  /**
   * A call's text ended and reads as `call` (null: not a call). True when the call was announced
   * while it arrived and is one: it gets the rest of its arguments if it parsed as announced.
   * False: the caller reads the text as it would have (a call sent whole, or the content); an
   * announced call whose text is not one keeps what it was sent, and its text is the content too.
   */
  protected callEnded(out: AutoToolCallDelta, call: ReadCall | null): boolean {
    const arriving = this.arriving;
    this.arriving = null;
    if (!arriving || !call) return false;
    if (call.name === this.calls[arriving.index].function.name)
      this.sendArguments(out, arriving, call.arguments);
    return true;
  }

  protected call(out: AutoToolCallDelta, call: ReadCall): void {
    if (this.calls.length >= this.maxCalls) return;
    const full: ToolCall = { id: this.newId(), type: 'function', function: { ...call } };
    this.calls.push(full);
    out.calls.push({ index: this.calls.length - 1, id: full.id, type: 'function', function: { ...call } });
  }
}

/** Characters of arriving call text read again at every piece (AutoToolCallReader.readsArriving). */
const ARRIVING_READ_EVERY_PIECE = 2048;

export function emptyDelta(): AutoToolCallDelta {
  return { content: '', calls: [] };
}

/** The longest end of `text` that starts `tag` (held back: the tag may be arriving). */
export function partialTagAtEnd(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--)
    if (tag.startsWith(text.slice(-n))) return n;
  return 0;
}
