import { pythonJsonDumps, readJsonValue } from './python-values.js';

/**
 * JSON that is still arriving, read as far as it can be without guessing: what a streamed tool
 * call may send of its arguments before the call ends. The text given is always the whole of it
 * so far (calls are short, so reading it again each time costs little and keeps no state).
 */

/** How far a JSON value's text could be read. */
export interface PartialDump {
  /**
   * The start of `json.dumps(value, ensure_ascii=False)` of the value being written, as far as no
   * later text can change it: a number or a literal only once something follows it, a string up
   * to its last whole character (an escape cut in two waits).
   */
  text: string;
  /** Where the reading stopped in the source text. */
  end: number;
  /** complete: the value ended at `end`; partial: the text ended first; malformed: not JSON. */
  state: 'complete' | 'partial' | 'malformed';
}

const WHITESPACE = /[ \t\n\r]*/y;
const NUMBER_PREFIX = /^-?(?:0|[1-9][0-9]*)?(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?$/;
const LITERALS = ['null', 'true', 'false', 'NaN', 'Infinity', '-Infinity'];
/** What may follow a number or a literal inside JSON. */
const AFTER_TOKEN = new Set([' ', '\t', '\n', '\r', ',', ']', '}']);

/** Where the JSON whitespace at `at` ends. */
export function skipWhitespace(text: string, at: number): number {
  WHITESPACE.lastIndex = at;
  WHITESPACE.exec(text);
  return WHITESPACE.lastIndex;
}

/** The JSON value at `start` (whitespace before it skipped), written as json.dumps writes it, as far as it has arrived. */
export function partialJsonDumps(text: string, start = 0): PartialDump {
  const at = skipWhitespace(text, start);
  if (at >= text.length) return { text: '', end: at, state: 'partial' };
  const c = text[at];
  if (c === '{' || c === '[') return partialContainer(text, at);
  if (c === '"') return partialString(text, at).dump;
  return partialToken(text, at);
}

/** A number or a literal: written once it is whole, which only what follows it can tell. */
function partialToken(text: string, at: number): PartialDump {
  const rest = text.slice(at, at + 10);
  for (const word of LITERALS) {
    if (text.startsWith(word, at)) {
      const end = at + word.length;
      if (end < text.length && !AFTER_TOKEN.has(text[end])) break;
      return whole(text, at, end);
    }
    if (at + rest.length === text.length && word.startsWith(rest))
      return { text: '', end: at, state: 'partial' };
  }
  let end = at;
  while (end < text.length && !AFTER_TOKEN.has(text[end])) end++;
  if (end === text.length)
    return { text: '', end: at, state: NUMBER_PREFIX.test(text.slice(at)) ? 'partial' : 'malformed' };
  return whole(text, at, end);
}

/** A whole scalar token, as json.loads reads it and json.dumps writes it back. */
function whole(text: string, at: number, end: number): PartialDump {
  try {
    const read = readJsonValue(text.slice(at, end));
    if (read.end !== end - at) return { text: '', end: at, state: 'malformed' };
    return { text: pythonJsonDumps(read.value), end, state: 'complete' };
  } catch {
    return { text: '', end: at, state: 'malformed' };
  }
}

/** A string, and what it reads as so far (its characters, for a call's name). */
export function partialString(text: string, at: number): { dump: PartialDump; value: string } {
  let i = at + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  if (i < text.length) {
    const dump = whole(text, at, i + 1);
    if (dump.state === 'malformed') return { dump, value: '' };
    return { dump, value: readJsonValue(text.slice(at, i + 1)).value as string };
  }
  // Cut short: drop an escape that has not all arrived, then read it as if it closed here.
  let body = text.slice(at + 1);
  const cutEscape = /\\(u[0-9a-fA-F]{0,3})?$/.exec(body);
  if (cutEscape && !endsEscaped(body.slice(0, cutEscape.index))) body = body.slice(0, cutEscape.index);
  let value: string;
  try {
    value = readJsonValue(`"${body}"`).value as string;
  } catch {
    return { dump: { text: '', end: at, state: 'malformed' }, value: '' };
  }
  return { dump: { text: arrivingJsonString(value), end: text.length, state: 'partial' }, value };
}

/**
 * The start of json.dumps of a string whose characters so far are `chars`: no closing quote, and
 * a last high surrogate held back for its pair (alone, JSON.stringify would write it as an escape).
 */
export function arrivingJsonString(chars: string): string {
  const last = chars.charCodeAt(chars.length - 1);
  const whole = last >= 0xd800 && last <= 0xdbff ? chars.slice(0, -1) : chars;
  return pythonJsonDumps(whole).slice(0, -1);
}

/** Whether `text` ends inside an escape (an odd run of backslashes). */
function endsEscaped(text: string): boolean {
  let n = 0;
  while (n < text.length && text[text.length - 1 - n] === '\\') n++;
  return n % 2 === 1;
}

/** An object or an array: each member written as it arrives, with json.dumps's separators. */
function partialContainer(text: string, at: number): PartialDump {
  const object = text[at] === '{';
  const close = object ? '}' : ']';
  let out = text[at];
  let i = skipWhitespace(text, at + 1);
  const cut = (state: 'partial' | 'malformed', end = i): PartialDump => ({ text: out, end, state });
  if (i >= text.length) return cut('partial');
  if (text[i] === close) return { text: `${out}${close}`, end: i + 1, state: 'complete' };
  for (;;) {
    if (object) {
      i = skipWhitespace(text, i);
      if (i >= text.length) return cut('partial');
      if (text[i] !== '"') return cut('malformed');
      const key = partialString(text, i).dump;
      out += key.text;
      if (key.state !== 'complete') return cut(key.state, key.end);
      i = skipWhitespace(text, key.end);
      if (i >= text.length) return cut('partial');
      if (text[i] !== ':') return cut('malformed');
      out += ': ';
      i++;
    }
    const member = partialJsonDumps(text, i);
    out += member.text;
    if (member.state !== 'complete') return cut(member.state, member.end);
    i = skipWhitespace(text, member.end);
    if (i >= text.length) return cut('partial');
    if (text[i] === close) return { text: `${out}${close}`, end: i + 1, state: 'complete' };
    if (text[i] !== ',') return cut('malformed');
    out += ', ';
    i++;
  }
}

/** A call object `{"name": …, <arguments key>: …}` still arriving: what of it can be told yet. */
export interface PartialCall {
  /** The function's name, once its string has ended. */
  name: string | null;
  /** The arguments written so far (PartialDump.text of the first arguments key's value); null before that key. */
  arguments: string | null;
  /** The object ended (then the caller reads it whole), or its text cannot be a call. */
  state: PartialDump['state'];
}

/**
 * The call object at the start of `text` (whitespace skipped), as far as it has arrived. Only the
 * first of `argumentKeys` to appear is followed (a call naming two, or one key twice, is told
 * apart only when it ends: AutoToolCallReader.callEnded).
 */
export function partialJsonCall(text: string, argumentKeys: readonly string[]): PartialCall {
  const call: PartialCall = { name: null, arguments: null, state: 'partial' };
  let i = skipWhitespace(text, 0);
  const stop = (state: PartialCall['state']): PartialCall => ({ ...call, state });
  if (i >= text.length) return call;
  if (text[i] !== '{') return stop('malformed');
  i = skipWhitespace(text, i + 1);
  if (text[i] === '}') return stop('complete');
  for (;;) {
    i = skipWhitespace(text, i);
    if (i >= text.length) return call;
    if (text[i] !== '"') return stop('malformed');
    const key = partialString(text, i);
    if (key.dump.state !== 'complete') return stop(key.dump.state);
    i = skipWhitespace(text, key.dump.end);
    if (i >= text.length) return call;
    if (text[i] !== ':') return stop('malformed');
    i = skipWhitespace(text, i + 1);
    const followed = argumentKeys.includes(key.value) && call.arguments === null;
    let value: PartialDump;
    if (key.value === 'name' && text[i] === '"') {
      const name = partialString(text, i);
      value = name.dump;
      if (value.state === 'complete') call.name = name.value;
    } else value = partialJsonDumps(text, i);
    if (followed) call.arguments = value.text;
    if (value.state !== 'complete') return stop(value.state);
    i = skipWhitespace(text, value.end);
    if (i >= text.length) return call;
    if (text[i] === '}') return stop('complete');
    if (text[i] !== ',') return stop('malformed');
    i++;
  }
}
