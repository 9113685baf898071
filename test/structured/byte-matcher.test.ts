import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { ByteMatcher, MAX_WHITESPACE_RUN } from '../../structured/byte-matcher.js';
import {
  choiceGrammar,
  type Grammar,
  jsonObjectGrammar,
  regexGrammar,
} from '../../structured/grammar-nodes.js';
import { compileJsonSchema } from '../../structured/json-schema.js';

/** Bytes of `text` the matcher takes before it refuses one, and whether it may end after all of them. */
function run(grammar: Grammar, text: string | Uint8Array): { taken: number; canEnd: boolean } {
  const m = new ByteMatcher(grammar);
  let states = m.start();
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  for (let i = 0; i < bytes.length; i++) {
    states = m.feed(states, bytes[i]);
    if (states.length === 0) return { taken: i, canEnd: false };
  }
  return { taken: bytes.length, canEnd: m.canEnd(states) };
}
const accepts = (g: Grammar, text: string) => {
  const r = run(g, text);
  return r.taken === new TextEncoder().encode(text).length && r.canEnd;
};

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
    expect(() => compileJsonSchema({ type: 'string', pattern: '^a' }, 'guided_json')).toThrow(/"pattern"/);
    expect(() => compileJsonSchema({ type: 'integer', minimum: 0 }, 'guided_json')).toThrow(/"minimum"/);
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
