import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../../model/tokenizer.js';
import { mulberry32 } from '../../scheduler/prng.js';
import { choiceGrammar, jsonObjectGrammar, regexGrammar } from '../../structured/grammar-nodes.js';
import { compileJsonSchema } from '../../structured/json-schema.js';
import { tokenGuide } from '../../structured/request-guide.js';
import { llama2StyleTokenizerJson, llama3StyleTokenizer } from '../model/tokenizer-fixtures.js';

/**
 * Structured output over real tokenizer shapes: the bytes each token adds (model/token-bytes.ts)
 * are what the tokenizer's own decode writes, and random walks through a grammar's masks decode
 * to text the grammar accepts, multi-byte characters split over byte-fallback tokens included.
 */
const PIECES = [
  '{"',
  '":',
  '",',
  '"}',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"',
  'true',
  'fal',
  'se',
  'null',
  ' ',
  '\n',
  'na',
  'me',
  'name',
  '12',
  '3.',
  'e-',
  'é',
  'yes',
  'no',
  '▁yes',
  'blue',
  '▁sky',
];
const TOKENIZERS = {
  'Llama 2 (SentencePiece, byte fallback)': new TextTokenizer({
    tokenizerJson: llama2StyleTokenizerJson(PIECES.map((p) => p.replaceAll(' ', '▁'))),
  }),
  'Llama 3 (byte-level BPE)': new TextTokenizer({ tokenizerJson: llama3StyleTokenizer(PIECES).json }),
};
const EOS = 2;

const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

describe.each(Object.entries(TOKENIZERS))('structured output over a %s vocabulary', (_, tokenizer) => {
  const bytes = tokenizer.tokenBytes();

  it("each token's bytes are what decode writes for it, special tokens none", () => {
    const text = 'Hello world {"name": "é😀", "n": [1, 2.5e-3]}';
    const ids = tokenizer.encode(text, false);
    const decoded = new TextDecoder().decode(concat(ids.map((id) => bytes[id] as Uint8Array)));
    // SentencePiece's decoder strips the space its normalizer put in front.
    expect([decoded, decoded.replace(/^ /, '')]).toContain(tokenizer.decode(ids));
    const specials = bytes.flatMap((b, id) => (b === null ? [id] : []));
    expect(specials.length).toBeGreaterThan(0);
    for (const id of specials) expect(tokenizer.decode([id], false)).toMatch(/^<.*>$/);
  });

  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 6 },
      ok: { type: 'boolean' },
      n: { type: 'array', items: { type: 'number' }, maxItems: 3 },
    },
    required: ['name', 'ok'],
  };
  const cases = [
    [
      'a JSON Schema',
      () => compileJsonSchema(schema, 'guided_json'),
      (v: Record<string, unknown>) => {
        expect(Object.keys(v).slice(0, 2)).toEqual(['name', 'ok']);
        expect([...(v.name as string)].length, JSON.stringify(v.name)).toBeLessThanOrEqual(6);
        expect(typeof v.ok).toBe('boolean');
      },
    ],
    [
      'a JSON Schema with a pattern and numeric bounds',
      () =>
        compileJsonSchema(
          {
            type: 'object',
            properties: {
              code: { type: 'string', pattern: '^[A-Z]{2}-\\d$' },
              level: { type: 'integer', minimum: -3, maximum: 12 },
              ratio: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
            },
            required: ['code', 'level'],
          },
          'guided_json',
        ),
      (v: Record<string, unknown>) => {
        expect(v.code).toMatch(/^[A-Z]{2}-\d$/);
        expect(Number.isInteger(v.level) && (v.level as number) >= -3 && (v.level as number) <= 12).toBe(
          true,
        );
        if ('ratio' in v)
          expect((v.ratio as number) >= 0 && (v.ratio as number) < 1, String(v.ratio)).toBe(true);
      },
    ],
    ['json_object', jsonObjectGrammar, (v: unknown) => expect(typeof v).toBe('object')],
  ] as const;

  it.each(cases)('random walks through %s masks decode to documents it accepts', (_, grammar, check) => {
    const guide = tokenGuide(tokenizer, grammar());
    let complete = 0;
    for (let walk = 0; walk < 40; walk++) {
      const rand = mulberry32(walk + 1);
      const state = guide.start();
      const ids: number[] = [];
      for (let step = 0; step < 60; step++) {
        const allowed = state.allowedTokens([EOS]);
        expect(allowed.length).toBeGreaterThan(0);
        // Favour the end and short tokens, so walks finish.
        const next =
          allowed.includes(EOS) && rand() < 0.5 ? EOS : allowed[Math.floor(rand() * allowed.length)];
        if (next === EOS) break;
        ids.push(next);
        state.advance(next);
        expect(state.isDead).toBe(false);
        // A mask from the shared cache is the one a guide with no cache computes for the same state.
        const fresh = tokenGuide(tokenizer, grammar()).start();
        for (const id of ids) fresh.advance(id);
        expect([...fresh.allowedTokens([EOS])].sort()).toEqual([...state.allowedTokens([EOS])].sort());
      }
      const text = new TextDecoder().decode(concat(ids.map((id) => bytes[id] as Uint8Array)));
      if (!state.allowedTokens([EOS]).includes(EOS)) continue;
      complete++;
      check(JSON.parse(text));
    }
    expect(complete).toBeGreaterThan(5);
  });

  it('unique items, multipleOf and a key count through the masks: every finished document keeps them', () => {
    const grammar = compileJsonSchema(
      {
        type: 'object',
        properties: {
          tags: { type: 'array', items: { type: 'string' }, uniqueItems: true, maxItems: 4 },
          colors: { type: 'array', items: { enum: ['red', 'blue'] }, uniqueItems: true },
          step: { type: 'integer', multipleOf: 5, minimum: -20, maximum: 40 },
        },
        required: ['tags'],
        maxProperties: 2,
      },
      'guided_json',
    );
    const guide = tokenGuide(tokenizer, grammar);
    const structural = (id: number) => /["\],]/.test(new TextDecoder().decode(bytes[id] as Uint8Array));
    let complete = 0;
    for (let walk = 0; walk < 40; walk++) {
      const rand = mulberry32(100 + walk);
      const state = guide.start();
      const ids: number[] = [];
      for (let step = 0; step < 80; step++) {
        const allowed = [...state.allowedTokens([EOS])];
        expect(allowed.length).toBeGreaterThan(0);
        if (allowed.includes(EOS)) break;
        // Lean toward quotes, commas and brackets, so strings and arrays close and walks finish.
        const leaning = allowed.filter(structural);
        const pool = leaning.length > 0 && rand() < 0.6 ? leaning : allowed;
        const next = pool[Math.floor(rand() * pool.length)];
        ids.push(next);
        state.advance(next);
        expect(state.isDead).toBe(false);
      }
      if (!state.allowedTokens([EOS]).includes(EOS)) continue;
      complete++;
      const text = new TextDecoder().decode(concat(ids.map((id) => bytes[id] as Uint8Array)));
      const v = JSON.parse(text) as { tags: string[]; colors?: string[]; step?: number };
      expect(Object.keys(v).length, text).toBeLessThanOrEqual(2);
      expect(new Set(v.tags).size, text).toBe(v.tags.length);
      if (v.colors) expect(new Set(v.colors).size, text).toBe(v.colors.length);
      if (v.step !== undefined) expect(v.step % 5 === 0 && v.step >= -20 && v.step <= 40, text).toBe(true);
    }
    expect(complete).toBeGreaterThan(10);
  });

  it('a regex: walks that end decode to full matches, characters split over tokens included', () => {
    const pattern = '(yes|no|é+) ?[0-9]{1,3}';
    const guide = tokenGuide(tokenizer, regexGrammar(pattern, 'guided_regex'));
    let ended = 0;
    for (let walk = 0; walk < 40; walk++) {
      const rand = mulberry32(walk + 100);
      const state = guide.start();
      const ids: number[] = [];
      for (let step = 0; step < 30; step++) {
        const allowed = state.allowedTokens([EOS]);
        const next =
          allowed.includes(EOS) && rand() < 0.4 ? EOS : allowed[Math.floor(rand() * allowed.length)];
        if (next === EOS) {
          ended++;
          const text = new TextDecoder().decode(concat(ids.map((id) => bytes[id] as Uint8Array)));
          expect(text).toMatch(new RegExp(`^(?:${pattern})$`, 'u'));
          break;
        }
        ids.push(next);
        state.advance(next);
        expect(state.isDead).toBe(false);
      }
    }
    expect(ended).toBeGreaterThan(10);
  });

  it('a choice list: the masks spell exactly the choices', () => {
    const guide = tokenGuide(tokenizer, choiceGrammar(['yes', 'no', 'blue sky'], 'guided_choice'));
    const seen = new Set<string>();
    for (let walk = 0; walk < 30; walk++) {
      const rand = mulberry32(walk);
      const state = guide.start();
      const ids: number[] = [];
      for (;;) {
        const allowed = state.allowedTokens([EOS]);
        const next = allowed[Math.floor(rand() * allowed.length)];
        if (next === EOS) break;
        ids.push(next);
        state.advance(next);
      }
      seen.add(new TextDecoder().decode(concat(ids.map((id) => bytes[id] as Uint8Array))));
    }
    expect([...seen].sort()).toEqual(['blue sky', 'no', 'yes']);
  });
});
