import { randomHex } from './request-id.js';
import type { GuidedToolCallOutput } from './tool-calls.js';

/** One tool call of a message, as OpenAI's API returns it. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/**
 * What a piece of output adds to a choice's tool calls, as a streamed chunk's `tool_calls` entry
 * says it: a call's first delta carries its id and name, the later ones more of its arguments.
 */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/** `more` after `deltas`, a call's arguments joined into the delta before when it is that call's. */
export function appendCallDeltas(deltas: ToolCallDelta[], more: readonly ToolCallDelta[]): void {
  for (const delta of more) {
    const last = deltas[deltas.length - 1];
    if (delta.id === undefined && last?.index === delta.index)
      last.function.arguments += delta.function.arguments;
    else deltas.push(delta);
  }
}

/** vLLM's tool call ids: "chatcmpl-tool-" and 32 hex digits. */
export function newToolCallId(): string {
  return `chatcmpl-tool-${randomHex()}`;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

/**
 * Reads a choice's guided output (tool-calls.ts) back as tool calls while it streams, so that a
 * streamed choice and a collected one say the same: a call's arguments are the JSON text the
 * model wrote for them, without the whitespace around it, and the deltas of a call's arguments
 * add up to its arguments.
 *
 * - named: the whole output is the arguments of the one call.
 * - required: the output is `[{"name": "…", "parameters": …}, …]`, keys in that order (the
 *   grammar writes an object's keys in the order its schema lists them); a call is announced
 *   once its name is complete, and its arguments are the text of its "parameters" value.
 *
 * The output was decoded under the grammar, so it is never malformed; it may be cut short
 * (finish_reason "length"), and then so are the last call's arguments, as they streamed.
 */
export class ToolCallReader {
  private readonly list: ToolCall[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Strings ended at the level of the current call's object: its "name" key, the name, the "parameters" key. */
  private callStrings = 0;
  private name: string | null = null;
  /** Inside the current call's arguments. */
  private inArguments: boolean;
  private argumentsStarted = false;
  /** Whitespace read inside the arguments, written once something follows it (trailing whitespace is not theirs). */
  private heldWhitespace = '';
  private deltas: ToolCallDelta[] = [];

  constructor(private readonly output: GuidedToolCallOutput) {
    this.inArguments = output.kind === 'named';
  }

  /** The calls read so far (the last one possibly cut short). */
  get calls(): readonly ToolCall[] {
    return this.list;
  }

  /** Reads more output; returns what it adds to the calls, one delta per call it touches. */
  push(text: string): ToolCallDelta[] {
    this.deltas = [];
    if (this.output.kind === 'named' && this.list.length === 0 && text.length > 0)
      this.startCall(this.output.name);
    for (const c of text) this.read(c);
    return this.deltas;
  }

  private read(c: string): void {
    if (this.output.kind === 'named') {
      this.argument(c);
      return;
    }
    if (this.inString) {
      if (this.inArguments) this.argument(c);
      else if (this.name !== null) this.name += c;
      if (this.escaped) this.escaped = false;
      else if (c === '\\') this.escaped = true;
      else if (c === '"') this.endString();
      return;
    }
    if (this.inArguments) {
      if (this.depth === 2 && c === '}') {
        // The call's object closes: its arguments end before any whitespace left in front of it.
        this.inArguments = false;
        this.heldWhitespace = '';
        this.depth = 1;
        return;
      }
      this.track(c);
      this.argument(c);
      return;
    }
    if (c === '"') {
      this.inString = true;
      // The call's second string is its name (after the "name" key).
      if (this.depth === 2 && this.callStrings === 1) this.name = '';
      return;
    }
    if (c === ':' && this.depth === 2 && this.callStrings === 3) {
      this.inArguments = true;
      this.argumentsStarted = false;
      return;
    }
    if (c === '{' && this.depth === 1) this.callStrings = 0;
    this.track(c);
  }

  /** Nesting and strings outside a name. */
  private track(c: string): void {
    if (c === '"') this.inString = true;
    else if (c === '{' || c === '[') this.depth++;
    else if (c === '}' || c === ']') this.depth--;
  }

  private endString(): void {
    this.inString = false;
    if (this.inArguments || this.depth !== 2) return;
    this.callStrings++;
    if (this.name !== null) {
      // Function names are letters, digits, _ and -; JSON.parse reads any escape all the same.
      this.startCall(JSON.parse(`"${this.name.slice(0, -1)}"`) as string);
      this.name = null;
    }
  }

  private startCall(name: string): void {
    const call: ToolCall = { id: newToolCallId(), type: 'function', function: { name, arguments: '' } };
    this.list.push(call);
    this.deltas.push({
      index: this.list.length - 1,
      id: call.id,
      type: 'function',
      function: { name, arguments: '' },
    });
  }

  private argument(c: string): void {
    if (WHITESPACE.has(c)) {
      if (this.argumentsStarted) this.heldWhitespace += c;
      return;
    }
    this.argumentsStarted = true;
    const text = this.heldWhitespace + c;
    this.heldWhitespace = '';
    const index = this.list.length - 1;
    this.list[index].function.arguments += text;
    const last = this.deltas[this.deltas.length - 1];
    if (last?.index === index) last.function.arguments += text;
    else this.deltas.push({ index, function: { arguments: text } });
  }
}
