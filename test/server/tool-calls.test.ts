import { describe, expect, it } from 'vitest';
import { ChatTemplate } from '../../model/chat-template.js';
import { SYNTHETIC_CHAT_TEMPLATE } from '../../model/synthetic-tokenizer.js';
import { mulberry32 } from '../../scheduler/prng.js';
import type { ChatCompletionRequest } from '../../server/schemas/chat-request.js';
import type { ServingTokenizer } from '../../server/serving-stack.js';
import { ToolCallReader } from '../../server/tool-call-stream.js';
import { toolCalling } from '../../server/tool-calls.js';
import { autoToolCallReader, type ToolCallParserName } from '../../server/tool-parsers/parsers.js';
import { ByteMatcher } from '../../structured/byte-matcher.js';
import type { Grammar } from '../../structured/grammar-nodes.js';
import { compileToolCallsGrammar } from '../../structured/json-schema.js';
import { accepts } from '../structured/match-text.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';
import { assemble, type Call, pieces } from './tool-call-pieces.js';

/**
 * Tool calling on the real stack (onnx engine, the tiny model's template, which writes tools and
 * tool calls): a named function or tool_choice "required" guides the output to the tools'
 * argument schemas, and the choice comes back as OpenAI's tool_calls, streamed or whole alike.
 */
// The tools take ~300 of the tiny model's byte-level tokens in the prompt.
const server = useTinyServer('onnx', { maxModelLen: 512 });

const WEATHER = {
  type: 'function',
  function: {
    name: 'weather',
    parameters: {
      type: 'object',
      properties: {
        city: { enum: ['Paris', 'Oslo'] },
      },
      required: ['city'],
    },
  },
};
const CLOCK = {
  type: 'function',
  function: {
    name: 'time',
    parameters: { type: 'object', properties: { zone: { type: 'integer', minimum: -12, maximum: 14 } } },
  },
};
const NO_ARGUMENTS = { type: 'function', function: { name: 'ping' } };
/** Two tools: the tiny model's context (512 byte-level tokens) holds their definitions and a call. */
const TOOLS = [WEATHER, NO_ARGUMENTS];

const chat = (extra: object) => ({
  model: TINY_MODEL_NAME,
  messages: [{ role: 'user', content: 'Weather?' }],
  max_tokens: 80,
  temperature: 0.8,
  ...extra,
});

/** A call's arguments follow its tool's schema. */
function expectValidCall(call: Call): void {
  expect(call.type).toBe('function');
  expect(call.id).toMatch(/^chatcmpl-tool-[0-9a-f]{32}$/);
  const args = JSON.parse(call.function.arguments);
  if (call.function.name === 'weather') {
    expect(Object.keys(args)).toEqual(['city']);
    expect(['Paris', 'Oslo']).toContain(args.city);
  } else if (call.function.name === 'time') {
    expect(Object.keys(args).every((k) => k === 'zone')).toBe(true);
    if ('zone' in args) expect(Number.isInteger(args.zone) && args.zone >= -12 && args.zone <= 14).toBe(true);
  } else {
    expect(call.function.name).toBe('ping');
    expect(args).toEqual({});
  }
  expect(call.function.arguments).toBe(call.function.arguments.trim());
}

type StreamedChoice = {
  delta: { role?: string; content?: string; tool_calls?: Parameters<typeof assemble>[0] };
  finish_reason: string | null;
};

/** A streamed chat answer's first choice, chunk by chunk, put together as OpenAI's clients do. */
async function collect(stream: unknown) {
  const choices: StreamedChoice[] = [];
  for await (const chunk of stream as AsyncIterable<{ choices: StreamedChoice[] }>)
    choices.push(chunk.choices[0]);
  return {
    choices,
    content: choices.map((c) => c.delta.content ?? '').join(''),
    calls: assemble(choices.flatMap((c) => c.delta.tool_calls ?? [])),
    finish: choices.reduce<string | null>((f, c) => c.finish_reason ?? f, null),
  };
}

describe('ToolCallReader', () => {
  const REQUIRED_OUTPUT =
    ' [ {"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"} },\n{"name":"ping","parameters":{ } } , {"name": "get_time", "parameters": { "zone" : -3 }  }]';

  it('reads "required" output as calls whose arguments are the parameters text, however it is cut', () => {
    const whole = new ToolCallReader({ kind: 'required' });
    whole.push(REQUIRED_OUTPUT);
    expect(whole.calls.map((c) => [c.function.name, c.function.arguments])).toEqual([
      ['get_weather', '{"city": "Paris", "unit": "celsius"}'],
      ['ping', '{ }'],
      ['get_time', '{ "zone" : -3 }'],
    ]);
    for (let seed = 1; seed <= 20; seed++) {
      const reader = new ToolCallReader({ kind: 'required' });
      const streamed = assemble(pieces(REQUIRED_OUTPUT, mulberry32(seed), 7).flatMap((p) => reader.push(p)));
      expect(streamed.map((c) => [c.function.name, c.function.arguments])).toEqual(
        whole.calls.map((c) => [c.function.name, c.function.arguments]),
      );
      expect(streamed.map((c) => c.id)).toEqual(reader.calls.map((c) => c.id));
    }
  });

  it('reads random calls written with random whitespace, cut at random places, as the values written', () => {
    const next = mulberry32(7);
    const rand = (n: number) => Math.floor(next() * n);
    const ws = () => [' ', '', '\n', '\t', '  '][rand(5)];
    const strings = ['', 'a', '{', '}', '[', ']', '"', '\\', 'x y', 'é', '"}]', ':,'];
    const value = (depth: number): unknown => {
      const kind = depth > 2 ? rand(4) : rand(6);
      if (kind === 0) return strings[rand(strings.length)];
      if (kind === 1) return rand(2000) - 1000;
      if (kind === 2) return [true, false, null][rand(3)];
      if (kind === 3) return rand(100) / 8;
      if (kind === 4) return Array.from({ length: rand(3) }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: rand(3) }, (_, i) => [
          `k${i}${strings[rand(strings.length)]}`,
          value(depth + 1),
        ]),
      );
    };
    /** JSON with random whitespace between its tokens. */
    const write = (v: unknown): string => {
      if (Array.isArray(v)) return `[${ws()}${v.map((x) => `${write(x)}${ws()}`).join(`,${ws()}`)}]`;
      if (v !== null && typeof v === 'object')
        return `{${ws()}${Object.entries(v)
          .map(([k, x]) => `${JSON.stringify(k)}${ws()}:${ws()}${write(x)}${ws()}`)
          .join(`,${ws()}`)}}`;
      return JSON.stringify(v);
    };
    for (let round = 0; round < 200; round++) {
      const calls = Array.from({ length: 1 + rand(3) }, (_, i) => ({
        name: `tool_${i}${rand(2) ? '-x' : ''}`,
        parameters: Object.fromEntries(Array.from({ length: rand(3) }, (_, j) => [`p${j}`, value(0)])),
      }));
      const text = `${ws()}[${ws()}${calls
        .map(
          (c) =>
            `{${ws()}"name"${ws()}:${ws()}${JSON.stringify(c.name)}${ws()},${ws()}"parameters"${ws()}:${ws()}${write(c.parameters)}${ws()}}`,
        )
        .join(`${ws()},${ws()}`)}${ws()}]${ws()}`;
      const reader = new ToolCallReader({ kind: 'required' });
      const streamed = assemble(pieces(text, next, 6).flatMap((p) => reader.push(p)));
      expect(streamed.map((c) => c.function.name)).toEqual(calls.map((c) => c.name));
      expect(streamed.map((c) => JSON.parse(c.function.arguments))).toEqual(calls.map((c) => c.parameters));
      expect(streamed.map((c) => c.function)).toEqual(reader.calls.map((c) => c.function));
      for (const c of streamed) expect(c.function.arguments).toBe(c.function.arguments.trim());
    }
  });

  it('keeps strings whole (braces, quotes, escapes and spaces inside them) and names with escapes', () => {
    const reader = new ToolCallReader({ kind: 'required' });
    reader.push('[{"name": "g\\u0065t", "parameters": {"s": "} ] \\" {  "}}]');
    expect(reader.calls.map((c) => [c.function.name, c.function.arguments])).toEqual([
      ['get', '{"s": "} ] \\" {  "}'],
    ]);
  });

  it('reads a named call: the whole output, trimmed, announced with its first text', () => {
    const reader = new ToolCallReader({ kind: 'named', name: 'get_weather' });
    // The first delta names the call and carries the first arguments, as vLLM's first chunk does.
    const first = reader.push('  {"city"');
    expect(first).toEqual([
      {
        index: 0,
        id: reader.calls[0].id,
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city"' },
      },
    ]);
    expect(reader.push(': "Oslo" ')).toEqual([{ index: 0, function: { arguments: ': "Oslo"' } }]);
    expect(reader.push('}\n')).toEqual([{ index: 0, function: { arguments: ' }' } }]);
    expect(reader.calls[0].function.arguments).toBe('{"city": "Oslo" }');
  });

  it('leaves a call cut short as it streamed', () => {
    const reader = new ToolCallReader({ kind: 'required' });
    reader.push('[{"name": "get_time", "parameters": {"zone": 1');
    expect(reader.calls.map((c) => c.function.arguments)).toEqual(['{"zone": 1']);
  });
});

describe('compileToolCallsGrammar', () => {
  const accepts = (g: Grammar, text: string) => {
    const m = new ByteMatcher(g);
    let states = m.start();
    for (const b of new TextEncoder().encode(text)) {
      states = m.feed(states, b);
      if (states.length === 0) return false;
    }
    return m.canEnd(states);
  };

  it("resolves each tool's $refs against its own schema, so two tools' $defs of one name do not clash", () => {
    const tool = (name: string, defs: object) => ({
      name,
      parameters: {
        $defs: { Arg: defs },
        type: 'object',
        properties: { x: { $ref: '#/$defs/Arg' } },
        required: ['x'],
      },
      param: name,
    });
    const g = compileToolCallsGrammar([tool('a', { type: 'integer' }), tool('b', { type: 'string' })], 2);
    expect(accepts(g, '[{"name": "a", "parameters": {"x": 1}}]')).toBe(true);
    expect(
      accepts(g, '[{"name": "b", "parameters": {"x": "s"}}, {"name": "a", "parameters": {"x": 2}}]'),
    ).toBe(true);
    expect(accepts(g, '[{"name": "a", "parameters": {"x": "s"}}]')).toBe(false);
    expect(accepts(g, '[{"name": "b", "parameters": {"x": 1}}]')).toBe(false);
    expect(accepts(g, '[{"name": "c", "parameters": {"x": 1}}]')).toBe(false);
    expect(accepts(g, '[]')).toBe(false);
    expect(
      accepts(
        g,
        '[{"name": "a", "parameters": {"x": 1}}, {"name": "a", "parameters": {"x": 1}}, {"name": "a", "parameters": {"x": 1}}]',
      ),
    ).toBe(false);
  });
});

describe('chat templates and tools', () => {
  it('tells whether a template reads a variable or key', () => {
    const template = new ChatTemplate(SYNTHETIC_CHAT_TEMPLATE, 'synthetic');
    expect(template.reads('tools')).toBe(true);
    expect(template.reads('tool_calls')).toBe(true);
    const plain = new ChatTemplate("{% for m in messages %}{{ m['content'] }}{% endfor %}", 'plain');
    expect(plain.reads('tools')).toBe(false);
    expect(plain.reads('content')).toBe(true);
  });

  it('renders tools, calls with parsed arguments and tool results as the synthetic template writes them', () => {
    const template = new ChatTemplate(SYNTHETIC_CHAT_TEMPLATE, 'synthetic');
    const text = template.render({
      bos_token: '<s>',
      eos_token: '</s>',
      add_generation_prompt: true,
      tools: [NO_ARGUMENTS],
      messages: [
        { role: 'user', content: 'hi' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'ping', arguments: { n: 1 } } }],
        },
        { role: 'tool', content: 'pong', tool_call_id: 'c1' },
      ],
    });
    expect(text).toContain('{"type": "function", "function": {"name": "ping"}}');
    expect(text).toContain(
      '<|assistant|>\n<tool_call>{"name": "ping", "arguments": {"n": 1}}</tool_call></s>',
    );
    expect(text).toContain('<|tool|>\npong</s>\n<|assistant|>\n');
    // Without tools the rendering is what the template wrote before it knew tools.
    expect(
      template.render({
        bos_token: '<s>',
        eos_token: '</s>',
        add_generation_prompt: true,
        tools: null,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    ).toBe('<s><|user|>\nhi</s>\n<|assistant|>\n');
  });
});

describe('tool calls over HTTP', () => {
  it('a named function: one call of that function, its arguments following its schema', async () => {
    for (const seed of [1, 2, 3]) {
      const res = await server().post(
        '/v1/chat/completions',
        chat({
          tools: TOOLS,
          tool_choice: { type: 'function', function: { name: 'weather' } },
          seed,
          n: 2,
        }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const choice of res.body.choices) {
        expect(choice.finish_reason).toBe('stop');
        expect(choice.message.content).toBe('');
        expect(choice.message.tool_calls).toHaveLength(1);
        expect(choice.message.tool_calls[0].function.name).toBe('weather');
        expectValidCall(choice.message.tool_calls[0]);
      }
    }
    const ping = await server().post(
      '/v1/chat/completions',
      chat({ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'ping' } } }),
    );
    expect(JSON.parse(ping.body.choices[0].message.tool_calls[0].function.arguments)).toEqual({});
  });

  it('"required": one call or more, each of a listed tool; one at most without parallel_tool_calls', async () => {
    const names = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const res = await server().post(
        '/v1/chat/completions',
        chat({ tools: TOOLS, tool_choice: 'required', seed, max_tokens: 80 }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      if (choice.finish_reason === 'length') continue;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.tool_calls.length).toBeGreaterThanOrEqual(1);
      for (const call of choice.message.tool_calls) {
        expectValidCall(call);
        names.add(call.function.name);
      }
    }
    expect(names.size).toBeGreaterThan(0);
    let single = 0;
    for (const seed of [1, 2, 3]) {
      const res = await server().post(
        '/v1/chat/completions',
        chat({ tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed, max_tokens: 80 }),
      );
      const [choice] = res.body.choices;
      if (choice.finish_reason === 'length') continue;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.tool_calls).toHaveLength(1);
      expectValidCall(choice.message.tool_calls[0]);
      single++;
    }
    expect(single).toBeGreaterThan(0);
  });

  it('writes calls compactly under structured_outputs.disable_any_whitespace', async () => {
    for (const seed of [1, 2, 3]) {
      const res = await server().post(
        '/v1/chat/completions',
        chat({
          tools: TOOLS,
          tool_choice: 'required',
          parallel_tool_calls: false,
          structured_outputs: { disable_any_whitespace: true },
          seed,
          temperature: 1.5,
        }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [choice] = res.body.choices;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.tool_calls).toHaveLength(1);
      expect(choice.message.tool_calls[0].function.arguments).toMatch(/^(\{"city": "(Paris|Oslo)"\}|\{\})$/);
    }
  });

  it('streams the same calls, announced once by name, then their arguments', async () => {
    for (const [tools, tool_choice] of [
      [TOOLS, 'required'],
      [[CLOCK], { type: 'function', function: { name: 'time' } }],
    ]) {
      const body = chat({ tools, tool_choice, seed: 7 });
      const whole = await server().post('/v1/chat/completions', body);
      const {
        choices,
        finish,
        calls: streamed,
      } = await collect(await server().client.chat.completions.create({ ...body, stream: true } as never));
      for (const choice of choices) {
        expect(choice.delta.content ?? '').toBe('');
        // No chunk without news: held-back whitespace sends none.
        expect(Boolean(choice.delta.tool_calls || choice.finish_reason || 'role' in choice.delta)).toBe(true);
      }
      const expected = whole.body.choices[0];
      expect(finish).toBe(expected.finish_reason);
      expect(streamed.map((c) => c.function)).toEqual(
        expected.message.tool_calls.map((c: Call) => c.function),
      );
    }
  });

  it('gives the template the tools, earlier calls and their results', async () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'weather', arguments: '{"city": "Oslo"}' },
          },
        ],
      },
      { role: 'tool', content: '3 degrees', tool_call_id: 'call_1' },
    ];
    const count = async (body: object) => {
      const res = await server().post('/tokenize', { model: TINY_MODEL_NAME, ...body });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.count as number;
    };
    const bare = await count({ messages: [messages[0]] });
    expect(await count({ messages: [messages[0]], tools: TOOLS })).toBeGreaterThan(bare + 50);
    expect(await count({ messages })).toBeGreaterThan(bare + 20);
    const answer = await server().post(
      '/v1/chat/completions',
      chat({ messages, tools: TOOLS, tool_choice: 'none', max_tokens: 8 }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.choices[0].message.tool_calls).toBeUndefined();
  });

  it('refuses what it cannot do, naming the field, and keeps serving', async () => {
    const refusal = async (body: object, param: string, text: string) => {
      const res = await server().post('/v1/chat/completions', chat(body));
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.param).toBe(param);
      expect(res.body.error.message).toContain(text);
    };
    await refusal({ tools: TOOLS }, 'tool_choice', '"auto"');
    await refusal({ tools: TOOLS, tool_choice: 'auto' }, 'tool_choice', '"auto"');
    await refusal({ tool_choice: 'required' }, 'tool_choice', '`tools` must be set');
    await refusal({ tools: TOOLS, tool_choice: 'sometimes' }, 'tool_choice', 'sometimes');
    await refusal(
      { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'fly' } } },
      'tool_choice',
      "'fly'",
    );
    await refusal({ tools: [WEATHER, WEATHER], tool_choice: 'none' }, 'tools[1].function.name', 'twice');
    await refusal(
      { tools: [{ type: 'function', function: { name: 'bad name' } }], tool_choice: 'none' },
      'tools[0].function.name',
      '',
    );
    await refusal(
      { tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } },
      'response_format',
      'Only one kind',
    );
    await refusal(
      {
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', not: {} } } }],
        tool_choice: 'required',
      },
      'tools[0].function.parameters',
      '"not"',
    );
    await refusal(
      { tools: TOOLS, tool_choice: 'required', use_beam_search: true, n: 2, temperature: 0 },
      'tool_choice',
      'use_beam_search',
    );
    await refusal({ functions: [{ name: 'f' }] }, 'functions', 'deprecated');
    await refusal(
      {
        messages: [
          {
            role: 'user',
            content: 'x',
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
        ],
      },
      'messages[0].tool_calls',
      'assistant',
    );
    await refusal(
      {
        messages: [
          { role: 'user', content: 'x' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{' } }],
          },
        ],
      },
      'messages[1].tool_calls[0].function.arguments',
      'not JSON',
    );
    await refusal({ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id', 'tool_call_id');
    await refusal(
      { messages: [{ role: 'user', content: 'x', tool_call_id: 'c' }] },
      'messages[0].tool_call_id',
      'tool message',
    );
    const ok = await server().post('/v1/chat/completions', chat({ max_tokens: 2 }));
    expect(ok.status).toBe(200);
  });
});

describe('tool_choice "auto" over HTTP (--enable-auto-tool-choice --tool-call-parser hermes)', () => {
  const auto = useTinyServer('onnx', { maxModelLen: 512 }, { toolCallParser: 'hermes' });
  // guided_regex makes the tiny model write a call, so the whole path runs on known text.
  const body = (extra: object) =>
    chat({
      tools: TOOLS,
      guided_regex: 'On it\\.<tool_call>\\{"name": "ping", "arguments": \\{\\}\\}</tool_call>',
      ...extra,
    });

  it('answers the text and the calls in it, streamed or whole alike', async () => {
    const res = await auto().post('/v1/chat/completions', body({}));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [choice] = res.body.choices;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBe('On it.');
    expect(choice.message.tool_calls.map((c: Call) => c.function)).toEqual([
      { name: 'ping', arguments: '{}' },
    ]);
    expectValidCall(choice.message.tool_calls[0]);

    const { content, calls, finish } = await collect(
      await auto().client.chat.completions.create({ ...body({}), stream: true } as never),
    );
    expect(content).toBe('On it.');
    expect(calls.map((c) => c.function)).toEqual([{ name: 'ping', arguments: '{}' }]);
    expect(finish).toBe('tool_calls');
  });

  it('streams a call as it arrives: its id and name first, then its arguments in pieces', async () => {
    const weather = body({
      guided_regex:
        'On it\\.<tool_call>\\{"name": "weather", "arguments": \\{"city": "Oslo"\\}\\}</tool_call>',
    });
    const whole = await auto().post('/v1/chat/completions', weather);
    expect(whole.body.choices[0].message.tool_calls.map((c: Call) => c.function)).toEqual([
      { name: 'weather', arguments: '{"city": "Oslo"}' },
    ]);
    const { choices, calls, finish } = await collect(
      await auto().client.chat.completions.create({ ...weather, stream: true } as never),
    );
    expect(calls.map((c) => c.function)).toEqual([{ name: 'weather', arguments: '{"city": "Oslo"}' }]);
    expectValidCall(calls[0]);
    expect(finish).toBe('tool_calls');
    const deltas = choices.flatMap((c, i) => (c.delta.tool_calls ?? []).map((d) => ({ i, d })));
    // One chunk announces it (arguments not yet sent), several carry its arguments.
    expect(deltas[0].d).toMatchObject({
      index: 0,
      type: 'function',
      function: { name: 'weather', arguments: '' },
    });
    const pieces = deltas.filter(({ d }) => d.function.arguments !== '');
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.every(({ d }) => d.id === undefined)).toBe(true);
  });

  it('is plain text without tools, and takes strict tools, whose calls it guides', async () => {
    const plain = await auto().post('/v1/chat/completions', chat({ max_tokens: 4 }));
    expect(plain.body.choices[0].message.tool_calls).toBeUndefined();
    const strictWeather = { ...WEATHER, function: { ...WEATHER.function, strict: true } };
    for (const seed of [1, 2, 3]) {
      const res = await auto().post(
        '/v1/chat/completions',
        chat({ tools: [strictWeather, NO_ARGUMENTS], seed, temperature: 1.2, max_tokens: 40 }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const call of res.body.choices[0].message.tool_calls ?? []) expectValidCall(call);
    }
    const badSchema = await auto().post(
      '/v1/chat/completions',
      chat({
        tools: [
          {
            type: 'function',
            function: { name: 'f', strict: true, parameters: { type: 'object', not: {} } },
          },
        ],
      }),
    );
    expect(badSchema.status).toBe(400);
    expect(badSchema.body.error.param).toBe('tools[0].function.parameters');
  });
});

const guideTokenizer = { chatTemplateReads: () => true } as unknown as ServingTokenizer;
/** The grammar of strict tools (weather strict, time not) under "auto" with `parser`. */
const strictGrammarOf = (parser: ToolCallParserName, parallel: boolean) => {
  const strictWeather = { ...WEATHER, function: { ...WEATHER.function, strict: true } };
  const calling = toolCalling(
    { ...chat({ tools: [strictWeather, CLOCK] }), parallel_tool_calls: parallel } as ChatCompletionRequest,
    guideTokenizer,
    parser,
  );
  expect(calling.output).toMatchObject({ kind: 'auto', parser });
  return calling.guide!.grammar();
};

/**
 * Random walks through a strict guide, drawn toward `target` (one call) so that they reach calls:
 * every output the guide can end is read by the parser with calls where `expectsCalls` says
 * (at least that many: 0 means none at all).
 */
function expectGuidedCallsRead(
  parser: ToolCallParserName,
  target: string,
  expectsCalls: (text: string) => number,
) {
  const m = new ByteMatcher(strictGrammarOf(parser, true));
  const rand = mulberry32(3);
  const alphabet = [...new Set([...target, ...'{}"; abx<>|:'])].map((c) => c.charCodeAt(0));
  let calls = 0;
  for (let walk = 0; walk < 300; walk++) {
    let states = m.start();
    let text = '';
    const aim = rand() < 0.5 ? target.repeat(2) : 'a';
    for (let i = 0; i < 160; i++) {
      const next = alphabet.filter((b) => m.feed(states, b).length > 0);
      if (next.length === 0 || (m.canEnd(states) && rand() < 0.03)) break;
      const want = aim.charCodeAt(text.length);
      const b = next.includes(want) && rand() < 0.95 ? want : next[Math.floor(rand() * next.length)];
      states = m.feed(states, b);
      text += String.fromCharCode(b);
    }
    if (!m.canEnd(states)) continue;
    const reader = autoToolCallReader(parser, Number.POSITIVE_INFINITY);
    reader.push(text);
    reader.finish();
    const expected = expectsCalls(text);
    if (expected === 0) expect(reader.calls, text).toEqual([]);
    else expect(reader.calls.length, text).toBeGreaterThanOrEqual(expected);
    for (const c of reader.calls) expect(['weather', 'time']).toContain(c.function.name);
    calls += reader.calls.length;
  }
  expect(calls).toBeGreaterThan(0);
}

describe('strict tools under tool_choice "auto" (hermes): the guide', () => {
  const grammarOf = (parallel: boolean) => strictGrammarOf('hermes', parallel);

  it("holds a strict tool's call to its schema, leaves the others' arguments free, and text free", () => {
    const g = grammarOf(true);
    const call = (name: string, args: string) =>
      `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`;
    for (const ok of [
      'Sure.',
      call('weather', '{"city": "Oslo"}'),
      `Here: ${call('weather', '{"city":"Paris"}')} and ${call('time', '{"anything": [1, 2]}')} done`,
      '<tool_call>{"name": "time", "arguments": {}}</tool_call>',
    ])
      expect(accepts(g, ok), ok).toBe(true);
    for (const bad of [
      call('weather', '{"city": "Rome"}'),
      call('weather', '{}'),
      call('news', '{}'),
      call('time', '[]'),
      '<tool_call>{"arguments": {}, "name": "time"}</tool_call>',
    ])
      expect(accepts(g, bad), bad).toBe(false);
  });

  it('what it lets through, the parser reads as the model meant: each <tool_call> a call', () => {
    expectGuidedCallsRead(
      'hermes',
      '<tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}</tool_call>',
      (text) => text.split('<tool_call>').length - 1,
    );
  });

  it('parallel_tool_calls false: nothing after the first call', () => {
    const g = grammarOf(false);
    const one = '<tool_call>{"name": "time", "arguments": {}}</tool_call>';
    expect(accepts(g, `a ${one}`)).toBe(true);
    expect(accepts(g, `a ${one} b`)).toBe(false);
  });
});

describe('tool_choice "auto" over HTTP (--tool-call-parser pythonic)', () => {
  const auto = useTinyServer('onnx', { maxModelLen: 512 }, { toolCallParser: 'pythonic' });

  it('refuses a strict tool, whose calls it could not guide', async () => {
    const strict = await auto().post(
      '/v1/chat/completions',
      chat({ tools: [{ type: 'function', function: { name: 'ping', strict: true } }] }),
    );
    expect(strict.status).toBe(400);
    expect(strict.body.error.param).toBe('tools[0].function.strict');
    expect(strict.body.error.message).toMatch(/pythonic/);
  });

  it("answers calls alone with content null, as vLLM's parsers do", async () => {
    const body = chat({ tools: TOOLS, guided_regex: "\\[weather\\(city='Oslo'\\), ping\\(\\)\\]" });
    const res = await auto().post('/v1/chat/completions', body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [choice] = res.body.choices;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls.map((c: Call) => c.function)).toEqual([
      { name: 'weather', arguments: '{"city": "Oslo"}' },
      { name: 'ping', arguments: '{}' },
    ]);
    for (const call of choice.message.tool_calls) expectValidCall(call);
    const { content, calls, finish } = await collect(
      await auto().client.chat.completions.create({ ...body, stream: true } as never),
    );
    expect(content).toBe('');
    expect(calls.map((c) => c.function)).toEqual(choice.message.tool_calls.map((c: Call) => c.function));
    expect(finish).toBe('tool_calls');
  });
});

describe('strict tools under tool_choice "auto" (llama3_json): the guide', () => {
  const call = (name: string, args: string) => `{"name": "${name}", "parameters": ${args}}`;

  it('is calls from the first brace, each of a listed tool, a strict one by its schema; or text that is not', () => {
    const g = strictGrammarOf('llama3_json', true);
    for (const ok of [
      call('weather', '{"city": "Oslo"}'),
      ` ${call('time', '{"zone": [1]}')}; ${call('weather', '{"city": "Paris"}')}\n`,
      'The weather is fine.',
      '',
      '<|python',
      'a {"name": "weather"}',
    ])
      expect(accepts(g, ok), ok).toBe(true);
    for (const bad of [
      call('weather', '{"city": "Rome"}'),
      call('news', '{}'),
      '{"arguments": {}, "name": "time"}',
      '  {not a call',
      '<|python_tag|>{}',
    ])
      expect(accepts(g, bad), bad).toBe(false);
    const one = strictGrammarOf('llama3_json', false);
    expect(accepts(one, `${call('time', '{}')}; ${call('time', '{}')}`)).toBe(false);
    expect(accepts(one, call('time', '{}'))).toBe(true);
  });

  it('what it lets through, the parser reads as the model meant: calls that parse, or text', () => {
    expectGuidedCallsRead('llama3_json', call('weather', '{"city": "Oslo"}'), (text) =>
      text.trimStart().startsWith('{') ? 1 : 0,
    );
  });
});
