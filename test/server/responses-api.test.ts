import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * POST /v1/responses on the real stack (onnx engine, the tiny model): the same generation as chat
 * completions for the same conversation, as a response object or its typed event stream, read
 * by the official openai client too; what Loom does not keep or run is refused by name.
 */
const server = useTinyServer('onnx', { maxModelLen: 512 });

const greedy = { model: TINY_MODEL_NAME, temperature: 0, max_output_tokens: 12 };

// biome-ignore lint/suspicious/noExplicitAny: response objects and events are read as JSON
type Json = any;

/** The text of a response's message items. */
function outputText(response: Json): string {
  return response.output
    .filter((item: Json) => item.type === 'message')
    .flatMap((item: Json) => item.content.map((part: Json) => part.text))
    .join('');
}

/** A streamed response's events, read with the openai client. */
async function streamedEvents(body: object): Promise<Json[]> {
  const stream = await server().client.responses.create({ ...body, stream: true } as never);
  const events: Json[] = [];
  for await (const event of stream as unknown as AsyncIterable<Json>) events.push(event);
  return events;
}

describe('POST /v1/responses', () => {
  it('answers what chat completions answers for the same conversation, with usage and status', async () => {
    const response = await server().client.responses.create({
      ...greedy,
      instructions: 'Be brief.',
      input: 'Hello there',
    });
    const chat = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_tokens: 12,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello there' },
      ],
    });
    expect(response.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(response.object).toBe('response');
    expect(response.output_text).toBe(chat.body.choices[0].message.content);
    expect(response.output[0]).toMatchObject({ type: 'message', role: 'assistant' });
    expect(response.status).toBe(
      chat.body.choices[0].finish_reason === 'length' ? 'incomplete' : 'completed',
    );
    if (response.status === 'incomplete')
      expect(response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(response.usage).toMatchObject({
      input_tokens: chat.body.usage.prompt_tokens,
      output_tokens: chat.body.usage.completion_tokens,
      total_tokens: chat.body.usage.total_tokens,
    });
    expect(response).toMatchObject({ instructions: 'Be brief.', store: false, temperature: 0, tools: [] });
  });

  it('streams typed events in sequence whose deltas add up to the final response', async () => {
    const body = { ...greedy, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }] };
    const whole = await server().post('/v1/responses', body);
    const events = await streamedEvents(body);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
    ]);
    expect(types.slice(-4)).toEqual([
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      `response.${whole.body.status}`,
    ]);
    const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
    const final = events[events.length - 1].response;
    expect(deltas.join('')).toBe(outputText(final));
    expect(outputText(final)).toBe(outputText(whole.body));
    // The second run of one prompt finds it in the prefix cache: only cached_tokens differ.
    expect({ ...final.usage, input_tokens_details: null }).toEqual({
      ...whole.body.usage,
      input_tokens_details: null,
    });
    expect(events[0].response).toMatchObject({ status: 'in_progress', output: [], usage: null });
  });

  it('reads earlier function calls and their outputs as the chat turns they are', async () => {
    const tools = [{ type: 'function', name: 'ping', parameters: { type: 'object', properties: {} } }];
    const response = await server().post('/v1/responses', {
      ...greedy,
      tools,
      tool_choice: 'none',
      input: [
        { role: 'user', content: 'Ping it' },
        { type: 'function_call', call_id: 'call_1', name: 'ping', arguments: '{}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'pong' },
      ],
    });
    const chat = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_tokens: 12,
      tools: [
        { type: 'function', function: { name: 'ping', parameters: { type: 'object', properties: {} } } },
      ],
      tool_choice: 'none',
      messages: [
        { role: 'user', content: 'Ping it' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'ping', arguments: '{}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'pong' },
      ],
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(outputText(response.body)).toBe(chat.body.choices[0].message.content);
    expect(response.body.usage.input_tokens).toBe(chat.body.usage.prompt_tokens);
  });

  it('a named function is a function_call item, streamed as argument deltas that add up', async () => {
    const body = {
      model: TINY_MODEL_NAME,
      input: 'Weather?',
      max_output_tokens: 60,
      tools: [
        {
          type: 'function',
          name: 'weather',
          parameters: {
            type: 'object',
            properties: { city: { enum: ['Paris', 'Oslo'] } },
            required: ['city'],
          },
        },
      ],
      tool_choice: { type: 'function', name: 'weather' },
      seed: 3,
    };
    const whole = await server().post('/v1/responses', body);
    expect(whole.status, JSON.stringify(whole.body)).toBe(200);
    const [call] = whole.body.output;
    expect(call).toMatchObject({ type: 'function_call', name: 'weather', status: 'completed' });
    expect(['Paris', 'Oslo']).toContain(JSON.parse(call.arguments).city);
    const events = await streamedEvents(body);
    const args = events
      .filter((e) => e.type === 'response.function_call_arguments.delta')
      .map((e) => e.delta);
    const done = events.find((e) => e.type === 'response.function_call_arguments.done');
    expect(args.join('')).toBe(done.arguments);
    expect(done.arguments).toBe(call.arguments);
  });

  it('text.format json_schema shapes the text; include logprobs scores each token', async () => {
    const shaped = await server().post('/v1/responses', {
      model: TINY_MODEL_NAME,
      input: 'Pick',
      max_output_tokens: 40,
      text: {
        format: {
          type: 'json_schema',
          name: 'pick',
          schema: { type: 'object', properties: { a: { enum: ['x', 'y'] } }, required: ['a'] },
        },
      },
    });
    expect(shaped.status, JSON.stringify(shaped.body)).toBe(200);
    expect(['x', 'y']).toContain(JSON.parse(outputText(shaped.body)).a);
    const scored = await server().post('/v1/responses', {
      ...greedy,
      input: 'Hi',
      include: ['message.output_text.logprobs'],
      top_logprobs: 2,
    });
    const part = scored.body.output[0].content[0];
    expect(part.logprobs).toHaveLength(scored.body.usage.output_tokens);
    expect(part.logprobs.map((l: Json) => l.token).join('')).toBe(part.text);
    for (const entry of part.logprobs) expect(entry.top_logprobs).toHaveLength(2);
  });

  it('refuses by name what Loom does not keep or run, and keeps serving', async () => {
    const refusals: Array<[object, string]> = [
      [{ store: true }, 'store'],
      [{ previous_response_id: 'resp_1' }, 'previous_response_id'],
      [{ background: true }, 'background'],
      // The tiny model's template never reads reasoning_effort; summaries are not written.
      [{ reasoning: { effort: 'low' } }, 'reasoning_effort'],
      [{ reasoning: { summary: 'auto' } }, 'reasoning.summary'],
      [{ reasoning: { effort: 'minimal' } }, 'reasoning.effort'],
      [{ include: ['file_search_call.results'] }, 'include'],
      [{ tools: [{ type: 'web_search' }] }, 'tools[0].type'],
      [
        { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] },
        'input[0].content[0].type',
      ],
      [{ input: [{ type: 'item_reference', id: 'rs_1' }] }, 'input[0].type'],
      [{ top_logprobs: 2 }, 'top_logprobs'],
      [
        {
          text: { format: { type: 'json_schema', name: 'x', schema: {} } },
          structured_outputs: { json: {} },
        },
        'text.format',
      ],
      [{ tool_choice: { type: 'file_search' } }, 'tool_choice'],
      [{ nonsense: 1 }, 'nonsense'],
    ];
    for (const [extra, param] of refusals) {
      const res = await server().post('/v1/responses', { ...greedy, input: 'Hi', ...extra });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(res.body.error.param, JSON.stringify(res.body)).toBe(param);
    }
    expect((await server().post('/v1/responses', { ...greedy, input: 'Hi', store: false })).status).toBe(200);
  });
});

describe('stored responses (--max-stored-responses)', () => {
  const stored = useTinyServer('onnx', { maxModelLen: 512 }, { maxStoredResponses: 2 });

  it('previous_response_id continues the stored conversation as chat would, without its instructions', async () => {
    const first = await stored().post('/v1/responses', {
      ...greedy,
      instructions: 'Be brief.',
      input: 'My name is Ann.',
    });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.store).toBe(true);
    expect((await stored().client.responses.retrieve(first.body.id)).output).toEqual(first.body.output);
    const second = await stored().client.responses.create({
      ...greedy,
      previous_response_id: first.body.id,
      input: 'What is my name?',
    });
    expect(second.previous_response_id).toBe(first.body.id);
    const chat = await stored().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_tokens: 12,
      messages: [
        { role: 'user', content: 'My name is Ann.' },
        { role: 'assistant', content: outputText(first.body) },
        { role: 'user', content: 'What is my name?' },
      ],
    });
    expect(second.usage?.input_tokens).toBe(chat.body.usage.prompt_tokens);
    expect(second.output_text).toBe(chat.body.choices[0].message.content);
  });

  it('keeps the newest, forgets on delete, and stores what a stream ended with', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await stored().post('/v1/responses', { ...greedy, input: `n${i}` })).body.id);
    expect((await stored().app.inject({ method: 'GET', url: `/v1/responses/${ids[0]}` })).statusCode).toBe(
      404,
    );
    expect((await stored().app.inject({ method: 'GET', url: `/v1/responses/${ids[2]}` })).statusCode).toBe(
      200,
    );
    const deleted = await stored().app.inject({ method: 'DELETE', url: `/v1/responses/${ids[2]}` });
    expect(deleted.json()).toEqual({ id: ids[2], object: 'response', deleted: true });
    expect((await stored().app.inject({ method: 'GET', url: `/v1/responses/${ids[2]}` })).statusCode).toBe(
      404,
    );

    const unknown = await stored().post('/v1/responses', {
      ...greedy,
      input: 'x',
      previous_response_id: 'resp_gone',
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.param).toBe('previous_response_id');
    const unstored = await stored().post('/v1/responses', { ...greedy, input: 'x', store: false });
    expect(unstored.body.store).toBe(false);
    expect(
      (await stored().app.inject({ method: 'GET', url: `/v1/responses/${unstored.body.id}` })).statusCode,
    ).toBe(404);

    const stream = await stored().client.responses.create({ ...greedy, input: 'streamed', stream: true });
    let last: Json = null;
    for await (const event of stream as unknown as AsyncIterable<Json>) last = event;
    const kept = await stored().app.inject({ method: 'GET', url: `/v1/responses/${last.response.id}` });
    expect(kept.json()).toEqual(last.response);
  });
});

describe('tool_choice "auto" on /v1/responses (--tool-call-parser hermes)', () => {
  const auto = useTinyServer('onnx', { maxModelLen: 512 }, { toolCallParser: 'hermes' });
  // guided_regex is not a Responses field: structured_outputs.regex makes the tiny model write a call.
  const body = {
    model: TINY_MODEL_NAME,
    input: 'Ping?',
    max_output_tokens: 100,
    tools: [{ type: 'function', name: 'ping', parameters: { type: 'object', properties: {} } }],
    structured_outputs: { regex: 'On it\\.<tool_call>\\{"name": "ping", "arguments": \\{\\}\\}</tool_call>' },
  };

  it('answers the text as a message item and the call as a function_call item, streamed or whole alike', async () => {
    const whole = await auto().post('/v1/responses', body);
    expect(whole.status, JSON.stringify(whole.body)).toBe(200);
    expect(whole.body.output.map((item: Json) => item.type)).toEqual(['message', 'function_call']);
    expect(outputText(whole.body)).toBe('On it.');
    expect(whole.body.output[1]).toMatchObject({ name: 'ping', arguments: '{}', status: 'completed' });
    expect(whole.body.output[1].call_id).toMatch(/^chatcmpl-tool-[0-9a-f]{32}$/);
    const events = await auto().client.responses.create({ ...body, stream: true } as never);
    let last: Json = null;
    for await (const event of events as unknown as AsyncIterable<Json>) last = event;
    expect(last.type).toBe('response.completed');
    expect(
      last.response.output.map((item: Json) => [item.type, item.name ?? outputText({ output: [item] })]),
    ).toEqual([
      ['message', 'On it.'],
      ['function_call', 'ping'],
    ]);
  });

  it("streams a call's arguments while the model writes them, after its text", async () => {
    const withArguments = {
      ...body,
      structured_outputs: {
        regex: 'On it\\.<tool_call>\\{"name": "ping", "arguments": \\{"host": "a\\.b"\\}\\}</tool_call>',
      },
    };
    const whole = await auto().post('/v1/responses', withArguments);
    expect(whole.body.output[1]).toMatchObject({ name: 'ping', arguments: '{"host": "a.b"}' });
    const stream = await auto().client.responses.create({ ...withArguments, stream: true } as never);
    const events: Json[] = [];
    for await (const event of stream as unknown as AsyncIterable<Json>) events.push(event);
    const kinds = events.map((e) => e.type);
    const added = kinds.findIndex(
      (k, i) => k === 'response.output_item.added' && events[i].item.type === 'function_call',
    );
    const deltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
    expect(added).toBeGreaterThan(kinds.indexOf('response.output_text.done'));
    expect(deltas.length).toBeGreaterThan(3);
    expect(kinds.indexOf('response.function_call_arguments.delta')).toBeGreaterThan(added);
    expect(deltas.map((e) => e.delta).join('')).toBe('{"host": "a.b"}');
    expect(events.at(-1).response.output[1]).toMatchObject({ name: 'ping', arguments: '{"host": "a.b"}' });
  });
});

describe('input items of a stored response', () => {
  const stored = useTinyServer('onnx', { maxModelLen: 512 }, { maxStoredResponses: 2 });

  it('lists them newest first, in pages, with ids; asc in the order given', async () => {
    const input = [
      { role: 'user', content: 'Ping it' },
      { type: 'function_call', call_id: 'call_1', name: 'ping', arguments: '{}', id: 'fc_given' },
      { type: 'function_call_output', call_id: 'call_1', output: 'pong' },
      { role: 'user', content: [{ type: 'input_text', text: 'Thanks' }] },
    ];
    const tools = [{ type: 'function', name: 'ping', parameters: { type: 'object', properties: {} } }];
    const made = await stored().post('/v1/responses', { ...greedy, input, tools, tool_choice: 'none' });
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    const list = async (query: string) =>
      (
        await stored().app.inject({ method: 'GET', url: `/v1/responses/${made.body.id}/input_items${query}` })
      ).json();
    const all = await list('?order=asc');
    expect(all.data.map((item: Json) => item.type)).toEqual([
      'message',
      'function_call',
      'function_call_output',
      'message',
    ]);
    expect(all.data[0]).toMatchObject({
      role: 'user',
      content: [{ type: 'input_text', text: 'Ping it' }],
      status: 'completed',
    });
    expect(all.data[1].id).toBe('fc_given');
    expect(new Set(all.data.map((item: Json) => item.id)).size).toBe(4);
    const first = await list('?limit=2');
    expect(first.data.map((item: Json) => item.id)).toEqual([all.data[3].id, all.data[2].id]);
    expect(first).toMatchObject({
      object: 'list',
      has_more: true,
      first_id: all.data[3].id,
      last_id: all.data[2].id,
    });
    const rest = await list(`?limit=2&after=${first.last_id}`);
    expect(rest.data.map((item: Json) => item.id)).toEqual([all.data[1].id, all.data[0].id]);
    expect(rest.has_more).toBe(false);
    const bad = await stored().app.inject({
      method: 'GET',
      url: `/v1/responses/${made.body.id}/input_items?after=nope`,
    });
    expect(bad.statusCode).toBe(400);
  });
});

describe('background responses', () => {
  const stored = useTinyServer('onnx', { maxModelLen: 512 }, { maxStoredResponses: 8 });

  /** GET the response until it is no longer in progress. */
  async function settled(id: string): Promise<Json> {
    for (let i = 0; i < 200; i++) {
      const got = (await stored().app.inject({ method: 'GET', url: `/v1/responses/${id}` })).json();
      if (got.status !== 'in_progress') return got;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`response ${id} still in progress`);
  }

  it('answers at once, runs on, and GET gives what a foreground request answers', async () => {
    const started = await stored().post('/v1/responses', { ...greedy, input: 'Hello', background: true });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    expect(started.body).toMatchObject({ status: 'in_progress', background: true, output: [] });
    const done = await settled(started.body.id);
    const foreground = await stored().post('/v1/responses', { ...greedy, input: 'Hello', store: false });
    expect(done.status).toBe(foreground.body.status);
    expect(outputText(done)).toBe(outputText(foreground.body));
    expect(done.usage.output_tokens).toBe(foreground.body.usage.output_tokens);
  });

  it('cancel ends a running one; only background responses can be cancelled', async () => {
    const long = {
      model: TINY_MODEL_NAME,
      input: 'Go on',
      max_output_tokens: 450,
      ignore_eos: true,
      background: true,
    };
    const started = await stored().post('/v1/responses', long);
    const cancelled = await stored().post(`/v1/responses/${started.body.id}/cancel`, {});
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.usage.output_tokens).toBeLessThan(450);
    expect((await settled(started.body.id)).status).toBe('cancelled');
    expect(stored().app.loom.numInFlight).toBe(0);

    const foreground = await stored().post('/v1/responses', { ...greedy, input: 'Hi' });
    const refused = await stored().post(`/v1/responses/${foreground.body.id}/cancel`, {});
    expect(refused.status).toBe(400);
    for (const [extra, param] of [[{ store: false }, 'background']] as const) {
      const res = await stored().post('/v1/responses', {
        ...greedy,
        input: 'Hi',
        background: true,
        ...extra,
      });
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe(param);
    }
    const unkept = await server().post('/v1/responses', { ...greedy, input: 'Hi', background: true });
    expect(unkept.body.error.param).toBe('background');
  });

  /** A response's events, streamed by the openai client: created with `body`, or retrieved by id. */
  async function read(stream: unknown, stopAfter = Number.POSITIVE_INFINITY): Promise<Json[]> {
    const events: Json[] = [];
    for await (const event of stream as AsyncIterable<Json>) {
      events.push(event);
      if (events.length >= stopAfter) break;
    }
    return events;
  }

  it('background with stream: the events of a foreground stream, read again from any point by GET ?stream=true', async () => {
    const body = { ...greedy, input: 'Hello there' };
    const live = await read(
      await stored().client.responses.create({ ...body, background: true, stream: true } as never),
    );
    const foreground = await read(
      await stored().client.responses.create({ ...body, store: false, stream: true } as never),
    );
    expect(live.map((e) => e.sequence_number)).toEqual(live.map((_, i) => i));
    expect(live.map((e) => e.type)).toEqual(foreground.map((e) => e.type));
    const final = live[live.length - 1].response;
    const whole = foreground[foreground.length - 1].response;
    expect(final).toMatchObject({ status: whole.status, background: true });
    expect(outputText(final)).toBe(outputText(whole));
    const id = live[0].response.id;
    expect((await settled(id)).status).toBe(whole.status);
    // Resumed after event 3: the same events from 4 on; without starting_after, all of them.
    const resumed = await read(
      await stored().client.responses.retrieve(id, { stream: true, starting_after: 3 }),
    );
    expect(resumed).toEqual(live.slice(4));
    expect(await read(await stored().client.responses.retrieve(id, { stream: true }))).toEqual(live);
  });

  it('a client that leaves its background stream does not end the response; cancel ends it, its stream too', async () => {
    const long = { model: TINY_MODEL_NAME, input: 'Go on', max_output_tokens: 60, ignore_eos: true };
    const first = await read(
      await stored().client.responses.create({ ...long, background: true, stream: true } as never),
      1,
    );
    const id = first[0].response.id;
    const done = await settled(id);
    expect(done.status).toBe('incomplete');
    expect(done.usage.output_tokens).toBe(60);
    const all = await read(await stored().client.responses.retrieve(id, { stream: true }));
    expect(all[0]).toEqual(first[0]);
    expect(all[all.length - 1]).toMatchObject({
      type: 'response.incomplete',
      response: { id, status: 'incomplete' },
    });

    const running = await read(
      await stored().client.responses.create({
        ...long,
        max_output_tokens: 450,
        background: true,
        stream: true,
      } as never),
      2,
    );
    const runningId = running[0].response.id;
    const following = read(
      await stored().client.responses.retrieve(runningId, { stream: true, starting_after: 1 }),
    );
    const cancelled = await stored().post(`/v1/responses/${runningId}/cancel`, {});
    expect(cancelled.body.status).toBe('cancelled');
    // The follower's stream ends with the response, with no terminal event (OpenAI has none for a cancel).
    const followed = await following;
    expect(followed.every((e) => e.sequence_number > 1)).toBe(true);
    expect(followed.map((e) => e.type)).not.toContain('response.completed');
    expect(stored().app.loom.numInFlight).toBe(0);
  });

  it('GET ?stream=true only for a background stream; starting_after only with it', async () => {
    const foreground = await stored().post('/v1/responses', { ...greedy, input: 'Hi' });
    const id = foreground.body.id;
    const get = (query: string) =>
      stored().app.inject({ method: 'GET', url: `/v1/responses/${id}?${query}` });
    for (const [query, param] of [
      ['stream=true', 'stream'],
      ['starting_after=2', 'starting_after'],
    ] as const) {
      const res = await get(query);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error.param).toBe(param);
    }
    expect((await get('stream=maybe')).statusCode).toBe(400);
    expect((await get('include_obfuscation=true')).statusCode).toBe(400);
    expect((await get('stream=false')).json().id).toBe(id);
  });
});
