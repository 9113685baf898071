import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { ArrivingText } from '../../server/tool-parsers/arriving-text.js';
import type { AutoToolCallDelta } from '../../server/tool-parsers/auto-tool-call-reader.js';
import { autoToolCallReader, type ToolCallParserName } from '../../server/tool-parsers/parsers.js';
import { partialJsonCall, partialJsonDumps } from '../../server/tool-parsers/partial-json.js';
import { readPythonCalls } from '../../server/tool-parsers/python-calls.js';
import {
  PyFloat,
  pythonFloatRepr,
  pythonJsonDumps,
  readJson,
  readJsonValue,
} from '../../server/tool-parsers/python-values.js';
import { assemble, pieces } from './tool-call-pieces.js';

/**
 * tool_choice "auto": each --tool-call-parser's reader over texts a model could write, whole and
 * cut at random places (a stream), which must say the same; arguments as vLLM writes them.
 */
/** A streamed reader's output over `text` cut at random places, as a stream puts it together. */
function streamed(parser: ToolCallParserName, text: string, seed: number) {
  const reader = autoToolCallReader(parser, Number.POSITIVE_INFINITY, true);
  const outs = [...pieces(text, mulberry32(seed), 9).map((p) => reader.push(p)), reader.finish()];
  return {
    content: outs.map((o) => o.content).join(''),
    calls: assemble(outs.flatMap((o) => o.calls)).map((c) => c.function),
    reader,
  };
}

function whole(parser: ToolCallParserName, text: string) {
  const reader = autoToolCallReader(parser);
  reader.push(text);
  reader.finish();
  return { content: reader.content, calls: reader.calls.map((c) => c.function) };
}

/** The reader says `expected` over `text` whole and over 20 random cuttings of it. */
function expectRead(
  parser: ToolCallParserName,
  text: string,
  expected: { content: string; calls: Array<{ name: string; arguments: string }> },
): void {
  expect(whole(parser, text)).toEqual(expected);
  for (let seed = 1; seed <= 20; seed++) {
    const { content, calls } = streamed(parser, text, seed);
    expect({ content, calls }, `seed ${seed}`).toEqual(expected);
  }
}

describe('values as json.loads reads and json.dumps writes them', () => {
  it("floats keep Python's repr, ints any size, keys their order", () => {
    const cases: Array<[string, string]> = [
      [
        '{"a": 1.0, "b": 1e5, "c": 1.5e-7, "d": -0.0, "e": 12345678901234567890}',
        '{"a": 1.0, "b": 100000.0, "c": 1.5e-07, "d": -0.0, "e": 12345678901234567890}',
      ],
      ['{"b": 1, "2": 2, "b": 3}', '{"b": 3, "2": 2}'],
      [
        '[1e16, 1e15, 0.0001, 0.00001, 123.456, 1E400, NaN]',
        '[1e+16, 1000000000000000.0, 0.0001, 1e-05, 123.456, Infinity, NaN]',
      ],
      ['"tab\\t \\u00e9 \\ud83d\\ude00 /"', '"tab\\t é 😀 /"'],
    ];
    for (const [json, dumped] of cases) expect(pythonJsonDumps(readJson(json)), json).toBe(dumped);
    expect(pythonFloatRepr(2 ** 60)).toBe('1.152921504606847e+18');
    expect(pythonFloatRepr(0.1 + 0.2)).toBe('0.30000000000000004');
    expect(pythonJsonDumps(new PyFloat(100))).toBe('100.0');
  });

  it('raw_decode reads one value and says where it ends; bad JSON is refused', () => {
    expect(readJsonValue(' [1, {"a": null}] tail')).toMatchObject({ end: 17 });
    for (const bad of ['{"a": 1,}', '[01]', '{"a" 1}', '"a\nb"', "{'a': 1}", '[1] x'])
      expect(() => readJson(bad), bad).toThrow();
  });
});

describe('JSON still arriving (partial-json.ts)', () => {
  const texts = [
    ' { "a" : [ 1 , -0 , 1.50 , 1E400 , -1e-7 , 12345678901234567890 ] , "b" : { } , "c" : [ ] } ',
    '{"s": "x\\"y\\\\z\\u00e9\\ud83d\\ude00\\n\\/", "t": true, "f": false, "n": null}',
    '[NaN, Infinity, -Infinity, "é😀", {"k": [[], [{}]]}]',
    '"just a string"',
    '-12.5e+3 ',
  ];

  it('reads every cut of a text as the start of what json.dumps writes of the whole', () => {
    for (const text of texts) {
      const final = pythonJsonDumps(readJson(text));
      for (let end = 0; end <= text.length; end++) {
        const read = partialJsonDumps(text.slice(0, end));
        expect(read.state, text.slice(0, end)).not.toBe('malformed');
        expect(final.startsWith(read.text), `${text.slice(0, end)} → ${read.text}`).toBe(true);
      }
      expect(partialJsonDumps(text)).toMatchObject({ text: final });
    }
  });

  it('says when text cannot be JSON, and reads a call object as far as it goes', () => {
    for (const bad of ['{"a" 1}', '[1 2]', '{a: 1}', '[01]', '[nul1]', '"\\x"', '[1,]x'])
      expect(partialJsonDumps(bad).state, bad).toBe('malformed');
    expect(partialJsonCall('{"name": "f", "arguments": {"x": [1, "a', ['arguments'])).toEqual({
      name: 'f',
      arguments: '{"x": [1, "a',
      state: 'partial',
    });
    expect(partialJsonCall('{"arguments": {"x": 1}, "name": "f"', ['arguments'])).toEqual({
      name: 'f',
      arguments: '{"x": 1}',
      state: 'partial',
    });
    expect(partialJsonCall('{"name": "f', ['arguments'])).toEqual({
      name: null,
      arguments: null,
      state: 'partial',
    });
    expect(partialJsonCall('{"name": "f"} x', ['arguments']).state).toBe('complete');
    expect(partialJsonCall('["name"]', ['arguments']).state).toBe('malformed');
  });
});

describe('hermes and llama3_json', () => {
  it('hermes: <tool_call> blocks are calls (arguments as vLLM writes them), the rest is the content', () => {
    const text =
      'Let me check. <tool_call>\n{"name": "weather", "arguments": {"city":"Oslo","days":[1,2]}}\n</tool_call>\n<tool_call>{"name": "ping", "arguments": {}}</tool_call>\n';
    const expected = {
      content: 'Let me check.',
      calls: [
        { name: 'weather', arguments: '{"city": "Oslo", "days": [1, 2]}' },
        { name: 'ping', arguments: '{}' },
      ],
    };
    expect(whole('hermes', text)).toEqual(expected);
    for (let seed = 1; seed <= 20; seed++) {
      const { content, calls } = streamed('hermes', text, seed);
      expect({ content, calls }).toEqual(expected);
    }
  });

  it('parallel_tool_calls: false keeps the first call the model wrote', () => {
    const reader = autoToolCallReader('hermes', 1);
    const out = reader.push(
      'A<tool_call>{"name": "ping", "arguments": {}}</tool_call><tool_call>{"name": "weather", "arguments": {}}</tool_call>',
    );
    expect(out.calls.map((c) => c.function.name)).toEqual(['ping']);
    reader.finish();
    expect(reader.calls.map((c) => c.function.name)).toEqual(['ping']);
    expect(reader.content).toBe('A');
  });

  it('hermes: text alone, a tag-like text, a call that does not parse, and one cut at the end', () => {
    expect(whole('hermes', 'Just text <tool_ and more. ')).toEqual({
      content: 'Just text <tool_ and more.',
      calls: [],
    });
    expect(whole('hermes', 'A <tool_call>{"name": 1}</tool_call> B')).toEqual({
      content: 'A <tool_call>{"name": 1}</tool_call> B',
      calls: [],
    });
    expect(whole('hermes', '<tool_call>{"name": "ping", "arguments": {"n": 1}}')).toEqual({
      content: '',
      calls: [{ name: 'ping', arguments: '{"n": 1}' }],
    });
    expect(whole('hermes', '<tool_call>{"name": "ping", "argu')).toEqual({
      content: '<tool_call>{"name": "ping", "argu',
      calls: [],
    });
  });

  it('llama3_json: an output starting with { (or <|python_tag|>) is calls separated by ;', () => {
    const text =
      '<|python_tag|>{"name": "weather", "parameters": {"city": "Paris"}}; {"name": "ping", "arguments": {}}';
    const expected = {
      content: '',
      calls: [
        { name: 'weather', arguments: '{"city": "Paris"}' },
        { name: 'ping', arguments: '{}' },
      ],
    };
    expect(whole('llama3_json', text)).toEqual(expected);
    for (let seed = 1; seed <= 10; seed++)
      expect(streamed('llama3_json', text, seed)).toMatchObject(expected);
    expect(whole('llama3_json', 'It is sunny. {"a": 1}')).toEqual({
      content: 'It is sunny. {"a": 1}',
      calls: [],
    });
    expect(whole('llama3_json', '{"name": "weather"} trailing')).toEqual({
      content: '{"name": "weather"} trailing',
      calls: [],
    });
  });
});

describe('pythonic and llama4_pythonic', () => {
  it('a list of calls with literal keyword arguments, written as json.dumps writes them', () => {
    expectRead(
      'pythonic',
      "[get_weather(city='Oslo', days=[1, 2.0], units=None), search(q=\"it's \\\"x\\\"\", opts={'a': True, 1: -3}),\n ping()]\n",
      {
        content: '',
        calls: [
          { name: 'get_weather', arguments: '{"city": "Oslo", "days": [1, 2.0], "units": null}' },
          { name: 'search', arguments: '{"q": "it\'s \\"x\\"", "opts": {"a": true, "1": -3}}' },
          { name: 'ping', arguments: '{}' },
        ],
      },
    );
  });

  it("reads Python's string and number forms", () => {
    const call = (args: string) => {
      const read = readPythonCalls(`[f(${args})]`);
      return read.kind === 'calls' ? read.calls[0].arguments : read.kind;
    };
    expect(call("a='x' \"y\" r'\\d'")).toBe('{"a": "xy\\\\d"}');
    expect(call("a='''two\nlines'''")).toBe('{"a": "two\\nlines"}');
    expect(call("a='\\x41\\u00e9\\101\\q'")).toBe('{"a": "AéA\\\\q"}');
    expect(call('a=0x1F, b=1_000, c=.5, d=1e3, e=-2.50')).toBe(
      '{"a": 31, "b": 1000, "c": 0.5, "d": 1000.0, "e": -2.5}',
    );
  });

  it('anything else is text: positional arguments, expressions, other statements, or a list that is not calls', () => {
    for (const text of ['[f(1)]', '[]', '[1, 2] are numbers', '[_f(a=1)]', ' [f(a=1)]', 'Sure: [f(a=1)]'])
      expectRead('pythonic', text, { content: text.trimEnd(), calls: [] });
    // These go wrong after a keyword argument has begun: streamed, the call was announced by then
    // when a piece ended there (AutoToolCallReader), and the text is the content all the same.
    for (const text of [
      '[f(a=x)]',
      '[f(a=1+2)]',
      "[f(a=b'x')]",
      '[f(a=(1, 2))]',
      '[f(a=1, a=2)]',
      '[f(a=1)] and more',
      "[f(a='cut",
    ]) {
      expect(whole('pythonic', text)).toEqual({ content: text, calls: [] });
      for (let seed = 1; seed <= 5; seed++) {
        const run = streamed('pythonic', text, seed);
        expect(run.content).toBe(text);
        expect(['', 'f']).toContain(run.calls.map((c) => c.name).join());
      }
    }
  });

  it('text is released as soon as it cannot be calls; calls wait for the end', () => {
    const reader = autoToolCallReader('pythonic');
    expect(reader.push('[f(a=1')).toEqual({ content: '', calls: [] });
    expect(reader.push(')] and then')).toEqual({ content: '[f(a=1)] and then', calls: [] });
    const calls = autoToolCallReader('pythonic');
    expect(calls.push('[f(a=1)]').calls).toEqual([]);
    expect(calls.finish().calls.map((c) => c.function)).toEqual([{ name: 'f', arguments: '{"a": 1}' }]);
  });

  it("llama4_pythonic: Llama 4's <|python_start|> and <|python_end|> are not part of the list", () => {
    expectRead('llama4_pythonic', "<|python_start|>[f(a='x')]<|python_end|>", {
      content: '',
      calls: [{ name: 'f', arguments: '{"a": "x"}' }],
    });
    expectRead('llama4_pythonic', '<|python_start|>print(1)<|python_end|>', {
      content: 'print(1)<|python_end|>',
      calls: [],
    });
    expectRead('pythonic', "<|python_start|>[f(a='x')]", {
      content: "<|python_start|>[f(a='x')]",
      calls: [],
    });
  });
});

/** A streamed reader fed `text` one character at a time: each character's delta. */
function charByChar(parser: ToolCallParserName, text: string, maxCalls = Number.POSITIVE_INFINITY) {
  const reader = autoToolCallReader(parser, maxCalls, true);
  const outs = [...[...text].map((c) => reader.push(c)), reader.finish()];
  return {
    outs,
    content: outs.map((o) => o.content).join(''),
    calls: assemble(outs.flatMap((o) => o.calls)).map((c) => c.function),
    /** Where each call's id and name went out: the index of the character that completed it. */
    announced: outs.flatMap((o, i) => o.calls.filter((d) => d.id !== undefined).map(() => i)),
    /** How many characters' deltas carried some of the arguments. */
    argumentPieces: outs.filter((o) => o.calls.some((d) => d.function.arguments !== '')).length,
  };
}

describe('streamed calls: sent while they arrive, as vLLM streams them', () => {
  const cases: Array<[ToolCallParserName, string, string]> = [
    [
      'hermes',
      'Sure. <tool_call>\n{"name": "weather", "arguments": {"city": "Oslo", "days": [1, 2.50], "x": null}}\n</tool_call>',
      '"arguments": ',
    ],
    [
      'llama3_json',
      '<|python_tag|>{"name": "weather", "parameters": {"city": "Oslo", "days": [1, 2.50], "x": null}}',
      '"parameters": ',
    ],
    [
      'mistral',
      '[TOOL_CALLS][{"name": "weather", "arguments": {"city": "Oslo", "days": [1, 2.50], "x": null}}]',
      '"arguments": ',
    ],
    ['mistral', '[TOOL_CALLS]weather[ARGS]{"city": "Oslo", "days": [1, 2.50], "x": null}', '{'],
  ];

  it('announces a call once its name and its arguments key have arrived, then sends the arguments piece by piece', () => {
    for (const [parser, text, announcedAfter] of cases) {
      const run = charByChar(parser, text);
      // The collected choice says the same.
      expect({ content: run.content, calls: run.calls }, text).toEqual(whole(parser, text));
      expect(run.calls.map((c) => c.name)).toEqual(['weather']);
      // Announced at the character that ends `announcedAfter` (its trailing space is not needed).
      const at = text.indexOf(announcedAfter) + announcedAfter.trimEnd().length - 1;
      expect(run.announced, text).toEqual([at]);
      // Most of the arguments went out before the call's text ended.
      expect(run.argumentPieces, text).toBeGreaterThan(10);
    }
  });

  it("writes each part of the arguments as json.dumps will: a number once it has ended, a string's characters as they come", () => {
    const run = charByChar(
      'hermes',
      '<tool_call>{"name": "f", "arguments": {"n": 1.50e1, "s": "a\\u00e9\\n"}}</tool_call>',
    );
    const sent = run.outs.flatMap((o) => o.calls.map((d) => d.function.arguments)).filter((a) => a !== '');
    expect(sent.join('')).toBe('{"n": 15.0, "s": "aé\\n"}');
    // The number waits for the comma after it, and an escape for its last character.
    expect(sent).toContain('15.0, ');
    expect(sent).toContain('é');
    expect(sent).toContain('\\n');
  });

  it('pythonic: announces a call at its first keyword argument; a string argument goes out as it comes, the others once the `,` or `)` after them has', () => {
    const text = "[get_weather(city='Os' 'lo', days=[1, 2.50], x=None), ping()]";
    const run = charByChar('pythonic', text);
    expect({ content: run.content, calls: run.calls }).toEqual(whole('pythonic', text));
    expect(run.calls).toEqual([
      { name: 'get_weather', arguments: '{"city": "Oslo", "days": [1, 2.5], "x": null}' },
      { name: 'ping', arguments: '{}' },
    ]);
    // get_weather once its first `=` is not `==`; ping(), which has none, once it has ended, whole.
    expect(run.announced).toEqual([text.indexOf('=') + 1, text.lastIndexOf(')')]);
    const sent = run.outs.flatMap((o) => o.calls.map((d) => d.function.arguments)).filter((a) => a !== '');
    // 'Os' 'lo' is one string (Python joins them): its quote closes only once the `,` shows none follows.
    expect(sent).toEqual(['{"city": "', 'O', 's', 'l', 'o', '"', ', "days": [1, 2.5]', ', "x": null}', '{}']);
    // A list that stops being calls: what was sent stays, and the text is the content.
    expect(charByChar('pythonic', '[f(a=1), g(b=1, c=2, 3)]')).toMatchObject({
      content: '[f(a=1), g(b=1, c=2, 3)]',
      calls: [
        { name: 'f', arguments: '{"a": 1}' },
        { name: 'g', arguments: '{"b": 1' },
      ],
    });
    // A positional argument before any keyword: never a call, streamed or not.
    expect(charByChar('pythonic', '[f(1)]')).toMatchObject({ content: '[f(1)]', calls: [] });
  });

  it('adds up to the collected calls for random arguments, however the text is cut', () => {
    const rand = mulberry32(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const scalars = [
      '0',
      '-0',
      '1.50',
      '1e5',
      '-2E-3',
      '12345678901234567890',
      'true',
      'false',
      'null',
      'NaN',
      '-Infinity',
    ];
    const strings = [
      '""',
      '"a b"',
      '"é😀"',
      '"q\\"uote"',
      '"back\\\\slash"',
      '"\\u00e9\\ud83d\\ude00"',
      '"tab\\tnl\\n"',
    ];
    const space = () => pick(['', ' ', '\n  ']);
    const value = (depth: number): string => {
      const kind = depth > 2 ? 0 : Math.floor(rand() * 4);
      if (kind === 0) return pick(rand() < 0.5 ? scalars : strings);
      if (kind === 1)
        return `[${space()}${Array.from({ length: Math.floor(rand() * 3) }, () => value(depth + 1)).join(`,${space()}`)}]`;
      const keys = ['a', 'b', 'c d', 'é'].slice(0, Math.floor(rand() * 4));
      return `{${keys.map((k) => `${space()}"${k}"${space()}:${space()}${value(depth + 1)}`).join(',')}${space()}}`;
    };
    for (let n = 0; n < 60; n++) {
      const args = `{${space()}"x":${space()}${value(1)}${space()}}`;
      const texts: Array<[ToolCallParserName, string]> = [
        ['hermes', `Hi <tool_call>{"name": "f",${space()}"arguments":${space()}${args}}</tool_call>`],
        ['llama3_json', `{"name": "f", "parameters": ${args}}; {"name": "g", "parameters": {}}`],
        ['mistral', `[TOOL_CALLS] [{"name": "f", "arguments": ${args}}]`],
      ];
      for (const [parser, text] of texts) {
        const expected = whole(parser, text);
        expect(expected.calls[0]?.name, text).toBe('f');
        for (let seed = 1; seed <= 4; seed++)
          expect(streamed(parser, text, seed + n * 10), text).toMatchObject(expected);
      }
    }
  });

  it('reads a long call again only once it has grown by a sixteenth; its arguments still add up', () => {
    const args = `{"code": "${'x = 1\\n'.repeat(8000)}", "n": 1.50}`;
    for (const [parser, text] of [
      ['hermes', `<tool_call>{"name": "run", "arguments": ${args}}</tool_call> done`],
      ['llama3_json', `{"name": "run", "parameters": ${args}}`],
      ['mistral', `[TOOL_CALLS][{"name": "run", "arguments": ${args}}]`],
    ] as Array<[ToolCallParserName, string]>) {
      const reader = autoToolCallReader(parser, Number.POSITIVE_INFINITY, true);
      const outs: AutoToolCallDelta[] = [];
      for (let at = 0; at < text.length; at += 4) outs.push(reader.push(text.slice(at, at + 4)));
      outs.push(reader.finish());
      expect(assemble(outs.flatMap((o) => o.calls)).map((c) => c.function)).toEqual(
        whole(parser, text).calls,
      );
      // 12,000 pieces: the first 2,048 characters at every piece, then a read per sixteenth of growth.
      const reads = outs.filter((o) => o.calls.some((d) => d.function.arguments !== '')).length;
      expect(reads, parser).toBeGreaterThan(450);
      expect(reads, parser).toBeLessThan(700);
    }
    // A call that ended between two reads is still read as one at the end, with what follows it.
    const reader = autoToolCallReader('llama3_json', Number.POSITIVE_INFINITY, true);
    const text = `{"name": "run", "parameters": ${args}} and done`;
    const outs: AutoToolCallDelta[] = [];
    for (let at = 0; at < text.length; at += 4) outs.push(reader.push(text.slice(at, at + 4)));
    outs.push(reader.finish());
    expect(outs.map((o) => o.content).join('')).toBe(' and done');
    expect(assemble(outs.flatMap((o) => o.calls)).map((c) => c.function.name)).toEqual(['run']);
  });

  it('finds a closing tag however the pieces cut it (ArrivingText)', () => {
    const text = new ArrivingText('</tool_call>');
    text.restart('{"a": 1}');
    for (const piece of ['<', '/', 'tool', '_c', 'al']) expect(text.append(piece), piece).toBe(true);
    expect(text.append('l>')).toBe(false);
    expect(text.take()).toBe('{"a": 1}</tool_cal');
    expect(text.append('</tool_call>')).toBe(false);
    expect(text.append('x</tool_call')).toBe(true);
    expect(text.text()).toBe('x</tool_call');
  });

  it("pythonic: string arguments in Python's forms add up to the collected call, however cut", () => {
    for (const text of [
      "[f(a='x\\'y\\n\\u00e9\\U0001F600', b=r'c:\\dir', c='''multi\nline''', d=\"dq\" 'sq' u'u', e='😀')]",
      "[f(code='def f():\\n    return 1'), g(s='')]",
    ]) {
      const expected = whole('pythonic', text);
      expect(expected.calls.length, text).toBeGreaterThan(0);
      for (let seed = 1; seed <= 20; seed++)
        expect(streamed('pythonic', text, seed), text).toMatchObject(expected);
      const run = charByChar('pythonic', text);
      expect({ content: run.content, calls: run.calls }).toEqual(expected);
      expect(run.argumentPieces).toBeGreaterThan(15);
    }
  });

  it('does not announce JSON that has a "name" but no arguments key, nor calls past parallel_tool_calls: false', () => {
    const data = charByChar('llama3_json', '{"name": "Ada", "age": 36}');
    expect(data.announced).toEqual([]);
    expect(data.content).toBe('{"name": "Ada", "age": 36}');
    const one = charByChar(
      'hermes',
      '<tool_call>{"name": "ping", "arguments": {}}</tool_call><tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}</tool_call>',
      1,
    );
    expect(one.calls).toEqual([{ name: 'ping', arguments: '{}' }]);
    expect(one.announced).toHaveLength(1);
  });

  it('keeps a call announced before its text went wrong, with what it was sent, and its text as the content', () => {
    const broken = 'A <tool_call>{"name": "ping", "arguments": {"n": [1}}</tool_call> B';
    expect(whole('hermes', broken)).toEqual({ content: broken, calls: [] });
    expect(charByChar('hermes', broken)).toMatchObject({
      content: broken,
      calls: [{ name: 'ping', arguments: '{"n": [1' }],
    });
    // Cut short by max_tokens: the same.
    const cut = '<tool_call>{"name": "ping", "arguments": {"city": "Os';
    expect(charByChar('hermes', cut)).toMatchObject({
      content: cut,
      calls: [{ name: 'ping', arguments: '{"city": "Os' }],
    });
    // Streamed, a call sent whole is a call even when text follows it (collected, llama3_json reads
    // such an output as text, as vLLM's parser does).
    expect(charByChar('llama3_json', '{"name": "a", "parameters": {}} and text')).toMatchObject({
      content: ' and text',
      calls: [{ name: 'a', arguments: '{}' }],
    });
  });
});

describe('mistral', () => {
  it('before v11: one JSON array after [TOOL_CALLS], the text before it the content', () => {
    expectRead(
      'mistral',
      'Checking. [TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Oslo", "t": 1.0}}, {"name": "ping"}]',
      {
        content: 'Checking.',
        calls: [
          { name: 'weather', arguments: '{"city": "Oslo", "t": 1.0}' },
          { name: 'ping', arguments: '{}' },
        ],
      },
    );
  });

  it('v11 and later: each call after its own token, arguments as the model wrote them', () => {
    expectRead('mistral', '[TOOL_CALLS]weather[ARGS]{"city":"Oslo"}[TOOL_CALLS]ping{}', {
      content: '',
      calls: [
        { name: 'weather', arguments: '{"city":"Oslo"}' },
        { name: 'ping', arguments: '{}' },
      ],
    });
  });

  it('what cannot be read stays text; ids are 9 letters and digits', () => {
    expectRead('mistral', 'A [TOOL_' + 'CALL] B', { content: 'A [TOOL_CALL] B', calls: [] });
    expectRead('mistral', 'A[TOOL_CALLS][{"nam": 1}]', { content: 'A[TOOL_CALLS][{"nam": 1}]', calls: [] });
    expectRead('mistral', '[TOOL_CALLS]no_arguments', { content: '[TOOL_CALLS]no_arguments', calls: [] });
    const reader = autoToolCallReader('mistral');
    reader.push('[TOOL_CALLS]ping{}');
    reader.finish();
    expect(reader.calls[0].id).toMatch(/^[A-Za-z0-9]{9}$/);
  });
});
