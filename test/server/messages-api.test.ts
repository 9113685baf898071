import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * POST /v1/messages (Anthropic's Messages API, as vLLM serves it) on the real stack: the same
 * generation as chat completions for the same conversation, as a message or Anthropic's event
 * stream; errors in Anthropic's shape; x-api-key accepted as Anthropic's SDKs send it.
 */
const server = useTinyServer('onnx', { maxModelLen: 512 }, { apiKey: 'sk-test' });

// biome-ignore lint/suspicious/noExplicitAny: answers are read as JSON
type Json = any;

const auth = { 'x-api-key': 'sk-test' };
const greedy = { model: TINY_MODEL_NAME, temperature: 0, max_tokens: 12 };

async function post(url: string, body: object, headers: Record<string, string> = auth) {
  const res = await server().app.inject({ method: 'POST', url, payload: body, headers });
  return { status: res.statusCode, body: res.json() as Json };
}

/** The same conversation through chat completions (Bearer auth, as OpenAI clients send it). */
async function chat(body: object) {
  return post('/v1/chat/completions', body, { authorization: 'Bearer sk-test' });
}

/** A streamed answer's events, read off the socket as Anthropic's SDK reads them. */
async function streamed(body: object): Promise<Array<{ event: string; data: Json }>> {
  const res = await fetch(`${server().baseURL}/messages`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  expect(res.status).toBe(200);
  return (await res.text())
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      const [eventLine, dataLine] = frame.split('\n');
      return { event: eventLine.replace(/^event: /, ''), data: JSON.parse(dataLine.replace(/^data: /, '')) };
    });
}

const text = (message: Json) =>
  message.content
    .filter((b: Json) => b.type === 'text')
    .map((b: Json) => b.text)
    .join('');

describe('POST /v1/messages', () => {
  it('answers what chat completions answers for the same conversation', async () => {
    const message = await post('/v1/messages', {
      ...greedy,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello there' }] }],
    });
    const same = await chat({
      ...greedy,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello there' },
      ],
    });
    expect(message.status, JSON.stringify(message.body)).toBe(200);
    expect(message.body).toMatchObject({ type: 'message', role: 'assistant', model: TINY_MODEL_NAME });
    expect(message.body.id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(text(message.body)).toBe(same.body.choices[0].message.content);
    expect(message.body.stop_reason).toBe(
      same.body.choices[0].finish_reason === 'length' ? 'max_tokens' : 'end_turn',
    );
    expect(message.body.usage).toEqual({
      input_tokens: same.body.usage.prompt_tokens,
      output_tokens: same.body.usage.completion_tokens,
    });
    const counted = await post('/v1/messages/count_tokens', {
      model: TINY_MODEL_NAME,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Hello there' }],
    });
    expect(counted.body).toEqual({ input_tokens: same.body.usage.prompt_tokens });
  });

  it('a stop sequence ends it with stop_reason stop_sequence', async () => {
    const body = { ...greedy, max_tokens: 30, messages: [{ role: 'user', content: 'Hi' }] };
    const free = text((await post('/v1/messages', body)).body);
    const stop = free.slice(4, 6);
    const stopped = await post('/v1/messages', { ...body, stop_sequences: [stop] });
    expect(stopped.body).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: stop });
    expect(text(stopped.body)).toBe(free.slice(0, free.indexOf(stop)));
  });

  it("streams Anthropic's events whose deltas add up to the whole answer", async () => {
    const body = { ...greedy, messages: [{ role: 'user', content: 'Hi' }] };
    const whole = await post('/v1/messages', body);
    const events = await streamed(body);
    expect(events.every((e) => e.event === e.data.type)).toBe(true);
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      ...Array(events.length - 5).fill('content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[0].data.message).toMatchObject({
      content: [],
      stop_reason: null,
      usage: { output_tokens: 0 },
    });
    expect(events.map((e) => e.data.delta?.text ?? '').join('')).toBe(text(whole.body));
    expect(events.at(-2)?.data).toEqual({
      type: 'message_delta',
      delta: { stop_reason: whole.body.stop_reason, stop_sequence: null },
      usage: { output_tokens: whole.body.usage.output_tokens },
    });
  });

  it('tools: a forced tool is a tool_use block; earlier tool_use and tool_result turns read as chat would', async () => {
    const weather = {
      name: 'weather',
      input_schema: { type: 'object', properties: { city: { enum: ['Paris', 'Oslo'] } }, required: ['city'] },
    };
    const forced = await post('/v1/messages', {
      model: TINY_MODEL_NAME,
      max_tokens: 60,
      tools: [weather],
      tool_choice: { type: 'tool', name: 'weather' },
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(forced.body.stop_reason).toBe('tool_use');
    const [call] = forced.body.content;
    expect(call).toMatchObject({ type: 'tool_use', name: 'weather' });
    expect(['Paris', 'Oslo']).toContain(call.input.city);

    const turns = await post('/v1/messages', {
      ...greedy,
      tools: [weather],
      tool_choice: { type: 'none' },
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Oslo' } }],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'Sunny' }] },
      ],
    });
    const same = await chat({
      ...greedy,
      tools: [{ type: 'function', function: { name: 'weather', parameters: weather.input_schema } }],
      tool_choice: 'none',
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'Sunny' },
      ],
    });
    expect(turns.status, JSON.stringify(turns.body)).toBe(200);
    expect(turns.body.usage.input_tokens).toBe(same.body.usage.prompt_tokens);
    expect(text(turns.body)).toBe(same.body.choices[0].message.content);
  });

  it("takes a tool's strict (Anthropic's structured tool use): forced, its input follows the schema", async () => {
    const weather = {
      name: 'weather',
      strict: true,
      input_schema: { type: 'object', properties: { city: { enum: ['Paris', 'Oslo'] } }, required: ['city'] },
    };
    const forced = await post('/v1/messages', {
      model: TINY_MODEL_NAME,
      max_tokens: 60,
      tools: [weather],
      tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(forced.body.content[0]).toMatchObject({ type: 'tool_use', name: 'weather' });
    const bad = await post('/v1/messages', {
      ...greedy,
      tools: [{ ...weather, strict: 'yes' }],
      messages: [],
    });
    expect(bad.status).toBe(400);
  });

  it("output_format (Anthropic's structured outputs): the answer's text is a document of the schema", async () => {
    const schema = {
      type: 'object',
      properties: { answer: { enum: ['yes', 'no'] }, sure: { type: 'boolean' } },
      required: ['answer', 'sure'],
      additionalProperties: false,
    };
    for (const temperature of [0, 1.2]) {
      const res = await post('/v1/messages', {
        ...greedy,
        temperature,
        max_tokens: 200,
        output_format: { type: 'json_schema', schema },
        messages: [{ role: 'user', content: 'Sure?' }],
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.stop_reason).toBe('end_turn');
      const value = JSON.parse(text(res.body));
      expect(Object.keys(value)).toEqual(['answer', 'sure']);
      expect(['yes', 'no']).toContain(value.answer);
    }
    const bad = await post('/v1/messages', { ...greedy, output_format: { type: 'xml' }, messages: [] });
    expect(bad.status).toBe(400);
  });

  it("answers errors in Anthropic's shape, and keeps serving", async () => {
    const cases: Array<[object, number, string, RegExp]> = [
      [{ max_tokens: undefined }, 400, 'invalid_request_error', /max_tokens/],
      [{ model: 'nope' }, 404, 'not_found_error', /nope/],
      [
        { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', data: '' } }] }] },
        400,
        'invalid_request_error',
        /image/,
      ],
      [{ thinking: { type: 'enabled', budget_tokens: 1024 } }, 400, 'invalid_request_error', /thinking/],
      [
        { tools: [{ name: 'search', type: 'web_search_20250305' }] },
        400,
        'invalid_request_error',
        /web_search/,
      ],
      [{ messages: [{ role: 'system', content: 'x' }] }, 400, 'invalid_request_error', /system/],
    ];
    for (const [extra, status, type, message] of cases) {
      const res = await post('/v1/messages', {
        ...greedy,
        messages: [{ role: 'user', content: 'Hi' }],
        ...extra,
      });
      expect(res.status, JSON.stringify(extra)).toBe(status);
      expect(res.body.type).toBe('error');
      expect(res.body.error.type).toBe(type);
      expect(res.body.error.message).toMatch(message);
    }
    const unauthorized = await post('/v1/messages', { ...greedy, messages: [] }, { 'x-api-key': 'wrong' });
    expect(unauthorized).toMatchObject({
      status: 401,
      body: { type: 'error', error: { type: 'authentication_error' } },
    });
    expect(
      (await post('/v1/messages', { ...greedy, messages: [{ role: 'user', content: 'Hi' }] })).status,
    ).toBe(200);
  });
});
