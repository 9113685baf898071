import { isIPv4, isIPv6 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { ByteMatcher, MAX_WHITESPACE_RUN } from '../../structured/byte-matcher.js';
import {
  choiceGrammar,
  ebnfGrammar,
  type Grammar,
  GuideError,
  jsonObjectGrammar,
  regexGrammar,
} from '../../structured/grammar-nodes.js';
import { compileJsonSchema } from '../../structured/json-schema.js';
import { accepts, run } from './match-text.js';

/**
 * One random walk over `alphabet` through the matcher. Every state must let some byte on or let
 * the value end: no dead ends (`label` names the case when one is found). The walk stops where
 * `ends(mayEnd, next)` says so and gives its text, or gives null once past `maxLength` bytes;
 * `choose` picks each next byte (default: uniformly).
 */
function randomWalk(
  m: ByteMatcher,
  alphabet: readonly number[],
  rand: () => number,
  label: string,
  opts: {
    ends: (mayEnd: boolean, next: number[]) => boolean;
    maxLength?: number;
    choose?: (next: number[]) => number;
  },
): string | null {
  let states = m.start();
  let text = '';
  for (;;) {
    const next = alphabet.filter((b) => m.feed(states, b).length > 0);
    const mayEnd = m.canEnd(states);
    expect(next.length > 0 || mayEnd, `${label}: dead end after ${text}`).toBe(true);
    if (opts.ends(mayEnd, next)) return text;
    if (text.length > (opts.maxLength ?? Infinity)) return null;
    const b = opts.choose ? opts.choose(next) : next[Math.floor(rand() * next.length)];
    states = m.feed(states, b);
    text += String.fromCharCode(b);
  }
}

/** Whether `v` is inside a schema's numeric bounds, compared as doubles. */
function insideBounds(bounds: Record<string, number>, v: number): boolean {
  return (
    (bounds.minimum === undefined || v >= bounds.minimum) &&
    (bounds.exclusiveMinimum === undefined || v > bounds.exclusiveMinimum) &&
    (bounds.maximum === undefined || v <= bounds.maximum) &&
    (bounds.exclusiveMaximum === undefined || v < bounds.exclusiveMaximum)
  );
}

/** A random JSON value, `depth` levels deep at most. */
function randomValue(rand: () => number, depth: number): unknown {
  const pick = Math.floor(rand() * (depth > 0 ? 7 : 5));
  switch (pick) {
    case 0:
      return rand() < 0.5;
    case 1:
      return null;
    case 2:
      return Math.round((rand() - 0.5) * 1e6) / (rand() < 0.5 ? 1 : 1000);
    case 3: {
      const chars = ['a', 'é', '"', '\\', '\n', '€', '😀', ' ', '\u0001', '/'];
      return Array.from(
        { length: Math.floor(rand() * 6) },
        () => chars[Math.floor(rand() * chars.length)],
      ).join('');
    }
    case 4:
      return -Math.floor(rand() * 100) * 1e-7;
    case 5:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [
          `k${i}${'"é'.slice(0, i % 3)}`,
          randomValue(rand, depth - 1),
        ]),
      );
  }
}

describe('ByteMatcher: any JSON object (json_object)', () => {
  const g = jsonObjectGrammar();

  it('accepts every object JSON.stringify writes, compact or indented', () => {
    const rand = mulberry32(11);
    for (let i = 0; i < 300; i++) {
      const value = Object.fromEntries([[`key${i}`, randomValue(rand, 3)]]);
      expect(accepts(g, JSON.stringify(value)), JSON.stringify(value)).toBe(true);
      expect(accepts(g, ` ${JSON.stringify(value, null, 2)}`)).toBe(true);
    }
  });

  it('refuses what is not one JSON object, at the first byte that breaks it', () => {
    const cases: Array<[string, number]> = [
      ['[1]', 0],
      ['"x"', 0],
      ['{"a" 1}', 5],
      ['{"a":01}', 6],
      ['{"a":1,}', 7],
      ['{"a":tru}', 8],
      ['{"a":"\u0001"}', 6],
      ['{"a":"\\x"}', 7],
      ['{"a":1.}', 7],
      ['{"a":1}}', 7],
      ['{"a":1} ', 7],
      ['{"a":-}', 6],
    ];
    for (const [text, at] of cases) expect(run(g, text).taken, text).toBe(at);
    expect(run(g, '{"a":1').canEnd).toBe(false);
    const bytes = (...parts: Array<string | number>) =>
      Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...new TextEncoder().encode(p)] : [p])));
    expect(run(g, bytes('{"a":"', 0xff, '"}')).taken).toBe(6); // not UTF-8
    expect(run(g, bytes('{"a":"', 0xc3, '"}')).taken).toBe(7); // a character cut short
    expect(accepts(g, new TextDecoder().decode(bytes('{"a":"', 0xc3, 0xa9, '"}')))).toBe(true);
  });

  it('bounds runs of whitespace', () => {
    expect(accepts(g, `{${' '.repeat(MAX_WHITESPACE_RUN)}}`)).toBe(true);
    expect(run(g, `{${' '.repeat(MAX_WHITESPACE_RUN + 1)}}`).taken).toBe(1 + MAX_WHITESPACE_RUN);
  });
});

describe('ByteMatcher: a JSON Schema', () => {
  const schema = {
    $defs: {
      Tag: { type: 'object', properties: { label: { type: 'string', maxLength: 3 } }, required: ['label'] },
      Tree: {
        type: 'object',
        properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/Tree' } } },
        required: ['v'],
      },
    },
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 2 },
      age: { type: ['integer', 'null'] },
      mood: { enum: ['happy', 'sad', 3] },
      tags: { type: 'array', items: { $ref: '#/$defs/Tag' }, minItems: 1, maxItems: 2 },
      tree: { $ref: '#/$defs/Tree' },
      point: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'boolean' }], items: false },
      extra: {
        anyOf: [{ type: 'string' }, { type: 'object', properties: { x: { const: 1 } }, required: ['x'] }],
      },
    },
    required: ['name', 'tags'],
  };
  const g = compileJsonSchema(schema, 'response_format');

  it('accepts documents that follow it, keys in its order, optional ones left out', () => {
    const ok = [
      { name: 'Al', tags: [{ label: 'x' }] },
      { name: 'Bob', age: 7, mood: 'sad', tags: [{ label: 'abc' }, { label: '' }] },
      {
        name: 'Bo',
        age: null,
        mood: 3,
        tags: [{ label: 'é€😀' }],
        tree: { v: 1, kids: [{ v: 2 }, { v: -3, kids: [] }] },
      },
      { name: 'Bo', tags: [{ label: 'a' }], point: [1.5e3, true], extra: 'hi' },
      { name: 'Bo', tags: [{ label: 'a' }], extra: { x: 1 } },
    ];
    for (const doc of ok) {
      expect(accepts(g, JSON.stringify(doc)), JSON.stringify(doc)).toBe(true);
      expect(accepts(g, JSON.stringify(doc, null, 1))).toBe(true);
    }
  });

  it('refuses documents that break it', () => {
    const bad = [
      { tags: [{ label: 'x' }], name: 'Al' }, // order
      { name: 'A', tags: [{ label: 'x' }] }, // minLength
      { name: 'Al', tags: [] }, // minItems
      { name: 'Al', tags: [{ label: 'a' }, { label: 'b' }, { label: 'c' }] }, // maxItems
      { name: 'Al', tags: [{ label: 'abcd' }] }, // maxLength
      { name: 'Al', age: 1.5, tags: [{ label: 'a' }] }, // integer
      { name: 'Al', mood: 'glad', tags: [{ label: 'a' }] }, // enum
      { name: 'Al', tags: [{ label: 'a' }], color: 1 }, // additional property
      { name: 'Al' }, // required
      { name: 'Al', tags: [{ label: 'a' }], point: [1, true, 2] }, // items: false
      { name: 'Al', tags: [{ label: 'a' }], tree: { kids: [] } }, // nested required
      { name: 'Al', tags: [{ label: 'a' }], extra: { x: 2 } }, // const in a union
    ];
    for (const doc of bad) expect(accepts(g, JSON.stringify(doc)), JSON.stringify(doc)).toBe(false);
  });

  it('refuses a schema keyword it cannot follow, by name', () => {
    expect(() => compileJsonSchema({ not: { type: 'string' } }, 'guided_json')).toThrow(/"not"/);
    expect(() => compileJsonSchema({ type: 'string', minimum: 2 }, 'guided_json')).toThrow(/"minimum"/);
    expect(() => compileJsonSchema({ $ref: 'http://x/y' }, 'guided_json')).toThrow(/not local/);
    expect(() => compileJsonSchema({ allOf: [{}, {}] }, 'guided_json')).toThrow(/allOf/);
    expect(() => compileJsonSchema({ type: 'object', required: ['a'] }, 'guided_json')).toThrow(/"a"/);
    expect(() => compileJsonSchema([], 'guided_json')).toThrow(/JSON Schema/);
  });

  it('a scalar root may end after a number only where the number is complete', () => {
    const n = compileJsonSchema({ type: 'number' }, 'guided_json');
    expect(accepts(n, '-12.5e+3')).toBe(true);
    expect(run(n, '-12.').canEnd).toBe(false);
    expect(run(n, '12 ').taken).toBe(2);
  });
});

/** Whether `text` has whitespace outside strings only as one space after each `,` and `:`. */
function writtenCompactly(text: string): boolean {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === ' ' || c === '\n' || c === '\t' || c === '\r') {
      if (c !== ' ' || (text[i - 1] !== ',' && text[i - 1] !== ':') || text[i + 1] === ' ') return false;
    } else if ((c === ',' || c === ':') && text[i + 1] !== ' ') return false;
  }
  return true;
}

describe('ByteMatcher: compact JSON (disable_any_whitespace)', () => {
  const schema = {
    type: 'object',
    properties: {
      a: { type: 'integer' },
      b: { type: 'array', items: { type: 'string' } },
      c: { type: 'object', properties: { d: { type: 'boolean' } } },
    },
    required: ['a'],
  };
  const g: Grammar = { ...compileJsonSchema(schema, 'structured_outputs'), compact: true };

  it('takes JSON written as json.dumps writes it, and no other spacing', () => {
    for (const text of [
      '{"a": 1}',
      '{"a": -2, "b": ["x", "y z"], "c": {"d": true}}',
      '{"a": 0, "b": []}',
      '{"a": 3, "c": {}}',
    ])
      expect(accepts(g, text), text).toBe(true);
    for (const text of [
      ' {"a": 1}',
      '{"a":1}',
      '{ "a": 1}',
      '{"a": 1 }',
      '{"a" : 1}',
      '{"a":  1}',
      '{"a": 1,"b": []}',
      '{"a": 1, "b": [ "x"]}',
      '{"a": 1, "b": ["x","y"]}',
      '{"a": 1, "b": ["x" ]}',
      '{"a":\n1}',
    ])
      expect(accepts(g, text), text).toBe(false);
    const any: Grammar = { ...jsonObjectGrammar(), compact: true };
    expect(accepts(any, '{"k": [1, {"x": null}], "e": {}}')).toBe(true);
    expect(accepts(any, '{"k": [1,2]}')).toBe(false);
  });

  it('random walks never reach a dead end, and every document they end on is written compactly', () => {
    const m = new ByteMatcher({ ...jsonObjectGrammar(), compact: true });
    const rand = mulberry32(5);
    const alphabet = [...'{}[]",: \n0123456789-.eEtruefalsnxy'].map((c) => c.charCodeAt(0));
    let ended = 0;
    for (let w = 0; w < 150; w++) {
      const text = randomWalk(m, alphabet, rand, 'compact', {
        ends: (mayEnd, next) => next.length === 0 || (mayEnd && rand() < 0.5),
        maxLength: 60,
      });
      if (text === null) continue;
      ended++;
      expect(() => JSON.parse(text), text).not.toThrow();
      expect(writtenCompactly(text), text).toBe(true);
    }
    expect(ended).toBeGreaterThan(20);
  });
});

describe('ByteMatcher: numeric bounds', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it('an integer range: every prefix can still end inside it, and only values inside end', () => {
    const g = schema({ type: 'integer', minimum: 10, maximum: 250 });
    for (const t of ['10', '99', '123', '250']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['9', '251', '-1', '1e2', '010', '12.0']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '260').taken).toBe(2); // 260, 2600… are all past 250
    expect(run(g, '251').taken).toBe(2);
    expect(run(g, '3').canEnd).toBe(false); // 30–39 are still ahead
    expect(run(g, '-').taken).toBe(0);
    const low = schema({ type: 'integer', minimum: 1000 });
    expect(run(low, '5').taken).toBe(1); // 5000…
    expect(run(low, '0').taken).toBe(0);
  });

  it('exclusive and draft-4 boolean bounds, fractions, and values no double holds', () => {
    const unit = schema({ type: 'number', exclusiveMinimum: 0, maximum: 1 });
    for (const t of ['0.5', '1', '1.0', '0.001']) expect(accepts(unit, t), t).toBe(true);
    for (const t of ['0', '0.0', '1.5', '1.01', '-0.5', '0.5e0']) expect(accepts(unit, t), t).toBe(false);
    expect(run(unit, '1.5').taken).toBe(2);
    expect(run(unit, '-').taken).toBe(0);
    const above5 = schema({ type: 'number', minimum: 5, exclusiveMinimum: true });
    expect(accepts(above5, '5')).toBe(false);
    expect(accepts(above5, '5.01')).toBe(true);
    // 2^53 is a double; 2^53 + 1 is not, and compared as doubles it would pass as 2^53.
    const big = schema({ type: 'integer', maximum: 2 ** 53 });
    expect(accepts(big, '9007199254740992')).toBe(true);
    expect(accepts(big, '9007199254740993')).toBe(false);
    const tenth = schema({ type: 'number', maximum: 0.1 });
    expect(accepts(tenth, '0.1')).toBe(true);
    expect(accepts(tenth, '0.1000000000000000001')).toBe(false);
    const inferred = schema({ exclusiveMaximum: -2.5 }); // bounds alone: a number
    expect(accepts(inferred, '-2.51')).toBe(true);
    expect(accepts(inferred, '-2.5')).toBe(false);
    expect(accepts(inferred, '"x"')).toBe(false);
  });

  it('random walks under random bounds never reach a dead end, and end only inside the range', () => {
    const rand = mulberry32(7);
    const ends = [-1000, -37.5, -2, -0.25, 0, 0.5, 3, 12, 99.9, 250, 4096];
    const pick = () => ends[Math.floor(rand() * ends.length)];
    const alphabet = [...'-0123456789.'].map((c) => c.charCodeAt(0));
    for (let r = 0; r < 40; r++) {
      const integer = rand() < 0.5;
      const bounds: Record<string, number> = {};
      if (rand() < 0.8) bounds[rand() < 0.5 ? 'minimum' : 'exclusiveMinimum'] = pick();
      if (rand() < 0.8) bounds[rand() < 0.5 ? 'maximum' : 'exclusiveMaximum'] = pick();
      const lo = bounds.minimum ?? bounds.exclusiveMinimum ?? -Infinity;
      const hi = bounds.maximum ?? bounds.exclusiveMaximum ?? Infinity;
      if (
        lo > hi ||
        (lo === hi && (bounds.exclusiveMinimum !== undefined || bounds.exclusiveMaximum !== undefined))
      )
        continue;
      if (integer && Math.ceil(lo) > Math.floor(hi)) continue;
      if (
        integer &&
        Math.ceil(lo) === Math.floor(hi) &&
        Number.isInteger(lo) &&
        bounds.exclusiveMinimum !== undefined
      )
        continue;
      let g: Grammar;
      try {
        g = schema({ type: integer ? 'integer' : 'number', ...bounds });
      } catch {
        continue; // an integer range with none inside: refused, checked below by hand
      }
      const m = new ByteMatcher(g);
      const label = JSON.stringify({ integer, ...bounds });
      for (let w = 0; w < 60; w++) {
        const text = randomWalk(m, alphabet, rand, label, {
          ends: (mayEnd, next) => next.length === 0 || (mayEnd && rand() < 0.3),
          maxLength: 23,
        });
        if (text === null) continue;
        const v = Number(text);
        expect(insideBounds(bounds, v), `${label}: ended on ${text}`).toBe(true);
        if (integer) expect(Number.isInteger(v), text).toBe(true);
      }
    }
  });

  it('refuses bounds that leave no value, or a boolean flag without its bound', () => {
    expect(() => schema({ type: 'integer', minimum: 1.2, maximum: 1.8 })).toThrow(/allows no integer/);
    expect(() => schema({ type: 'number', minimum: 2, maximum: 1 })).toThrow(/allows no number/);
    expect(() => schema({ type: 'number', exclusiveMinimum: 1, maximum: 1 })).toThrow(/allows no number/);
    expect(() => schema({ type: 'number', exclusiveMaximum: true })).toThrow(/"maximum"/);
    expect(() => schema({ type: 'number', minimum: '3' })).toThrow(/"minimum" that is not a number/);
  });
});

/** Whether decimal text `v` is an integer multiple of decimal text `k`, by exact BigInt arithmetic. */
function isMultiple(v: string, k: string): boolean {
  const exact = (t: string) => {
    const [int, frac = ''] = t.replace('-', '').split('.');
    return { n: BigInt(int + frac) * (t.startsWith('-') ? -1n : 1n), scale: frac.length };
  };
  const a = exact(v);
  const b = exact(k);
  const scale = Math.max(a.scale, b.scale);
  const up = (x: { n: bigint; scale: number }) => x.n * 10n ** BigInt(scale - x.scale);
  return up(a) % up(b) === 0n;
}

describe('ByteMatcher: multipleOf', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it('integers: only multiples end, and every prefix can still reach one', () => {
    const g = schema({ type: 'integer', multipleOf: 3 });
    for (const t of ['0', '3', '-6', '300', '12345678901234567890']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['1', '4', '-5', '3.0', '3e0']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '1').canEnd).toBe(false); // 12, 15, … are still ahead
    expect(run(g, '3e').taken).toBe(1); // no exponent on a constrained number
  });

  it('decimal steps are exact: 0.3 is a multiple of 0.1, as no double arithmetic has it', () => {
    const tenth = schema({ type: 'number', multipleOf: 0.1 });
    for (const t of ['0.3', '-2.7', '5', '0.30', '100.1']) expect(accepts(tenth, t), t).toBe(true);
    for (const t of ['0.35', '0.01', '1.05']) expect(accepts(tenth, t), t).toBe(false);
    expect(run(tenth, '0.35').taken).toBe(3); // after "0.3" only zeros can follow
    // An integer's multiples of 0.5 are every integer; of 2.5, the multiples of 5.
    const half = schema({ type: 'integer', multipleOf: 0.5 });
    for (const t of ['1', '-7', '0']) expect(accepts(half, t), t).toBe(true);
    const twoAndHalf = schema({ type: 'integer', multipleOf: 2.5 });
    expect(accepts(twoAndHalf, '15')).toBe(true);
    expect(accepts(twoAndHalf, '12')).toBe(false);
  });

  it('with bounds: a prefix is led only toward a multiple inside them', () => {
    const g = schema({ type: 'integer', minimum: 10, maximum: 20, multipleOf: 7 });
    expect(accepts(g, '14')).toBe(true);
    for (const t of ['7', '21', '10', '20']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '2').taken).toBe(0); // 20–29 hold no multiple of 7 within the bounds
    expect(run(g, '15').taken).toBe(1);
    const open = schema({ type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, multipleOf: 0.25 });
    for (const t of ['0.25', '0.5', '0.75']) expect(accepts(open, t), t).toBe(true);
    for (const t of ['0', '1', '0.2', '0.125']) expect(accepts(open, t), t).toBe(false);
  });

  it('refuses a step that is not above 0, or bounds that hold no multiple, naming it', () => {
    expect(() => schema({ type: 'number', multipleOf: 0 })).toThrow(/"multipleOf" 0/);
    expect(() => schema({ type: 'number', multipleOf: -2 })).toThrow(/"multipleOf" -2/);
    expect(() => schema({ type: 'number', multipleOf: '2' })).toThrow(/"multipleOf" that is not a number/);
    expect(() => schema({ type: 'integer', minimum: 1, maximum: 6, multipleOf: 7 })).toThrow(
      /allows no integer: no multiple of 7/,
    );
    expect(() => schema({ type: 'string', multipleOf: 2 })).toThrow(/without allowing type "number"/);
  });

  it('random walks under random steps and bounds never reach a dead end, and end only on allowed values', () => {
    const rand = mulberry32(11);
    const steps = [2, 3, 7, 0.5, 0.25, 0.1, 1.5, 12.5, 0.003];
    const ends = [-1000, -37.5, -2, -0.25, 0, 0.5, 3, 12, 99.9, 250, 4096];
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    const alphabet = [...'-0123456789.'].map((c) => c.charCodeAt(0));
    let walked = 0;
    for (let r = 0; r < 60; r++) {
      const integer = rand() < 0.5;
      const bounds: Record<string, number> = { multipleOf: pick(steps) };
      if (rand() < 0.6) bounds[rand() < 0.5 ? 'minimum' : 'exclusiveMinimum'] = pick(ends);
      if (rand() < 0.6) bounds[rand() < 0.5 ? 'maximum' : 'exclusiveMaximum'] = pick(ends);
      let g: Grammar;
      try {
        g = schema({ type: integer ? 'integer' : 'number', ...bounds });
      } catch {
        continue; // bounds that leave no allowed value are refused (checked above)
      }
      walked++;
      const m = new ByteMatcher(g);
      const label = JSON.stringify({ integer, ...bounds });
      for (let w = 0; w < 40; w++) {
        const text = randomWalk(m, alphabet, rand, label, {
          ends: (mayEnd, next) => next.length === 0 || (mayEnd && rand() < 0.3),
          maxLength: 23,
        });
        if (text === null) continue;
        expect(insideBounds(bounds, Number(text)), `${label}: ended on ${text}`).toBe(true);
        expect(isMultiple(text, String(bounds.multipleOf)), `${label}: ended on ${text}`).toBe(true);
        if (integer) expect(/^-?\d+$/.test(text), text).toBe(true);
      }
    }
    expect(walked).toBeGreaterThan(30);
  });
});

describe('ByteMatcher: enum and const beside other keywords', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it('keeps only the values every other keyword allows, as JSON Schema applies them all', () => {
    const small = schema({ type: 'integer', enum: [1, 5, 6, 2.5], maximum: 5, multipleOf: 0.5 });
    expect(accepts(small, '1')).toBe(true);
    expect(accepts(small, '5')).toBe(true);
    for (const t of ['6', '2.5']) expect(accepts(small, t), t).toBe(false); // above 5; not an integer
    const short = schema({ type: 'string', enum: ['ab', 'abcd', 7], maxLength: 3 });
    expect(accepts(short, '"ab"')).toBe(true);
    for (const t of ['"abcd"', '7']) expect(accepts(short, t), t).toBe(false);
    const both = schema({ const: 'x', enum: ['x', 'y'] });
    expect(accepts(both, '"x"')).toBe(true);
    expect(accepts(both, '"y"')).toBe(false);
    // Annotations beside an enum change nothing.
    const annotated = schema({ enum: ['a', 2], title: 'T', description: 'd' });
    for (const t of ['"a"', '2']) expect(accepts(annotated, t), t).toBe(true);
  });

  it('refuses a schema whose other keywords leave none of its values, naming it', () => {
    expect(() => schema({ type: 'string', const: 3 })).toThrow(/allows no value: no "const" value/);
    expect(() => schema({ enum: [4, 8], minimum: 10 })).toThrow(/allows no value: no "enum" value/);
    expect(() => schema({ const: 'z', enum: ['x'] })).toThrow(/allows no value/);
  });
});

describe('ByteMatcher: minProperties and maxProperties', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');
  const int = { type: 'integer' };

  it('an object closes only with enough keys, and no key is taken that would leave too few', () => {
    const g = schema({ type: 'object', properties: { a: int, b: int, c: int }, minProperties: 2 });
    for (const t of ['{"a":1,"b":2}', '{"b":1,"c":2}', '{"a":1,"b":2,"c":3}'])
      expect(accepts(g, t), t).toBe(true);
    for (const t of ['{}', '{"a":1}', '{"c":1}']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '{"c').taken).toBe(2); // after "c" no listed key is left to reach two
    expect(run(g, '{"a":1}').taken).toBe(6);
  });

  it('no key past the maximum, and none that would crowd out a required one', () => {
    const g = schema({ type: 'object', additionalProperties: int, maxProperties: 2 });
    expect(accepts(g, '{"x":1,"y":2}')).toBe(true);
    expect(run(g, '{"x":1,"y":2,').taken).toBe(12);
    const r = schema({
      type: 'object',
      properties: { a: int, b: int, c: int },
      required: ['c'],
      maxProperties: 2,
    });
    for (const t of ['{"a":1,"c":3}', '{"c":3}']) expect(accepts(r, t), t).toBe(true);
    expect(run(r, '{"a":1,"b').taken).toBe(8); // a and b would leave no room for c
  });

  it('refuses bounds no object can meet, naming them', () => {
    expect(() => schema({ type: 'object', properties: { a: int }, minProperties: 2 })).toThrow(
      /allows no object: "minProperties" 2 is more than the 1 properties/,
    );
    expect(() =>
      schema({ type: 'object', additionalProperties: true, minProperties: 3, maxProperties: 2 }),
    ).toThrow(/"minProperties" 3 is more than "maxProperties" 2/);
    expect(() =>
      schema({ type: 'object', properties: { a: int, b: int }, required: ['a', 'b'], maxProperties: 1 }),
    ).toThrow(/requires 2 properties, "maxProperties" is 1/);
    expect(() => schema({ type: 'object', maxProperties: -1 })).toThrow(
      /"maxProperties" that is not a non-negative/,
    );
  });

  it('random walks never reach a dead end, and every object ends with a key count inside the bounds', () => {
    const rand = mulberry32(5);
    const alphabet = [...'{}",:01abcdxy'].map((c) => c.charCodeAt(0));
    let walked = 0;
    let completed = 0;
    for (let r = 0; r < 40; r++) {
      const names = ['a', 'b', 'c', 'd'].filter(() => rand() < 0.7);
      const properties = Object.fromEntries(
        names.map((n) => [n, { type: 'integer', maximum: 1, minimum: 0 }]),
      );
      const required = names.filter(() => rand() < 0.3);
      const extra = rand() < 0.5;
      const minProperties = Math.floor(rand() * 4);
      const maxProperties = rand() < 0.7 ? minProperties + Math.floor(rand() * 3) : undefined;
      const s = {
        type: 'object',
        properties,
        required,
        minProperties,
        ...(maxProperties === undefined ? {} : { maxProperties }),
        ...(extra ? { additionalProperties: { type: 'integer', minimum: 0, maximum: 1 } } : {}),
      };
      let g: Grammar;
      try {
        g = schema(s);
      } catch {
        continue; // bounds no object meets are refused (checked above)
      }
      walked++;
      const m = new ByteMatcher(g);
      for (let w = 0; w < 30; w++) {
        const text = randomWalk(m, alphabet, rand, JSON.stringify(s), {
          ends: (mayEnd) => mayEnd,
          maxLength: 80,
        });
        if (text === null) continue;
        const keys = text.match(/"[^"]*":/g) ?? [];
        expect(keys.length, `${JSON.stringify(s)}: ${text}`).toBeGreaterThanOrEqual(minProperties);
        expect(keys.length, `${JSON.stringify(s)}: ${text}`).toBeLessThanOrEqual(maxProperties ?? Infinity);
        for (const name of required) expect(text, JSON.stringify(s)).toContain(`"${name}":`);
        completed++;
      }
    }
    expect(walked).toBeGreaterThan(15);
    expect(completed).toBeGreaterThan(walked * 10); // most walks finish an object
  });
});

describe('ByteMatcher: uniqueItems', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it('items from a list: each value is offered until it is used, and the array cannot outrun them', () => {
    // pydantic's set[Color] for an Enum: the items are a $ref to the enum.
    const g = schema({
      type: 'array',
      items: { $ref: '#/$defs/Color' },
      uniqueItems: true,
      $defs: { Color: { enum: ['red', 'green', 'blue'] } },
    });
    for (const t of ['[]', '["red"]', '["blue","red"]', '["red","green","blue"]'])
      expect(accepts(g, t), t).toBe(true);
    expect(accepts(g, '["red","red"]')).toBe(false);
    expect(run(g, '["red","r').taken).toBe(8); // "red" is used: no value left that starts with r
    expect(run(g, '["red","green","blue",').taken).toBe(21); // nothing left for a fourth item
    const flags = schema({ type: 'array', items: { type: 'boolean' }, uniqueItems: true, minItems: 2 });
    expect(accepts(flags, '[true,false]')).toBe(true);
    expect(accepts(flags, '[true]')).toBe(false);
  });

  it('strings: a repeat cannot be closed, but can go on into a new value; escapes are read as their characters', () => {
    const g = schema({ type: 'array', items: { type: 'string' }, uniqueItems: true });
    expect(accepts(g, '["a","b","ab"]')).toBe(true);
    expect(accepts(g, '["a","a"]')).toBe(false);
    expect(run(g, '["a","a"').taken).toBe(7); // refused at the closing quote
    expect(accepts(g, '["a","aa"]')).toBe(true);
    expect(accepts(g, '["a","\\u0061"]')).toBe(false); // the same value, escaped
    expect(accepts(g, '["é","\\u00e9"]')).toBe(false);
  });

  it('numbers: equal values in any spelling cannot end twice; an integer 0 cannot start again', () => {
    const ints = schema({ type: 'array', items: { type: 'integer' }, uniqueItems: true });
    expect(accepts(ints, '[1,10,-1,0]')).toBe(true);
    for (const t of ['[1,1]', '[0,-0]', '[7,2,7]']) expect(accepts(ints, t), t).toBe(false);
    expect(run(ints, '[1,1,').taken).toBe(4); // 1 cannot end again, though 1… can go on
    expect(accepts(ints, '[1,12]')).toBe(true);
    expect(run(ints, '[0,0').taken).toBe(3); // a second 0 could never become anything else
    expect(run(ints, '[0,-0').taken).toBe(4);
    const nums = schema({ type: 'array', items: { type: 'number' }, uniqueItems: true });
    expect(accepts(nums, '[1,1.5,0.15e1]')).toBe(false); // 0.15e1 is 1.5
    for (const t of ['[1,1.0]', '[100,1e2]', '[0.5,5e-1]', '[0,-0.0]'])
      expect(accepts(nums, t), t).toBe(false);
    expect(accepts(nums, '[1,1.01,1e1,0,0.0001]')).toBe(true);
  });

  it('refuses items it cannot keep apart, and minItems past the values there are, naming them', () => {
    const refused = /"uniqueItems": true with items Loom cannot keep apart/;
    expect(() =>
      schema({ type: 'array', items: { type: 'integer', maximum: 9 }, uniqueItems: true }),
    ).toThrow(refused);
    expect(() =>
      schema({ type: 'array', items: { type: 'string', maxLength: 2 }, uniqueItems: true }),
    ).toThrow(refused);
    expect(() => schema({ type: 'array', items: { type: 'object' }, uniqueItems: true })).toThrow(refused);
    expect(() => schema({ type: 'array', uniqueItems: true })).toThrow(refused);
    expect(() => schema({ type: 'array', items: { enum: [1, 2] }, uniqueItems: true, minItems: 3 })).toThrow(
      /"minItems" 3 with "uniqueItems" and 2 possible items/,
    );
    expect(() => schema({ type: 'array', uniqueItems: 'yes' })).toThrow(
      /"uniqueItems" that is not true or false/,
    );
    // uniqueItems: false constrains nothing.
    expect(accepts(schema({ type: 'array', items: { type: 'integer' }, uniqueItems: false }), '[1,1]')).toBe(
      true,
    );
  });

  it('random walks over number items never reach a dead end, and no value ends twice', () => {
    const rand = mulberry32(9);
    const alphabet = [...'[]-,.e+0123'].map((c) => c.charCodeAt(0));
    // Exact values: a number's digits and power of ten with trailing zeros dropped.
    const exact = (t: string) => {
      const m = /^(-?)(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?$/.exec(t) as RegExpExecArray;
      let n = BigInt(m[2] + (m[3] ?? ''));
      let scale = (m[3] ?? '').length - Number(m[4] ?? 0);
      while (n !== 0n && n % 10n === 0n) {
        n /= 10n;
        scale--;
      }
      return n === 0n ? '0' : `${m[1]}${n}e${-scale}`;
    };
    let finished = 0;
    for (const type of ['integer', 'number']) {
      const m = new ByteMatcher(schema({ type: 'array', items: { type }, uniqueItems: true, maxItems: 8 }));
      for (let w = 0; w < 60; w++) {
        const text = randomWalk(m, alphabet, rand, type, {
          ends: (mayEnd) => mayEnd,
          maxLength: 60,
          // Lean toward commas and the close, so items are short and arrays end.
          choose: (next) => {
            const ends = next.filter((b) => b === 0x2c || b === 0x5d);
            const pool = ends.length > 0 && rand() < 0.4 ? ends : next;
            return pool[Math.floor(rand() * pool.length)];
          },
        });
        if (text === null) continue;
        const items = text
          .slice(1, -1)
          .split(',')
          .filter((t) => t !== '');
        expect(new Set(items.map(exact)).size, text).toBe(items.length);
        finished++;
      }
    }
    expect(finished).toBeGreaterThan(60);
  });

  it('random walks over an enum never reach a dead end, and every array ends without a repeat', () => {
    const rand = mulberry32(3);
    const values = ['a', 'ab', 'b', 'abc', 1, 12, true, null];
    const alphabet = [...'[]",abc12truenl'].map((c) => c.charCodeAt(0));
    for (let r = 0; r < 20; r++) {
      const listed = values.filter(() => rand() < 0.6);
      if (listed.length === 0) continue;
      const minItems = Math.floor(rand() * (listed.length + 1));
      const g = schema({ type: 'array', items: { enum: listed }, uniqueItems: true, minItems });
      const m = new ByteMatcher(g);
      for (let w = 0; w < 30; w++) {
        const text = randomWalk(m, alphabet, rand, JSON.stringify(listed), {
          ends: (mayEnd) => mayEnd,
        }) as string;
        const items = JSON.parse(text) as unknown[];
        expect(new Set(items.map((v) => JSON.stringify(v))).size, text).toBe(items.length);
        expect(items.length, text).toBeGreaterThanOrEqual(minItems);
      }
    }
  });
});

describe('ByteMatcher: annotations beside constraints', () => {
  it("pydantic's tagged union: the discriminator beside its oneOf annotates, the oneOf decides", () => {
    const pet = (tag: string, field: string, type: string) => ({
      properties: {
        pet_type: { const: tag, title: 'Pet Type', type: 'string' },
        [field]: { title: field, type },
      },
      required: ['pet_type', field],
      title: tag,
      type: 'object',
    });
    const g = compileJsonSchema(
      {
        $defs: { Cat: pet('cat', 'meows', 'integer'), Dog: pet('dog', 'barks', 'number') },
        properties: {
          pet: {
            discriminator: { mapping: { cat: '#/$defs/Cat', dog: '#/$defs/Dog' }, propertyName: 'pet_type' },
            oneOf: [{ $ref: '#/$defs/Cat' }, { $ref: '#/$defs/Dog' }],
            title: 'Pet',
          },
        },
        required: ['pet'],
        title: 'Model',
        type: 'object',
      },
      'guided_json',
    );
    expect(accepts(g, '{"pet":{"pet_type":"cat","meows":3}}')).toBe(true);
    expect(accepts(g, '{"pet":{"pet_type":"dog","barks":0.5}}')).toBe(true);
    expect(accepts(g, '{"pet":{"pet_type":"cat","barks":1}}')).toBe(false);
  });

  it("OpenAPI's x- extensions and the content vocabulary change nothing; other unknown keywords are refused", () => {
    const g = compileJsonSchema(
      { type: 'string', maxLength: 2, 'x-order': 1, contentMediaType: 'text/plain' },
      'guided_json',
    );
    expect(accepts(g, '"ab"')).toBe(true);
    expect(accepts(g, '"abc"')).toBe(false);
    expect(() =>
      compileJsonSchema({ type: 'object', patternProperties: { '^a': {} } }, 'guided_json'),
    ).toThrow(/uses the keyword "patternProperties"/);
  });
});

describe('ByteMatcher: propertyNames', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it("a list of names (pydantic's dict[Literal[...], X]): only those keys, with the additionalProperties schema", () => {
    const g = schema({
      type: 'object',
      additionalProperties: { type: 'integer' },
      propertyNames: { enum: ['a', 'b', 3] },
    });
    for (const t of ['{}', '{"a":1}', '{"a":1,"b":2}', '{"b":2}']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['{"c":1}', '{"a":"x"}', '{"3":1}']) expect(accepts(g, t), t).toBe(false);
    // Keys come in the order the names are listed, as listed properties do.
    expect(accepts(g, '{"b":1,"a":2}')).toBe(false);
  });

  it('through a $ref to an enum; listed properties keep their own schema and must be among the names', () => {
    const g = schema({
      type: 'object',
      properties: { a: { type: 'string' }, z: { type: 'integer' } },
      additionalProperties: { type: 'integer' },
      propertyNames: { $ref: '#/$defs/Key' },
      $defs: { Key: { enum: ['a', 'b'] } },
    });
    expect(accepts(g, '{"a":"x","b":2}')).toBe(true);
    expect(accepts(g, '{"z":1}')).toBe(false); // z is not among the names
    expect(() =>
      schema({ type: 'object', properties: { z: {} }, required: ['z'], propertyNames: { enum: ['a'] } }),
    ).toThrow(/requires "z", which "propertyNames" does not allow/);
    expect(
      accepts(
        schema({ type: 'object', additionalProperties: true, propertyNames: { type: 'string' } }),
        '{"q":1}',
      ),
    ).toBe(true);
    expect(() => schema({ type: 'object', propertyNames: { pattern: '^a' } })).toThrow(
      /"propertyNames" other than a list of names/,
    );
  });
});

describe('ByteMatcher: older dialects', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it("draft 7's tuple: a list in items is prefixItems, additionalItems what follows", () => {
    const closed = schema({
      type: 'array',
      items: [{ type: 'integer' }, { type: 'string' }],
      additionalItems: false,
    });
    expect(accepts(closed, '[1,"a"]')).toBe(true);
    for (const t of ['[1,"a",2]', '["a",1]']) expect(accepts(closed, t), t).toBe(false);
    const open = schema({
      type: 'array',
      items: [{ type: 'integer' }],
      additionalItems: { type: 'boolean' },
    });
    expect(accepts(open, '[1,true,false]')).toBe(true);
    expect(accepts(open, '[1,2]')).toBe(false);
    // additionalItems beside a single items schema has no effect, as the drafts say.
    expect(
      accepts(schema({ type: 'array', items: { type: 'integer' }, additionalItems: false }), '[1,2]'),
    ).toBe(true);
    expect(() => schema({ type: 'array', items: [{}], prefixItems: [{}] })).toThrow(/both "prefixItems"/);
  });

  it("OpenAPI 3.0's nullable: the schema's values or null, but no null added to an enum", () => {
    const g = schema({ type: 'string', maxLength: 2, nullable: true });
    for (const t of ['"ab"', 'null']) expect(accepts(g, t), t).toBe(true);
    expect(accepts(g, '"abc"')).toBe(false);
    expect(accepts(schema({ type: 'integer', nullable: false }), 'null')).toBe(false);
    const e = schema({ enum: ['a', 'b'], nullable: true });
    expect(accepts(e, 'null')).toBe(false);
    expect(accepts(schema({ enum: ['a', null], nullable: true }), 'null')).toBe(true);
    expect(
      accepts(schema({ $ref: '#/$defs/N', nullable: true, $defs: { N: { type: 'integer' } } }), 'null'),
    ).toBe(true);
    expect(() => schema({ type: 'string', nullable: 'yes' })).toThrow(/"nullable" that is not true or false/);
  });
});

describe('ByteMatcher: string patterns', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');

  it('anchored: the value matches whole; a quote closes the string only on a match', () => {
    const g = schema({ type: 'string', pattern: '^[a-z]+-\\d{2}$' });
    expect(accepts(g, '"ab-12"')).toBe(true);
    for (const t of ['"ab-123"', '"Ab-12"', '"ab12"']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '"ab-1"').taken).toBe(5);
    expect(run(g, '"A').taken).toBe(1);
  });

  it('unanchored, as JSON Schema has it: the pattern may match anywhere in the value', () => {
    const g = schema({ type: 'string', pattern: 'cat' });
    for (const t of ['"cat"', '"concatenate"', '"a cat!"']) expect(accepts(g, t), t).toBe(true);
    expect(run(g, '"dog"').taken).toBe(4);
    const m = new ByteMatcher(g);
    // No shortcut that lets any plain token through: the content is constrained.
    expect(m.stringRoom(m.feed(m.start(), 0x22))).toBeNull();
  });

  it("reads the value's characters after JSON's escapes, and its UTF-8", () => {
    expect(accepts(schema({ type: 'string', pattern: '^a\nb$' }), '"a\\nb"')).toBe(true);
    expect(accepts(schema({ type: 'string', pattern: '^a.b$' }), '"a\\nb"')).toBe(false);
    const e = schema({ type: 'string', pattern: '^é+$' });
    expect(accepts(e, '"\\u00e9é"')).toBe(true);
    expect(accepts(e, '"\\u00e8"')).toBe(false);
    expect(run(e, '"\\u00e8').taken).toBe(6); // \u00e_ can still be é; \u00e8 cannot
    // \u escapes stay below U+1000: the character is written as UTF-8 instead.
    const any = schema({ type: 'string', pattern: '.' });
    expect(run(any, '"\\u1').taken).toBe(3);
    expect(accepts(any, '"\u1234"')).toBe(true);
    expect(accepts(schema({ type: 'string', pattern: '^x', maxLength: 3 }), '"xyz"')).toBe(true);
    expect(accepts(schema({ type: 'string', pattern: '^x', maxLength: 3 }), '"xyzw"')).toBe(false);
  });

  it('a pattern and length bounds together: the string is led only where both can still hold', () => {
    const g = schema({ type: 'string', pattern: '^(ab|c)+$', minLength: 3, maxLength: 4 });
    for (const t of ['"abc"', '"cab"', '"ccc"', '"abab"', '"cccc"']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['"ab"', '"ccccc"', '"ababc"']) expect(accepts(g, t), t).toBe(false);
    expect(run(g, '"ababc').taken).toBe(5); // a fifth character would pass maxLength
    expect(run(g, '"ccca').taken).toBe(4); // "ccca" needs a "b": five characters
    // A pattern whose matches are all too long: the string cannot start.
    expect(run(schema({ type: 'string', pattern: '^a{5,}$', maxLength: 4 }), '"').taken).toBe(0);
    expect(run(schema({ type: 'string', pattern: '^x?$', minLength: 2 }), '"').taken).toBe(0);
  });

  it('refuses a pattern it cannot follow exactly, naming it', () => {
    expect(() => schema({ type: 'string', pattern: '(?<=a)b' })).toThrow(
      /"pattern" "\(\?<=a\)b", which Loom cannot follow/,
    );
    expect(() => schema({ type: 'string', pattern: 3 })).toThrow(/"pattern" that is not a string/);
    expect(() => schema({ type: 'string', pattern: 'a$b' })).toThrow(/no text matches it/);
  });
});

describe('ByteMatcher: string formats (xgrammar follows them too)', () => {
  const schema = (s: Record<string, unknown>) => compileJsonSchema(s, 'guided_json');
  /** Independent judges: Node's own parsers where it has one, the RFC's shape otherwise. */
  const VALID: Record<string, (v: string) => boolean> = {
    date: (v) => /^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`)),
    'date-time': (v) => /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v.replace(':60', ':59'))),
    uuid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
    ipv4: (v) => isIPv4(v),
    ipv6: (v) => isIPv6(v),
    uri: (v) => URL.canParse(v),
    email: (v) => /^[^@\s]+@[^@\s]+$/.test(v) && !v.startsWith('.') && !v.includes('..'),
  };

  it('each format takes its values and refuses others, byte by byte', () => {
    const cases: Array<[string, string[], string[]]> = [
      ['date', ['2024-02-29'], ['2024-13-01', '24-01-01', '2024-01-1']],
      ['time', ['23:59:60Z', '10:00:00.5+05:30'], ['10:00:00', '24:00:00Z']],
      ['date-time', ['2024-02-29T10:00:00Z'], ['2024-02-29 10:00:00Z']],
      ['duration', ['P1Y2M3DT4H5M6S', 'PT5M', 'P3W'], ['P', 'PT', 'P1Y2D']],
      ['uuid', ['123e4567-e89b-12d3-a456-426614174000'], ['123e4567e89b12d3a456426614174000']],
      ['ipv4', ['192.168.0.1'], ['256.1.1.1', '01.1.1.1']],
      ['ipv6', ['::1', '2001:db8::8a2e:370:7334', '::ffff:192.0.2.128'], ['1::2::3', '1:2:3:4:5:6:7:8:9']],
      ['hostname', ['example.com'], ['-a.com', 'a..b']],
      ['email', ['a.b+c@example.com'], ['a@@b.com', '.a@b.com']],
      ['uri', ['https://user@example.com:8080/a?b=c#d', 'urn:isbn:0451450523'], ['1http://a', 'a:b#c#d']],
    ];
    for (const [format, good, bad] of cases) {
      const g = schema({ type: 'string', format });
      for (const v of good) expect(accepts(g, JSON.stringify(v)), `${format} ${v}`).toBe(true);
      for (const v of bad) expect(accepts(g, JSON.stringify(v)), `${format} ${v}`).toBe(false);
    }
    // Unknown formats stay annotations.
    expect(accepts(schema({ type: 'string', format: 'color' }), '"anything"')).toBe(true);
    expect(() => schema({ type: 'string', format: 'date', pattern: '^2' })).toThrow(
      /both "format" and "pattern"/,
    );
  });

  it('random walks inside each format end only on values Node’s own parsers accept', () => {
    const rand = mulberry32(11);
    const alphabet = Array.from({ length: 95 }, (_, i) => 32 + i);
    for (const [format, valid] of Object.entries(VALID)) {
      const m = new ByteMatcher(schema({ type: 'string', format }));
      let ended = 0;
      for (let walk = 0; walk < 60; walk++) {
        const text = randomWalk(m, alphabet, rand, format, {
          ends: (mayEnd, next) => next.length === 0 || (mayEnd && rand() < 0.3),
          maxLength: 79,
        });
        if (text === null) continue;
        ended++;
        const value = JSON.parse(text) as string;
        expect(valid(value), `${format}: ${value}`).toBe(true);
      }
      expect(ended, format).toBeGreaterThan(5);
    }
  });
});

describe('ByteMatcher: choices', () => {
  it('accepts exactly one of them, nothing around it', () => {
    const g = choiceGrammar(['yes', 'no', 'yes!'], 'guided_choice');
    expect(accepts(g, 'yes')).toBe(true);
    expect(accepts(g, 'yes!')).toBe(true);
    expect(accepts(g, 'no')).toBe(true);
    expect(accepts(g, ' no')).toBe(false);
    expect(accepts(g, 'ye')).toBe(false);
    expect(accepts(g, 'nos')).toBe(false);
    expect(run(g, 'ns').taken).toBe(1);
  });
});

describe('ByteMatcher: a regular expression (guided_regex)', () => {
  it('takes text as it grows while it can still fully match, and ends only on a full match', () => {
    const g = regexGrammar('[a-c]{2}\\d+(x|yz)?é*', 'guided_regex');
    for (const text of ['ab1', 'cc42x', 'ba7yz', 'aa0éé', 'ab12yzé'])
      expect(accepts(g, text), text).toBe(true);
    expect(run(g, 'ab').canEnd).toBe(false);
    expect(run(g, 'ab1y').canEnd).toBe(false);
    expect(run(g, 'ad1').taken).toBe(1);
    expect(run(g, 'ab1xx').taken).toBe(4);
    expect(run(g, 'ab1e').taken).toBe(3);
    // Characters are code points, as Python's re reads them; a UTF-8 lead byte is taken only if
    // a character it can start continues the match.
    expect(() => regexGrammar('😀?x', 'guided_regex')).toThrow(/U\+FFFF/);
    expect(accepts(regexGrammar('a.b', 'guided_regex'), 'a😀b')).toBe(true);
    expect(run(regexGrammar('a[a-z]', 'guided_regex'), 'aé').taken).toBe(1);
  });

  it('refuses a pattern it cannot follow exactly, naming the field', () => {
    expect(() => regexGrammar('(?=a)b', 'guided_regex')).toThrow(/guided_regex/);
    expect(() => regexGrammar('a++', 'guided_regex')).toThrow(/possessive/);
  });
});

describe('ByteMatcher: a GBNF grammar (guided_grammar)', () => {
  const grammar = (text: string) => ebnfGrammar(text, 'guided_grammar');

  it('derives from root: strings, classes, repeats, groups, rules and recursion', () => {
    const g = grammar(`
      # a tiny arithmetic language
      root   ::= expr ("; " expr)*
      expr   ::= term (("+" | "-") term)*
      term   ::= num | "(" expr ")"
      num    ::= [1-9] [0-9]{0,2} | "0"
    `);
    for (const t of ['1', '12+3', '(1-(2+30))', '0; 999-(0)']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['', '01', '1000', '(1', '1+', '1;2', '+1'])
      expect(accepts(g, t), JSON.stringify(t)).toBe(false);
    expect(run(g, '1000').taken).toBe(3);
    expect(run(g, '(1').canEnd).toBe(false);
  });

  it('reads characters as code points over UTF-8, negated classes and any character', () => {
    const g = grammar(`root ::= "«" [^»\\n]+ "»" .?`);
    expect(accepts(g, '«héllo wörld»')).toBe(true);
    expect(accepts(g, '«a»é')).toBe(true);
    expect(accepts(g, '«»')).toBe(false);
    expect(accepts(g, '«a\nb»')).toBe(false);
    const bytes = new TextEncoder().encode('«a»»');
    expect(run(g, bytes).canEnd).toBe(true); // "." takes the second »
    // A lead byte is taken only if a character it can start is in the class.
    const ascii = grammar(`root ::= [a-z]+`);
    expect(run(ascii, new Uint8Array([0x61, 0xc3])).taken).toBe(1);
  });

  it('multi-line bodies, both quotes, escapes and empty alternatives', () => {
    const g = grammar(`root ::= greeting
      | 'bye' "\\x21"?
    greeting ::= "hi" name
    name ::= ( " " [A-Z] [a-z]* )?`);
    for (const t of ['hi', 'hi Bob', 'bye', 'bye!']) expect(accepts(g, t), t).toBe(true);
    for (const t of ['hi bob', 'bye!!']) expect(accepts(g, t), t).toBe(false);
  });

  it('refuses what it cannot follow, naming the field', () => {
    for (const [text, reason] of [
      ['expr ::= "a"', /no rule "root"/],
      ['root ::= a\na ::= a "x" | "y"', /"a" is left-recursive/],
      ['root ::= b\nb ::= c\nc ::= b? "x" | root', /left-recursive/],
      ['root ::= loop\nloop ::= "a" loop', /"loop" can never end/],
      ['root ::= missing', /"missing" .* is not defined/],
      ['root ::= "a"\nroot ::= "b"', /defined twice/],
      ['root ::= "a', /not closed/],
      ['root ::= (= "a") "a"', /lookahead/],
      ['root ::= "a"{3,1}', /maximum below its minimum/],
      ['root ::= ', /empty body/],
      ['root ::= "\\d"', /unknown escape/],
    ] as const) {
      expect(() => grammar(text), text).toThrow(GuideError);
      expect(() => grammar(text), text).toThrow(reason);
    }
  });
});
