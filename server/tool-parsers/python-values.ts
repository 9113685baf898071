/**
 * Values as vLLM's tool parsers hold them: Python objects, read from the model's JSON
 * (json.loads) or its Python literals (ast), and written back as `json.dumps(…,
 * ensure_ascii=False)` writes them into a call's `arguments`. Parsing into JavaScript values
 * instead would change what a client gets: `1.0` would come back as `1`, and a key like "2"
 * would move to the front of its object.
 */

/** A Python int: any size, written as its digits. */
export class PyInt {
  constructor(readonly value: bigint) {}
}

/** A Python float: written as Python's repr writes it. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A Python dict: its keys in the order they were first set, as Python keeps them. */
export class PyDict {
  /** By the key's identity in Python (1, 1.0 and True are one key), the key as written first and its last value. */
  readonly entries = new Map<string, { key: PyKey; value: PyValue }>();

  set(key: PyKey, value: PyValue): void {
    const identity = keyIdentity(key);
    const entry = this.entries.get(identity);
    if (entry) entry.value = value;
    else this.entries.set(identity, { key, value });
  }

  get(key: PyKey): PyValue | undefined {
    return this.entries.get(keyIdentity(key))?.value;
  }

  has(key: PyKey): boolean {
    return this.entries.has(keyIdentity(key));
  }
}

export type PyKey = string | PyInt | PyFloat | boolean | null;
export type PyValue = PyKey | PyValue[] | PyDict;

function keyIdentity(key: PyKey): string {
  if (typeof key === 'string') return `s${key}`;
  if (key === null) return 'None';
  if (typeof key === 'boolean') return `n${key ? 1 : 0}`;
  if (key instanceof PyInt) return `n${key.value}`;
  // A float equal to an int is that int's key in Python (hash(1.0) == hash(1), 1.0 == 1).
  return Number.isInteger(key.value) ? `n${BigInt(key.value)}` : `f${key.value}`;
}

/** Python's repr of a float: the shortest digits that read back, exponent form below 1e-4 and from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() without digits gives the shortest round-tripping digits, as repr does.
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  const sign = x < 0 ? '-' : '';
  if (e < -4 || e >= 16) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    return `${sign}${digits[0]}${fraction}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  const whole = digits.slice(0, e + 1).padEnd(e + 1, '0');
  const fraction = digits.slice(e + 1);
  return `${sign}${whole}.${fraction || '0'}`;
}

/** json.dumps(value, ensure_ascii=False) with its default separators. */
export function pythonJsonDumps(value: PyValue): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof PyInt) return value.value.toString();
  if (value instanceof PyFloat) return pythonFloatRepr(value.value);
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  const items = [...value.entries.values()].map(
    ({ key, value: v }) => `${keyText(key)}: ${pythonJsonDumps(v)}`,
  );
  return `{${items.join(', ')}}`;
}

/** json.dumps writes a non-string key as the string of its JSON form. */
function keyText(key: PyKey): string {
  return JSON.stringify(typeof key === 'string' ? key : pythonJsonDumps(key));
}

export class JsonReadError extends Error {}

const JSON_WHITESPACE = /[ \t\n\r]*/y;
const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const JSON_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/**
 * The JSON value starting at `start` (whitespace before it skipped), as Python's json module
 * reads it (NaN and ±Infinity included, control characters in strings refused), and where it ends:
 * json.JSONDecoder().raw_decode. Throws JsonReadError when there is no whole value there.
 */
export function readJsonValue(text: string, start = 0): { value: PyValue; end: number } {
  let at = start;
  const fail = (why: string): never => {
    throw new JsonReadError(`${why} at ${at}`);
  };
  const skip = () => {
    JSON_WHITESPACE.lastIndex = at;
    JSON_WHITESPACE.exec(text);
    at = JSON_WHITESPACE.lastIndex;
  };
  const literal = (word: string, value: PyValue): PyValue => {
    if (!text.startsWith(word, at)) fail(`expected ${word}`);
    at += word.length;
    return value;
  };
  const string = (): string => {
    at++;
    let out = '';
    for (;;) {
      if (at >= text.length) fail('unterminated string');
      const c = text[at];
      if (c === '"') {
        at++;
        return out;
      }
      if (c < ' ') fail('control character in string');
      if (c !== '\\') {
        out += c;
        at++;
        continue;
      }
      const e = text[at + 1];
      if (e === 'u') {
        const hex = text.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        at += 6;
      } else if (e !== undefined && e in JSON_ESCAPES) {
        out += JSON_ESCAPES[e];
        at += 2;
      } else fail('bad escape');
    }
  };
  const value = (): PyValue => {
    skip();
    const c = text[at];
    if (c === '{') {
      at++;
      const dict = new PyDict();
      skip();
      if (text[at] === '}') {
        at++;
        return dict;
      }
      for (;;) {
        skip();
        if (text[at] !== '"') fail('expected a key');
        const key = string();
        skip();
        if (text[at] !== ':') fail("expected ':'");
        at++;
        dict.set(key, value());
        skip();
        if (text[at] === ',') at++;
        else if (text[at] === '}') {
          at++;
          return dict;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      at++;
      const list: PyValue[] = [];
      skip();
      if (text[at] === ']') {
        at++;
        return list;
      }
      for (;;) {
        list.push(value());
        skip();
        if (text[at] === ',') at++;
        else if (text[at] === ']') {
          at++;
          return list;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === 'n') return literal('null', null);
    if (c === 't') return literal('true', true);
    if (c === 'f') return literal('false', false);
    if (c === 'N') return literal('NaN', new PyFloat(Number.NaN));
    if (c === 'I') return literal('Infinity', new PyFloat(Number.POSITIVE_INFINITY));
    if (text.startsWith('-Infinity', at)) return literal('-Infinity', new PyFloat(Number.NEGATIVE_INFINITY));
    JSON_NUMBER.lastIndex = at;
    const number = JSON_NUMBER.exec(text);
    if (!number) return fail('expected a value');
    at = JSON_NUMBER.lastIndex;
    return number[1] === undefined && number[2] === undefined
      ? new PyInt(BigInt(number[0]))
      : new PyFloat(Number(number[0]));
  };
  const result = value();
  return { value: result, end: at };
}

/** json.loads: one JSON value, whitespace around it allowed. Throws JsonReadError otherwise. */
export function readJson(text: string): PyValue {
  const { value, end } = readJsonValue(text);
  if (!/^[ \t\n\r]*$/.test(text.slice(end))) throw new JsonReadError(`extra data at ${end}`);
  return value;
}
