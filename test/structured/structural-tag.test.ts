import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { ByteMatcher } from '../../structured/byte-matcher.js';
import { GuideError } from '../../structured/grammar-nodes.js';
import { structuralTagGrammar } from '../../structured/structural-tag.js';
import { accepts, run } from './match-text.js';

const tag = (format: unknown) => structuralTagGrammar({ type: 'structural_tag', format }, 'response_format');
const CITY = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const weather = {
  type: 'tag',
  begin: '<function=get_weather>',
  content: { type: 'json_schema', json_schema: CITY },
  end: '</function>',
};
const time = {
  type: 'tag',
  begin: '<function=get_time>',
  content: { type: 'json_schema', json_schema: { type: 'object', properties: { tz: { type: 'integer' } } } },
  end: '</function>',
};

describe('structural tags: the first shape (structures and triggers)', () => {
  const g = structuralTagGrammar(
    {
      type: 'structural_tag',
      structures: [{ begin: '<function=get_weather>', schema: CITY, end: '</function>' }],
      triggers: ['<function='],
    },
    'response_format',
  );

  it('takes free text, and a structure wherever its trigger appears', () => {
    expect(accepts(g, '')).toBe(true);
    expect(accepts(g, 'Let me look. ')).toBe(true);
    expect(accepts(g, 'Let me look. <function=get_weather>{"city": "Paris"}</function>')).toBe(true);
    expect(
      accepts(
        g,
        '<function=get_weather>{"city": "Paris"}</function> and <function=get_weather>{"city":"Oslo"}</function> done',
      ),
    ).toBe(true);
    // A partial trigger in the text is only text.
    expect(accepts(g, 'a <function b')).toBe(true);
    expect(accepts(g, '<func<function=get_weather>{"city": "x"}</function>')).toBe(true);
  });

  it('holds the text after a trigger to a structure it opens, and the structure to its schema', () => {
    expect(run(g, '<function=get_time>').taken).toBe('<function=get_'.length);
    expect(run(g, '<function=get_weather>{"town": "x"}').taken).toBe('<function=get_weather>{"'.length);
    expect(run(g, '<function=get_weather>{"city": 3}').taken).toBe('<function=get_weather>{"city": '.length);
    expect(run(g, '<function=get_weather>{"city": "x"}<').canEnd).toBe(false);
    expect(accepts(g, '<function=get_weather>{"city": "x"}')).toBe(false);
  });

  it('refuses structures no trigger opens, and fields it does not know', () => {
    const bad = (spec: unknown) => () => structuralTagGrammar(spec, 'response_format');
    expect(bad({ structures: [{ begin: '<a>', schema: {}, end: '</a>' }], triggers: ['<b'] })).toThrow(
      /starts with none of the triggers/,
    );
    expect(
      bad({ structures: [{ begin: '<a>', schema: {}, end: '</a>', extra: 1 }], triggers: ['<a'] }),
    ).toThrow(/structures\[0\]\.extra/);
    expect(bad({ structures: [], triggers: [''] })).toThrow(GuideError);
  });
});

describe('structural tags: formats', () => {
  it('triggered_tags dispatches on the trigger to the tag its begin names', () => {
    const g = tag({ type: 'triggered_tags', triggers: ['<function='], tags: [weather, time] });
    expect(
      accepts(g, 'x <function=get_time>{"tz": 3}</function> y <function=get_weather>{"city": ""}</function>'),
    ).toBe(true);
    expect(accepts(g, '<function=get_time>{"tz": "3"}</function>')).toBe(false);
  });

  it('at_least_one starts with a tag; stop_after_first ends after one', () => {
    const first = tag({
      type: 'triggered_tags',
      triggers: ['<function='],
      tags: [weather, time],
      at_least_one: true,
    });
    expect(accepts(first, '')).toBe(false);
    expect(run(first, 'hi').taken).toBe(0);
    expect(accepts(first, '<function=get_time>{}</function> then text')).toBe(true);
    const once = tag({
      type: 'triggered_tags',
      triggers: ['<function='],
      tags: [weather],
      stop_after_first: true,
    });
    expect(accepts(once, 'text <function=get_weather>{"city": "a"}</function>')).toBe(true);
    expect(run(once, 'text <function=get_weather>{"city": "a"}</function> more').taken).toBe(
      'text <function=get_weather>{"city": "a"}</function>'.length,
    );
    const exactlyOne = tag({
      type: 'triggered_tags',
      triggers: ['<function='],
      tags: [weather, time],
      at_least_one: true,
      stop_after_first: true,
    });
    expect(accepts(exactlyOne, '<function=get_time>{"tz": 1}</function>')).toBe(true);
    expect(
      accepts(exactlyOne, '<function=get_time>{"tz": 1}</function><function=get_time>{}</function>'),
    ).toBe(false);
  });

  it('a tag of any_text stops at its end; excludes keep strings out of free text', () => {
    const think = tag({
      type: 'sequence',
      elements: [
        { type: 'tag', begin: '<think>', content: { type: 'any_text' }, end: '</think>' },
        { type: 'const_string', value: 'Answer: ' },
        { type: 'regex', pattern: '[0-9]+' },
      ],
    });
    expect(accepts(think, '<think>a < b </thin k</think>Answer: 42')).toBe(true);
    // The end comes once: the thinking cannot contain it.
    expect(accepts(think, '<think>a</think>b</think>Answer: 4')).toBe(false);
    expect(accepts(think, '<think></think>Answer: ')).toBe(false);
    const text = tag({ type: 'any_text', excludes: ['STOP', 'TOPS'] });
    expect(accepts(text, 'STO TOP STOPP'.slice(0, 7))).toBe(true);
    expect(run(text, 'a STOP').taken).toBe(5);
    expect(run(text, 'xTOPS').taken).toBe(4);
    expect(accepts(text, 'ST€OP 😀')).toBe(true);
  });

  it('free text anywhere inside a tag stops at its end, as xgrammar detects it up to the nearest tag', () => {
    // Not only the tag's last part: text before a closing line, and text repeated, stop too.
    const before = tag({
      type: 'tag',
      begin: '<a>',
      content: { type: 'sequence', elements: [{ type: 'any_text' }, { type: 'const_string', value: '!' }] },
      end: '</a>',
    });
    expect(accepts(before, '<a>x y!</a>')).toBe(true);
    expect(run(before, '<a>x</a>').taken).toBe('<a>x</a'.length);
    const repeated = tag({
      type: 'tag',
      begin: '<a>',
      content: {
        type: 'star',
        content: { type: 'sequence', elements: [{ type: 'const_string', value: '-' }, { type: 'any_text' }] },
      },
      end: '</a>',
    });
    expect(accepts(repeated, '<a>-x-y</a>')).toBe(true);
    expect(run(repeated, '<a>-x</a>-').taken).toBe('<a>-x</a>'.length);
    // A dispatch's rule inside the tag: its free text stops at the tag's end too; a nested tag
    // has its own end.
    const dispatched = tag({
      type: 'tag',
      begin: '<a>',
      content: {
        type: 'dispatch',
        rules: [
          ['#', { type: 'sequence', elements: [{ type: 'any_text' }, { type: 'const_string', value: ';' }] }],
        ],
        loop: false,
      },
      end: '</a>',
    });
    expect(accepts(dispatched, '<a>x#y;</a>')).toBe(true);
    expect(run(dispatched, '<a>#y</a>').taken).toBe('<a>#y</a'.length);
    const nested = tag({
      type: 'tag',
      begin: '<a>',
      content: { type: 'tag', begin: '<b>', content: { type: 'any_text' }, end: '</b>' },
      end: '</a>',
    });
    expect(accepts(nested, '<a><b>x</a>y</b></a>')).toBe(true);
  });

  it('a regex followed by more text ends where the next part starts', () => {
    const g = tag({
      type: 'sequence',
      elements: [
        { type: 'regex', pattern: 'a*' },
        { type: 'const_string', value: 'ab' },
      ],
    });
    expect(accepts(g, 'ab')).toBe(true);
    expect(accepts(g, 'aaab')).toBe(true);
    expect(accepts(g, 'aaa')).toBe(false);
    const num = tag({
      type: 'sequence',
      elements: [
        { type: 'json_schema', json_schema: { type: 'integer' } },
        { type: 'const_string', value: '!' },
      ],
    });
    expect(accepts(num, '12!')).toBe(true);
    expect(accepts(num, '12')).toBe(false);
    const last = tag({ type: 'json_schema', json_schema: { type: 'number' } });
    expect(accepts(last, '-1.5')).toBe(true);
  });

  it('or, optional, star, plus and repeat', () => {
    const yes = { type: 'const_string', value: 'y' };
    const no = { type: 'const_string', value: 'n' };
    const either = { type: 'or', elements: [yes, no] };
    const g = tag({
      type: 'sequence',
      elements: [
        { type: 'optional', content: { type: 'const_string', value: '>' } },
        { type: 'repeat', min: 2, max: 3, content: either },
        { type: 'star', content: { type: 'const_string', value: '.' } },
        { type: 'plus', content: { type: 'const_string', value: '!' } },
      ],
    });
    for (const ok of ['yn!', '>yyn..!!', 'nn!']) expect(accepts(g, ok), ok).toBe(true);
    for (const bad of ['y!', 'yyyy!', 'yn', '>>yn!']) expect(accepts(g, bad), bad).toBe(false);
    // Loops over a part that can match nothing end (the matcher once recursed without end here).
    const empties = tag({
      type: 'plus',
      content: { type: 'plus', content: { type: 'regex', pattern: 'a*' } },
    });
    for (const text of ['', 'a', 'aaaa']) expect(accepts(empties, text), text).toBe(true);
    expect(accepts(empties, 'ab')).toBe(false);
    const many = tag({ type: 'repeat', min: 1, max: -1, content: yes });
    expect(accepts(many, 'yyyyyy')).toBe(true);
    expect(accepts(many, '')).toBe(false);
  });

  it('tags_with_separator is a list of tags and nothing else', () => {
    const g = tag({ type: 'tags_with_separator', tags: [weather, time], separator: '\n' });
    expect(accepts(g, '')).toBe(true);
    expect(
      accepts(g, '<function=get_time>{}</function>\n<function=get_weather>{"city": "a"}</function>'),
    ).toBe(true);
    expect(accepts(g, 'x<function=get_time>{}</function>')).toBe(false);
    const one = tag({
      type: 'tags_with_separator',
      tags: [time],
      separator: ',',
      at_least_one: true,
      stop_after_first: true,
    });
    expect(accepts(one, '')).toBe(false);
    expect(accepts(one, '<function=get_time>{}</function>')).toBe(true);
    expect(accepts(one, '<function=get_time>{}</function>,<function=get_time>{}</function>')).toBe(false);
  });

  it('dispatch follows a pattern with its format, and the end of an enclosing tag stops it', () => {
    const g = tag({
      type: 'tag',
      begin: '<response>',
      content: {
        type: 'dispatch',
        rules: [['<f1>', { type: 'json_schema', json_schema: { type: 'boolean' } }]],
        excludes: ['</response>'],
      },
      end: '</response>',
    });
    expect(accepts(g, '<response>text <f1>true more <f1>false</response>')).toBe(true);
    expect(accepts(g, '<response><f1>1</response>')).toBe(false);
    const once = tag({ type: 'dispatch', rules: [['#', { type: 'const_string', value: '1' }]], loop: false });
    expect(accepts(once, 'a#1')).toBe(true);
    expect(accepts(once, 'a#1b')).toBe(false);
  });

  it('a GBNF grammar inside a tag', () => {
    const g = tag({
      type: 'tag',
      begin: '[',
      content: { type: 'grammar', grammar: 'root ::= item ("," item)*\nitem ::= [a-z]+' },
      end: ']',
    });
    expect(accepts(g, '[ab,c]')).toBe(true);
    expect(accepts(g, '[ab,]')).toBe(false);
  });

  it('json_schema with any_order: listed keys in any order, each once, the required all, in nested objects too', () => {
    const schema = {
      type: 'object',
      properties: {
        a: { type: 'integer' },
        b: {
          type: 'object',
          properties: { x: { type: 'boolean' }, y: { type: 'null' } },
          required: ['x', 'y'],
        },
        c: { type: 'string' },
      },
      required: ['a', 'b'],
    };
    const g = tag({ type: 'json_schema', json_schema: schema, any_order: true });
    expect(accepts(g, '{"a": 1, "b": {"x": true, "y": null}}')).toBe(true);
    expect(accepts(g, '{"b": {"y": null, "x": false}, "c": "s", "a": 2}')).toBe(true);
    expect(accepts(g, '{"c": "s", "b": {"x": true, "y": null}, "a": 2}')).toBe(true);
    // Twice the same key, a required one missing, a key the schema does not list: refused.
    expect(run(g, '{"a": 1, "a"').taken).toBe('{"a": 1, "'.length);
    expect(accepts(g, '{"a": 1, "c": "s"}')).toBe(false);
    expect(run(g, '{"b": {"y": null}').canEnd).toBe(false);
    expect(run(g, '{"d"').taken).toBe('{"'.length);
    // Without it, the listed order holds.
    const ordered = tag({ type: 'json_schema', json_schema: schema });
    expect(accepts(ordered, '{"a": 1, "b": {"x": true, "y": null}}')).toBe(true);
    expect(run(ordered, '{"b"').taken).toBe('{"'.length);
    // minProperties / maxProperties count keys in any order too.
    const counted = tag({
      type: 'json_schema',
      json_schema: {
        type: 'object',
        properties: { p: { type: 'integer' }, q: { type: 'integer' }, r: { type: 'integer' } },
        minProperties: 2,
        maxProperties: 2,
      },
      any_order: true,
    });
    expect(accepts(counted, '{"r": 1, "p": 2}')).toBe(true);
    expect(accepts(counted, '{"r": 1}')).toBe(false);
    expect(run(counted, '{"r": 1, "p": 2, ').taken).toBe('{"r": 1, "p": 2'.length);
  });

  it('refuses what it cannot follow, by name', () => {
    const refused: Array<[unknown, RegExp]> = [
      [{ type: 'token', token: 'x' }, /format\.token names a token by its text, which needs a tokenizer/],
      [
        { type: 'tag', begin: { type: 'tokens', token: 1 }, content: { type: 'any_text' }, end: 'x' },
        /begin\.type/,
      ],
      [
        { type: 'triggered_tags', triggers: ['<'], tags: [{ begin: { type: 'token', token: 1 }, end: 'x' }] },
        /begin must be a string/,
      ],
      [{ type: 'json_schema', json_schema: {}, style: 'qwen_xml' }, /format\.style/],
      [{ type: 'json_schema', json_schema: {}, any_order: 'yes' }, /any_order must be a boolean/],
      [{ type: 'any_text', max_tokens: 5 }, /max_tokens/],
      [{ type: 'const_string', value: 'x', extra: true }, /format\.extra/],
      [
        { type: 'tag', begin: '<a>', content: { type: 'any_text' }, end: '' },
        /format\.end must hold a non-empty string/,
      ],
      [
        {
          type: 'tag',
          begin: '<a>',
          content: {
            type: 'sequence',
            elements: [{ type: 'star', content: { type: 'const_string', value: 'x' } }],
          },
          end: [''],
        },
        /content is unlimited/,
      ],
      [{ type: 'mystery' }, /"mystery"/],
      [{ type: 'or', elements: [] }, /must not be empty/],
      [{ type: 'repeat', min: 3, max: 2, content: { type: 'const_string', value: 'x' } }, /max/],
      [{ type: 'triggered_tags', triggers: ['<'], tags: [], at_least_one: true }, /at_least_one/],
      [{ type: 'json_schema', json_schema: { type: 'object', frobnicate: 1 } }, /frobnicate/],
    ];
    for (const [format, why] of refused) expect(() => tag(format), JSON.stringify(format)).toThrow(why);
    // An empty end is fine where the content's own excludes can stop it, as in xgrammar.
    expect(() =>
      tag({ type: 'tag', begin: '<a>', content: { type: 'any_text', excludes: ['.'] }, end: '' }),
    ).not.toThrow();
    expect(() => structuralTagGrammar({ type: 'structural_tag' }, 'p')).toThrow(/format/);
    expect(() => structuralTagGrammar([], 'p')).toThrow(/JSON object/);
  });

  it('never leads free text with tags into a dead end', () => {
    const g = tag({
      type: 'triggered_tags',
      triggers: ['<function='],
      tags: [weather, time],
      excludes: ['<<'],
    });
    const m = new ByteMatcher(g);
    const alphabet = [...'<function=get_weathr>{}"city: 12/ax'].map((c) => c.charCodeAt(0));
    const rand = mulberry32(7);
    for (let walk = 0; walk < 200; walk++) {
      let states = m.start();
      for (let i = 0; i < 80; i++) {
        const next = alphabet.filter((b) => m.feed(states, b).length > 0);
        expect(next.length > 0 || m.canEnd(states)).toBe(true);
        if (next.length === 0) break;
        states = m.feed(states, next[Math.floor(rand() * next.length)]);
      }
    }
  });
});

describe('structural tags: any_order against the schema', () => {
  it('random walks end only on objects with unique keys, every required one, within the key counts', () => {
    const schema = {
      type: 'object',
      properties: {
        a: { type: 'integer' },
        b: { type: 'boolean' },
        c: { type: 'null' },
        d: { type: 'integer' },
      },
      required: ['b', 'd'],
      maxProperties: 3,
      additionalProperties: { type: 'integer' },
    };
    const m = new ByteMatcher(tag({ type: 'json_schema', json_schema: schema, any_order: true }));
    const alphabet = [...'{}",: abcdefstrulnx0123'].map((c) => c.charCodeAt(0));
    const rand = mulberry32(5);
    let ended = 0;
    for (let walk = 0; walk < 300; walk++) {
      let states = m.start();
      let text = '';
      for (let i = 0; i < 60; i++) {
        const next = alphabet.filter((b) => m.feed(states, b).length > 0);
        expect(next.length > 0 || m.canEnd(states), text).toBe(true);
        if (m.canEnd(states) && (next.length === 0 || rand() < 0.3)) {
          const keys = [...text.matchAll(/"([^"]*)"\s*:/g)].map((k) => k[1]);
          expect(new Set(keys).size, text).toBe(keys.length);
          expect(keys, text).toEqual(expect.arrayContaining(['b', 'd']));
          expect(keys.length, text).toBeLessThanOrEqual(3);
          JSON.parse(text);
          ended++;
          break;
        }
        const b = next[Math.floor(rand() * next.length)];
        states = m.feed(states, b);
        text += String.fromCharCode(b);
      }
    }
    expect(ended).toBeGreaterThan(20);
  });
});

describe('structural tags: size', () => {
  it('refuses free text that would watch too many characters', () => {
    const excludes = Array.from({ length: 500 }, (_, i) => `<stop-${i}>`);
    expect(() => tag({ type: 'any_text', excludes })).toThrow(/more than 4096/);
    expect(() => tag({ type: 'any_text', excludes: excludes.slice(0, 50) })).not.toThrow();
  });
});

describe('structural tags: free text against a direct search', () => {
  it('any_text with excludes takes exactly the texts that contain none of them', () => {
    const rand = mulberry32(11);
    const pick = (alphabet: string, n: number) =>
      Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    for (let round = 0; round < 40; round++) {
      const excludes = Array.from({ length: 1 + Math.floor(rand() * 4) }, () =>
        pick('abé', 1 + Math.floor(rand() * 4)),
      );
      const g = tag({ type: 'any_text', excludes });
      for (let k = 0; k < 50; k++) {
        const text = pick('abéc', Math.floor(rand() * 12));
        expect(accepts(g, text), `${JSON.stringify(excludes)} ${text}`).toBe(
          !excludes.some((e) => text.includes(e)),
        );
      }
    }
  });

  it('triggered_tags: each trigger in the text opens a tag; text without one is free', () => {
    const rand = mulberry32(5);
    const g = tag({
      type: 'triggered_tags',
      triggers: ['ab', 'ba'],
      tags: [
        { type: 'tag', begin: 'ab', content: { type: 'const_string', value: '1' }, end: '.' },
        { type: 'tag', begin: 'ba', content: { type: 'const_string', value: '2' }, end: '.' },
      ],
    });
    // The language directly: split at the first trigger, which must be followed by its tag's rest.
    const inLanguage = (text: string): boolean => {
      const at = [text.indexOf('ab'), text.indexOf('ba')].filter((i) => i >= 0);
      if (at.length === 0) return true;
      const i = Math.min(...at);
      const rest = text.slice(i + 2);
      const body = text.startsWith('ab', i) ? '1.' : '2.';
      return rest.startsWith(body) && inLanguage(rest.slice(2));
    };
    for (let k = 0; k < 400; k++) {
      const text = Array.from(
        { length: Math.floor(rand() * 10) },
        () => 'ab12.x'[Math.floor(rand() * 6)],
      ).join('');
      expect(accepts(g, text), text).toBe(inLanguage(text));
    }
  });
});

describe('structural tags: compact JSON parts', () => {
  it('disable_any_whitespace shapes the JSON inside the tags, not the text around them', () => {
    const g = tag({ type: 'triggered_tags', triggers: ['<function='], tags: [weather] });
    expect(g.jsonParts).toBe(true);
    const compact = { ...g, compact: true };
    expect(accepts(compact, 'Hi  there <function=get_weather>{"city": "x"}</function>')).toBe(true);
    expect(accepts(compact, '<function=get_weather>{"city":"x"}</function>')).toBe(false);
    expect(accepts(compact, '<function=get_weather>{ "city": "x"}</function>')).toBe(false);
    expect(tag({ type: 'const_string', value: 'x' }).jsonParts).toBe(false);
  });
});

describe('structural tags: random formats', () => {
  /** A random format tree over a small alphabet, sometimes malformed. */
  function randomFormat(rand: () => number, depth: number): unknown {
    const text = () => ['a', 'b', 'ab', '<', '</x>', ''][Math.floor(rand() * 6)];
    const tagOf = (): unknown => ({
      type: 'tag',
      begin: `<${text()}`,
      content: randomFormat(rand, depth + 1),
      end: rand() < 0.2 ? [text(), '>'] : `>${text()}`,
    });
    const kinds = depth > 2 ? ['const_string', 'json_schema', 'regex', 'any_text'] : Object.keys(KINDS);
    const kind = kinds[Math.floor(rand() * kinds.length)];
    const inner = () => randomFormat(rand, depth + 1);
    switch (kind) {
      case 'const_string':
        return { type: kind, value: text() };
      case 'json_schema':
        return {
          type: kind,
          json_schema: [{ type: 'integer' }, { enum: ['a', 'b'] }, { type: 'boolean' }][
            Math.floor(rand() * 3)
          ],
        };
      case 'regex':
        return { type: kind, pattern: ['a*', 'b|ab', '[ab]{1,2}', 'x?'][Math.floor(rand() * 4)] };
      case 'any_text':
        return { type: kind, excludes: rand() < 0.5 ? [text()] : [] };
      case 'sequence':
      case 'or':
        return {
          type: kind,
          elements: Array.from({ length: Math.floor(rand() * 3) + (kind === 'or' ? 1 : 0) }, inner),
        };
      case 'optional':
      case 'star':
      case 'plus':
        return { type: kind, content: inner() };
      case 'repeat':
        return { type: kind, min: Math.floor(rand() * 2), max: rand() < 0.3 ? -1 : 2, content: inner() };
      case 'tag':
        return tagOf();
      case 'triggered_tags':
        return {
          type: kind,
          triggers: ['<'],
          tags: [tagOf(), tagOf()],
          at_least_one: rand() < 0.3,
          stop_after_first: rand() < 0.3,
        };
      case 'tags_with_separator':
        return { type: kind, tags: [tagOf()], separator: text(), at_least_one: rand() < 0.5 };
      default:
        return { type: kind, rules: [['#', inner()]], loop: rand() < 0.5 };
    }
  }
  const KINDS = {
    const_string: 1,
    json_schema: 1,
    regex: 1,
    any_text: 1,
    sequence: 1,
    or: 1,
    optional: 1,
    star: 1,
    plus: 1,
    repeat: 1,
    tag: 1,
    triggered_tags: 1,
    tags_with_separator: 1,
    dispatch: 1,
  };

  it('compile or are refused by name, and their walks never reach a state with no way on', () => {
    const rand = mulberry32(99);
    // Every character the formats below can call for.
    const alphabet = [...'ab<>/x#0123456789-"truefals '].map((c) => c.charCodeAt(0));
    let compiled = 0;
    for (let round = 0; round < 300; round++) {
      const format = randomFormat(rand, 0);
      let g: ReturnType<typeof tag>;
      try {
        g = tag(format);
      } catch (err) {
        expect(err, JSON.stringify(format)).toBeInstanceOf(GuideError);
        continue;
      }
      compiled++;
      const m = new ByteMatcher(g);
      for (let walk = 0; walk < 5; walk++) {
        let states = m.start();
        for (let i = 0; i < 40; i++) {
          const next = alphabet.filter((b) => m.feed(states, b).length > 0);
          expect(next.length > 0 || m.canEnd(states), JSON.stringify(format)).toBe(true);
          if (next.length === 0) break;
          states = m.feed(states, next[Math.floor(rand() * next.length)]);
        }
      }
    }
    expect(compiled).toBeGreaterThan(150);
  });
});
