import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * Structured output over HTTP on the real stack (onnx engine, the tiny model's byte-level BPE
 * vocabulary): whatever the model would write, each choice comes out as text the request's
 * grammar accepts, and ends (EOS) only where the grammar is complete. Grammars whose language is
 * finite end within max_tokens, so their outputs are checked whole.
 */
const server = useTinyServer('onnx');

const SCHEMA = {
  type: 'object',
  properties: {
    answer: { enum: ['yes', 'no', 'maybe'] },
    sure: { type: 'boolean' },
    note: { type: ['null', 'boolean'] },
    pair: { type: 'array', prefixItems: [{ const: 1 }, { enum: ['a', 'b'] }], items: false, minItems: 2 },
  },
  required: ['answer', 'sure', 'pair'],
  additionalProperties: false,
};

function expectFollowsSchema(text: string): void {
  const value = JSON.parse(text);
  expect(Object.keys(value).filter((k) => k !== 'note')).toEqual(['answer', 'sure', 'pair']);
  expect(['yes', 'no', 'maybe']).toContain(value.answer);
  expect(typeof value.sure).toBe('boolean');
  if ('note' in value) expect([null, true, false]).toContain(value.note);
  expect(value.pair[0]).toBe(1);
  expect(['a', 'b']).toContain(value.pair[1]);
}

/** A hot sampled completion asked for JSON, with `extra`'s structured output. */
const sampledJson = (seed: number, extra: object) =>
  server().post('/v1/completions', {
    model: TINY_MODEL_NAME,
    prompt: 'Answer in JSON:',
    max_tokens: 200,
    temperature: 1.3,
    seed,
    ...extra,
  });

describe('structured output over HTTP', () => {
  it('structured_outputs.disable_any_whitespace: JSON written as json.dumps writes it', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const res = await sampledJson(seed, {
        structured_outputs: { json: SCHEMA, disable_any_whitespace: true },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      expect(choice.finish_reason, choice.text).toBe('stop');
      expectFollowsSchema(choice.text);
      // The schema's strings are enum values without spaces: any other space is whitespace.
      expect(choice.text.replaceAll(', ', ',').replaceAll(': ', ':')).not.toMatch(/\s/);
      expect(choice.text).not.toMatch(/[,:](?! )/);
    }
  });

  it('response_format json_schema: every sampled choice is a document of the schema, ended by EOS', async () => {
    for (const seed of [1, 2, 3]) {
      const res = await sampledJson(seed, {
        n: 3,
        response_format: {
          type: 'json_schema',
          json_schema: { name: 'answer', schema: SCHEMA, strict: true },
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const choice of res.body.choices) {
        expect(choice.finish_reason, choice.text).toBe('stop');
        expectFollowsSchema(choice.text);
      }
    }
  });

  it('the same fields as guided_json (a schema or its text) and structured_outputs.json, streamed too', async () => {
    const texts: string[] = [];
    for (const extra of [
      { guided_json: SCHEMA },
      { guided_json: JSON.stringify(SCHEMA) },
      { structured_outputs: { json: SCHEMA } },
    ]) {
      const res = await server().post('/v1/chat/completions', {
        model: TINY_MODEL_NAME,
        messages: [{ role: 'user', content: 'Answer in JSON.' }],
        max_tokens: 200,
        temperature: 1,
        seed: 5,
        ...extra,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      texts.push(res.body.choices[0].message.content);
    }
    expect(new Set(texts).size).toBe(1);
    expectFollowsSchema(texts[0]);
    const stream = await server().client.chat.completions.create({
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'Answer in JSON.' }],
      max_tokens: 200,
      temperature: 1,
      seed: 5,
      guided_json: SCHEMA,
      stream: true,
    } as never);
    let streamed = '';
    for await (const chunk of stream as unknown as AsyncIterable<{
      choices: Array<{ delta: { content?: string } }>;
    }>)
      streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(texts[0]);
  });

  it('numeric bounds, multipleOf, enums, string patterns and formats: every sampled value follows them', async () => {
    const schema = {
      type: 'object',
      properties: {
        n: { type: 'integer', minimum: 3, maximum: 7 },
        m: { type: 'integer', minimum: -20, exclusiveMaximum: -9 },
        price: { type: 'number', minimum: 0, maximum: 50, multipleOf: 0.25 },
        size: { type: 'integer', enum: [1, 2, 40, 80], maximum: 50 },
        code: { type: 'string', pattern: '^[a-c]{2}$' },
        day: { type: 'string', format: 'date' },
      },
      required: ['n', 'm', 'price', 'size', 'code', 'day'],
    };
    for (const seed of [1, 2]) {
      const res = await server().post('/v1/completions', {
        model: TINY_MODEL_NAME,
        prompt: 'Two numbers in JSON:',
        max_tokens: 200,
        temperature: 1.5,
        seed,
        n: 3,
        guided_json: schema,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const choice of res.body.choices) {
        expect(choice.finish_reason, choice.text).toBe('stop');
        const { n, m, price, size, code, day } = JSON.parse(choice.text);
        expect(Number.isInteger(n) && n >= 3 && n <= 7, choice.text).toBe(true);
        expect(Number.isInteger(m) && m >= -20 && m < -9, choice.text).toBe(true);
        // Quarters are exact in binary, so a double check of the multiple is exact here.
        expect(price >= 0 && price <= 50 && Number.isInteger(price * 4), choice.text).toBe(true);
        expect([1, 2, 40], choice.text).toContain(size);
        expect(code).toMatch(/^[a-c]{2}$/);
        expect(day).toMatch(/^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
      }
    }
  });

  it('guided_grammar and structured_outputs.grammar: the output is derived by the GBNF grammar', async () => {
    const grammar = `
      root ::= call ("; " call){0,2}
      call ::= name "(" (arg ("," arg)?)? ")"
      name ::= "add" | "mul" | "neg"
      arg  ::= [0-9] | call
    `;
    // The same language as a JavaScript regex, nesting unrolled two levels deep.
    const arg0 = '[0-9]';
    const call = (inner: string) => `(?:add|mul|neg)\\((?:${inner}(?:,${inner})?)?\\)`;
    const arg1 = `(?:[0-9]|${call(arg0)})`;
    const arg2 = `(?:[0-9]|${call(arg1)})`;
    const language = new RegExp(`^${call(arg2)}(?:; ${call(arg2)}){0,2}$`);
    const ended: string[] = [];
    for (const [seed, extra] of [
      [1, { guided_grammar: grammar }],
      [2, { guided_grammar: grammar }],
      [3, { structured_outputs: { grammar } }],
    ] as const) {
      const res = await server().post('/v1/completions', {
        model: TINY_MODEL_NAME,
        prompt: 'Call:',
        max_tokens: 60,
        temperature: 1.2,
        seed,
        n: 3,
        ...extra,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const choice of res.body.choices) {
        if (choice.finish_reason === 'stop') {
          ended.push(choice.text);
          // Deeper nesting than the regex unrolls is possible, but rare at 60 tokens.
          if (!/\(\w+\(\w+\(\w+\(/.test(choice.text)) expect(choice.text).toMatch(language);
        } else expect(choice.finish_reason).toBe('length');
        expect(choice.text).toMatch(/^(?:add|mul|neg)\(/);
      }
    }
    expect(ended.length).toBeGreaterThan(0);
  });

  it('guided_choice: the output is exactly one of the choices', async () => {
    const choices = ['red', 'green', 'blue sky', 'rose'];
    const seen = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const res = await server().post('/v1/completions', {
        model: TINY_MODEL_NAME,
        prompt: 'Pick a color:',
        max_tokens: 20,
        temperature: 2,
        seed,
        guided_choice: choices,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(choices).toContain(res.body.choices[0].text);
      expect(res.body.choices[0].finish_reason).toBe('stop');
      seen.add(res.body.choices[0].text);
    }
    expect(seen.size).toBeGreaterThan(1);
  });

  it('guided_regex and structured_outputs.regex: the output fully matches the pattern', async () => {
    const pattern = '(yes|no)-[0-9]{2,3}( ok)?';
    for (const extra of [{ guided_regex: pattern }, { structured_outputs: { regex: pattern } }]) {
      for (const seed of [1, 2, 3]) {
        const res = await server().post('/v1/completions', {
          model: TINY_MODEL_NAME,
          prompt: 'Say:',
          max_tokens: 30,
          temperature: 1.5,
          seed,
          ...extra,
        });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const { text, finish_reason } = res.body.choices[0];
        expect(finish_reason).toBe('stop');
        expect(text).toMatch(new RegExp(`^(?:${pattern})$`));
      }
    }
  });

  it('response_format json_object: the output so far is always a prefix of a JSON object', async () => {
    const res = await server().post('/v1/completions', {
      model: TINY_MODEL_NAME,
      prompt: 'JSON:',
      max_tokens: 40,
      temperature: 1,
      seed: 4,
      response_format: { type: 'json_object' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { text, finish_reason } = res.body.choices[0];
    expect(text.trimStart().startsWith('{')).toBe(true);
    if (finish_reason === 'stop') expect(typeof JSON.parse(text)).toBe('object');
    else expect(finish_reason).toBe('length');
  });

  it('what cannot be followed is a 400 that names the field, and the server keeps serving', async () => {
    const cases: Array<[object, string, RegExp]> = [
      [
        {
          response_format: {
            type: 'json_schema',
            json_schema: { name: 'x', schema: { type: 'string', pattern: '(?<=a)b' } },
          },
        },
        'response_format',
        /"pattern"/,
      ],
      [
        { response_format: { type: 'json_schema', json_schema: { name: 'x' } } },
        'response_format',
        /schema is required/,
      ],
      [{ response_format: { type: 'yaml' } }, 'response_format', /yaml/],
      [{ guided_json: '{not json' }, 'guided_json', /not JSON/],
      [{ guided_choice: [] }, 'guided_choice', /at least one/],
      [{ guided_regex: '(?=a)b' }, 'guided_regex', /regular expression/],
      [{ guided_grammar: 'root ::= x\nx ::= x "a" | "b"' }, 'guided_grammar', /left-recursive/],
      [{ structured_outputs: { grammar: 'start ::= "a"' } }, 'structured_outputs', /no rule "root"/],
      [
        { structured_outputs: { structural_tag: '{}' } },
        'structured_outputs',
        /type must be "structural_tag"/,
      ],
      [
        { structured_outputs: { structural_tag: '{"structures"' } },
        'structured_outputs',
        /structural_tag is a string that is not JSON/,
      ],
      [
        { response_format: { type: 'structural_tag', format: { type: 'token', token: '<|none|>' } } },
        'response_format',
        /format\.token \("<\|none\|>"\) is not the text of any token/,
      ],
      [
        { response_format: { type: 'json_object', triggers: ['<'] } },
        'response_format',
        /triggers is only allowed with type "structural_tag"/,
      ],
      [{ structured_outputs: { disable_any_whitespace: true } }, 'structured_outputs', /asks for none/],
      [
        { structured_outputs: { choice: ['a', 'b'], disable_any_whitespace: true } },
        'structured_outputs',
        /shapes JSON only/,
      ],
      [{ guided_choice: ['a'], response_format: { type: 'json_object' } }, 'guided_choice', /Only one kind/],
      [{ guided_json: { $ref: 'https://example.com/s.json' } }, 'guided_json', /not local/],
      [{ guided_json: { type: 'integer', multipleOf: 0 } }, 'guided_json', /"multipleOf" 0/],
      [{ guided_json: { not: { type: 'string' } } }, 'guided_json', /"not"/],
      [{ guided_json: { type: 'object', minProperties: 1 } }, 'guided_json', /allows no object/],
      [{ guided_json: { type: 'integer', minimum: 5, maximum: 4 } }, 'guided_json', /allows no integer/],
    ];
    for (const [extra, param, message] of cases) {
      const res = await server().post('/v1/completions', {
        model: TINY_MODEL_NAME,
        prompt: 'x',
        max_tokens: 4,
        ...extra,
      });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(res.body.error.param, JSON.stringify(extra)).toBe(param);
      expect(res.body.error.message).toMatch(message);
    }
    const ok = await server().post('/v1/completions', {
      model: TINY_MODEL_NAME,
      prompt: 'x',
      max_tokens: 2,
      response_format: { type: 'text' },
    });
    expect(ok.status).toBe(200);
  });

  it('a structural tag: free text, and after each trigger its structure (both shapes, sampled hot)', async () => {
    // "(" opens an integer closed by ")": every "(" the model writes must be one.
    const legacy = JSON.stringify({
      structures: [{ begin: '(', schema: { type: 'integer', minimum: 0, maximum: 99 }, end: ')' }],
      triggers: ['('],
    });
    let opened = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const res = await sampledJson(seed, { max_tokens: 60, structured_outputs: { structural_tag: legacy } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      const parts = choice.text.split('(').slice(1);
      parts.forEach((part: string, i: number) => {
        const complete = i < parts.length - 1 || choice.finish_reason === 'stop';
        if (complete) expect(part, choice.text).toMatch(/^\s*(\d|[1-9]\d)\)/);
        else expect(part, choice.text).toMatch(/^\s*\d{0,2}\)?/);
      });
      opened += parts.length;
    }
    // Exactly one tag, nothing around it: the output is `<a>` + a document of the schema + `</a>`.
    for (const seed of [1, 2, 3]) {
      const res = await sampledJson(seed, {
        response_format: {
          type: 'structural_tag',
          format: {
            type: 'triggered_tags',
            triggers: ['<'],
            tags: [
              {
                type: 'tag',
                begin: '<a>',
                content: { type: 'json_schema', json_schema: SCHEMA },
                end: '</a>',
              },
            ],
            at_least_one: true,
            stop_after_first: true,
          },
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      expect(choice.finish_reason, choice.text).toBe('stop');
      const m = /^<a>([\s\S]*)<\/a>$/.exec(choice.text);
      expect(m, choice.text).not.toBeNull();
      expectFollowsSchema(m![1]);
    }
    // Seeded: the model does write "(" (3 times over these seeds), so the check above ran.
    expect(opened).toBeGreaterThan(0);
  });

  it('a structural tag with token-level formats: a special token written as that token, any tokens up to the end token', async () => {
    // <unk> (id 0) stands for a model's control tokens: the tag opens with it and ends with it.
    const format = {
      type: 'tag',
      begin: { type: 'token', token: '<unk>' },
      content: {
        type: 'sequence',
        elements: [
          { type: 'const_string', value: 'ok:' },
          { type: 'any_tokens', max_tokens: 5 },
        ],
      },
      end: { type: 'token', token: 0 },
    };
    for (const seed of [1, 2, 3]) {
      const res = await sampledJson(seed, {
        response_format: { type: 'structural_tag', format },
        skip_special_tokens: false,
        return_token_ids: true,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      expect(choice.finish_reason, choice.text).toBe('stop');
      const ids: number[] = choice.token_ids;
      expect(ids[0]).toBe(0);
      // The end token once, last before EOS (the any_tokens between never take it), and 1–5 tokens after "ok:".
      const end = ids.indexOf(0, 1);
      expect(end, JSON.stringify(ids)).toBe(ids.length - 2);
      expect(choice.text.startsWith('<unk>ok:'), choice.text).toBe(true);
      expect(choice.text.endsWith('<unk>'), choice.text).toBe(true);
    }
  });
});
