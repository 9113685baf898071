import { arrivingJsonString } from './partial-json.js';
import { PyDict, PyFloat, PyInt, type PyKey, type PyValue, pythonJsonDumps } from './python-values.js';

/**
 * A list of Python calls with literal keyword arguments, `[get_weather(city='Oslo'), ping()]`,
 * the form Llama 3.2 and 4 write their tool calls in (vLLM's `pythonic` parsers, which read it
 * with Python's own parser and keep only calls by name with literal keyword arguments).
 *
 * Read as Python reads it, over a text that may still be arriving: `partial` while some
 * continuation could make it such a list, `not-calls` once none can (the model is writing
 * something else), `calls` when the text so far is a whole list. A partial list says how far it
 * got: the calls it has read whole, and the one it is in once its first keyword argument has
 * begun, by name, with its arguments as far as json.dumps of them will start (each keyword
 * argument once the `,` or `)` after it has come).
 */
export type PythonCallsRead =
  | { kind: 'calls'; calls: Array<{ name: string; arguments: string }> }
  | { kind: 'partial'; calls: Array<{ name: string; arguments: string }>; arriving: ArrivingCall | null }
  | { kind: 'not-calls' };

/** The call a partial list is in: its name, and the start of its arguments' JSON. */
export interface ArrivingCall {
  name: string;
  arguments: string;
}

/** The text ended where more was needed. */
class Incomplete extends Error {}
/** The text cannot be read as a list of calls, however it goes on. */
class NotCalls extends Error {}

const KEYWORDS = new Set(
  'False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield'.split(
    ' ',
  ),
);
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER_LEXEME = /0[xXoObB][0-9A-Za-z_]*|[0-9.][0-9_.]*(?:[eE][+-]?[0-9_]*)?[0-9A-Za-z_.]*/y;
const DIGITS = '[0-9](?:_?[0-9])*';
const INT = /^(?:[1-9](?:_?[0-9])*|0(?:_?0)*|0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+)$/;
const FLOAT = new RegExp(
  `^(?:(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.)(?:[eE][+-]?${DIGITS})?|${DIGITS}[eE][+-]?${DIGITS})$`,
);
const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

export function readPythonCalls(text: string): PythonCallsRead {
  const reader = new PythonCallReader(text);
  try {
    return { kind: 'calls', calls: reader.list() };
  } catch (error) {
    if (error instanceof Incomplete)
      return { kind: 'partial', calls: reader.calls, arriving: reader.arrivingSoFar() };
    if (error instanceof NotCalls) return { kind: 'not-calls' };
    throw error;
  }
}

class PythonCallReader {
  private at = 0;
  /** The calls read whole so far. */
  readonly calls: Array<{ name: string; arguments: string }> = [];
  /** The call being read, as far as its keyword arguments have ended. */
  arriving: ArrivingCall | null = null;
  /** JSON of the keyword argument still arriving, when its value is a string: key and characters so far. */
  private arrivingString = '';
  /** The characters of the string literal(s) being read, as far as they have come. */
  private stringSoFar = '';

  constructor(private readonly text: string) {}

  list(): Array<{ name: string; arguments: string }> {
    this.expect('[');
    this.space();
    // An empty list calls nothing: vLLM reads it as text.
    if (this.peek() === ']') throw new NotCalls();
    for (;;) {
      const call = this.call();
      this.arriving = null;
      this.calls.push(call);
      if (this.separator(']')) break;
    }
    this.spaceToEnd();
    return this.calls;
  }

  private call(): { name: string; arguments: string } {
    const name = this.word();
    // vLLM's pattern for a call starts with a letter.
    if (KEYWORDS.has(name) || !/^[A-Za-z]/.test(name)) throw new NotCalls();
    this.space();
    this.expect('(');
    this.space();
    const args = new PyDict();
    if (this.peek() === ')') {
      this.at++;
      return { name, arguments: '{}' };
    }
    const seen = new Set<string>();
    for (;;) {
      // Positional arguments have no name to put them under: such a call is not read.
      const key = this.word();
      if (KEYWORDS.has(key) || seen.has(key)) throw new NotCalls();
      seen.add(key);
      this.space();
      this.expect('=');
      if (this.peek() === '=') throw new NotCalls();
      // A keyword argument has begun: the call's arguments have (`f(1)` is not a call).
      this.arriving ??= { name, arguments: '{' };
      this.space();
      const valueAt = this.at;
      let value: PyValue;
      let ended: boolean;
      try {
        value = this.value();
        ended = this.separator(')');
      } catch (error) {
        // A string value still arriving goes out as far as it has come (no closing quote: a
        // literal right after it would join it, as Python joins 'a' 'b').
        if (error instanceof Incomplete && this.startsString(valueAt))
          this.arrivingString = `${seen.size > 1 ? ', ' : ''}${JSON.stringify(key)}: ${arrivingJsonString(this.stringSoFar)}`;
        throw error;
      }
      args.set(key, value);
      // Keys are names, each once: json.dumps writes them in this order, as read.
      this.arriving.arguments += `${seen.size > 1 ? ', ' : ''}${JSON.stringify(key)}: ${pythonJsonDumps(value)}`;
      if (ended) break;
    }
    return { name, arguments: pythonJsonDumps(args) };
  }

  /** The call being read, with a string argument still arriving as far as it has come. */
  arrivingSoFar(): ArrivingCall | null {
    return (
      this.arriving && { name: this.arriving.name, arguments: this.arriving.arguments + this.arrivingString }
    );
  }

  /** Whether a string literal starts at `at` (a quote, or r/u and a quote). */
  private startsString(at: number): boolean {
    return this.isQuote(at) || (/^[rRuU]$/.test(this.text[at] ?? '') && this.isQuote(at + 1));
  }

  /** After an item: `,` (a trailing one before `close` too) or `close`; true at `close`. */
  private separator(close: string): boolean {
    this.space();
    const c = this.peek();
    this.at++;
    if (c === close) return true;
    if (c !== ',') throw new NotCalls();
    this.space();
    if (this.peek() !== close) return false;
    this.at++;
    return true;
  }

  private value(): PyValue {
    const c = this.peek();
    if (c === '[') {
      this.at++;
      this.space();
      const list: PyValue[] = [];
      if (this.peek() === ']') {
        this.at++;
        return list;
      }
      do {
        list.push(this.value());
      } while (!this.separator(']'));
      return list;
    }
    if (c === '{') {
      this.at++;
      this.space();
      const dict = new PyDict();
      if (this.peek() === '}') {
        this.at++;
        return dict;
      }
      do {
        const key = this.value();
        if (Array.isArray(key) || key instanceof PyDict) throw new NotCalls();
        this.space();
        this.expect(':');
        this.space();
        dict.set(key as PyKey, this.value());
      } while (!this.separator('}'));
      return dict;
    }
    if (c === '-' || c === '+') {
      // A signed number (ast's UnaryOp over a constant), as ast.literal_eval reads it.
      this.at++;
      this.space();
      const n = this.number();
      if (c === '+') return n;
      return n instanceof PyInt ? new PyInt(-n.value) : new PyFloat(-n.value);
    }
    if (c === '"' || c === "'") return this.strings();
    if (/[0-9.]/.test(c)) return this.number();
    const word = this.wordAt();
    if (word === null) throw new NotCalls();
    const prefix = word.toLowerCase();
    if (this.isQuote(this.at + word.length)) {
      if (prefix === 'r' || prefix === 'u') return this.strings();
      // Bytes and f-strings are not literals a call's arguments can be written in JSON from.
      throw new NotCalls();
    }
    this.at += word.length;
    if (word === 'True') return true;
    if (word === 'False') return false;
    if (word === 'None') return null;
    throw new NotCalls();
  }

  private number(): PyInt | PyFloat {
    NUMBER_LEXEME.lastIndex = this.at;
    const match = NUMBER_LEXEME.exec(this.text);
    if (!match || match[0].length === 0) throw this.atEnd() ? new Incomplete() : new NotCalls();
    const lexeme = match[0];
    this.at += lexeme.length;
    // More digits, a point or an exponent may be on the way.
    if (this.atEnd()) throw new Incomplete();
    const plain = lexeme.replaceAll('_', '');
    if (INT.test(lexeme)) return new PyInt(BigInt(plain));
    if (FLOAT.test(lexeme)) return new PyFloat(Number(plain));
    throw new NotCalls();
  }

  /** One string literal, or several side by side (Python joins them). */
  private strings(): string {
    let out = this.string('');
    for (;;) {
      this.space();
      if (this.isQuote(this.at)) {
        out += this.string(out);
        continue;
      }
      const word = this.wordAt();
      if (word !== null && /^[rRuU]$/.test(word) && this.isQuote(this.at + 1)) {
        out += this.string(out);
        continue;
      }
      return out;
    }
  }

  /** One string literal; `before` is what the literals joined to it gave (kept in stringSoFar). */
  private string(before: string): string {
    this.stringSoFar = before;
    let raw = false;
    if (!this.isQuote(this.at)) {
      raw = /[rR]/.test(this.text[this.at]);
      this.at++;
    }
    const quote = this.text[this.at];
    const rest = this.text.slice(this.at, this.at + 3);
    // '' at the end may be an empty string or the start of '''.
    if (rest === quote.repeat(rest.length) && rest.length < 3 && this.at + rest.length === this.text.length)
      throw new Incomplete();
    const triple = rest === quote.repeat(3);
    this.at += triple ? 3 : 1;
    let out = '';
    for (;;) {
      this.stringSoFar = before + out;
      const c = this.peek();
      if (c === quote) {
        if (!triple) {
          this.at++;
          return out;
        }
        const ahead = this.text.slice(this.at, this.at + 3);
        if (ahead === quote.repeat(3)) {
          this.at += 3;
          return out;
        }
        if (this.at + ahead.length === this.text.length && ahead === quote.repeat(ahead.length))
          throw new Incomplete();
        out += c;
        this.at++;
        continue;
      }
      if ((c === '\n' || c === '\r') && !triple) throw new NotCalls();
      if (c !== '\\') {
        out += c;
        this.at++;
        continue;
      }
      this.at++;
      const e = this.peek();
      if (raw) {
        // A raw string keeps its backslashes; one still stops the quote after it from ending the string.
        out += `\\${e}`;
        this.at++;
        continue;
      }
      out += this.escape(e);
    }
  }

  /** The escape after a backslash (at its letter), as Python reads it in a str literal. */
  private escape(e: string): string {
    this.at++;
    if (e === '\n') return '';
    if (e === '\r') {
      if (this.peek() === '\n') this.at++;
      return '';
    }
    if (e in SIMPLE_ESCAPES) return SIMPLE_ESCAPES[e];
    if (/[0-7]/.test(e)) {
      let digits = e;
      while (digits.length < 3 && /[0-7]/.test(this.peek())) digits += this.text[this.at++];
      return String.fromCodePoint(Number.parseInt(digits, 8));
    }
    const hexDigits = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (hexDigits > 0) {
      const hex = this.text.slice(this.at, this.at + hexDigits);
      if (!/^[0-9a-fA-F]*$/.test(hex)) throw new NotCalls();
      if (hex.length < hexDigits) throw new Incomplete();
      const code = Number.parseInt(hex, 16);
      if (code > 0x10ffff) throw new NotCalls();
      this.at += hexDigits;
      return String.fromCodePoint(code);
    }
    // \N{name} needs Unicode's name table; Loom does not carry it.
    if (e === 'N') throw new NotCalls();
    // Python keeps an unknown escape as written (with a warning).
    return `\\${e}`;
  }

  private isQuote(at: number): boolean {
    return this.text[at] === '"' || this.text[at] === "'";
  }

  /** The identifier at the cursor, without moving; Incomplete when it runs to the end; null when none starts there. */
  private wordAt(): string | null {
    WORD.lastIndex = this.at;
    const match = WORD.exec(this.text);
    if (!match) {
      if (this.atEnd()) throw new Incomplete();
      return null;
    }
    if (this.at + match[0].length === this.text.length) throw new Incomplete();
    return match[0];
  }

  private word(): string {
    const word = this.wordAt();
    if (word === null) throw new NotCalls();
    this.at += word.length;
    return word;
  }

  private expect(c: string): void {
    if (this.peek() !== c) throw new NotCalls();
    this.at++;
  }

  private peek(): string {
    if (this.atEnd()) throw new Incomplete();
    return this.text[this.at];
  }

  private atEnd(): boolean {
    return this.at >= this.text.length;
  }

  /** Whitespace inside brackets (newlines included, as Python joins the lines there). */
  private space(): void {
    while (this.at < this.text.length) {
      const c = this.text[this.at];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.at++;
      else if (c === '\\' && (this.text[this.at + 1] === '\n' || this.text[this.at + 1] === '\r'))
        this.at += 2;
      else break;
    }
  }

  /** After the list only whitespace may follow (Python would refuse another statement on its line). */
  private spaceToEnd(): void {
    this.space();
    if (!this.atEnd()) throw new NotCalls();
  }
}
