import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { AdmissionError } from '../../scheduler/request.js';
import { buildApp } from '../../server/app.js';
import { BOS, fakeStack, fakeText } from './fake-stack.js';

let app: FastifyInstance;

afterEach(async () => {
  await app?.close();
});

function start(options: Parameters<typeof fakeStack>[0] = {}) {
  const stack = fakeStack(options);
  app = buildApp({ stack });
  return stack;
}

function post(url: string, payload: unknown) {
  return app.inject({ method: 'POST', url, payload: payload as object });
}

function sseEvents(body: string): string[] {
  return body
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      expect(frame.startsWith('data: ')).toBe(true);
      return frame.slice('data: '.length);
    });
}

describe('routes over a fake stack', () => {
  it('answers /health 503 while starting and 200 once a stack is attached', async () => {
    app = buildApp();
    expect((await app.inject('/health')).statusCode).toBe(503);
    const models = await app.inject('/v1/models');
    expect(models.statusCode).toBe(503);
    expect(models.json().error.code).toBe('server_starting');
    app.loom.attach(fakeStack());
    expect((await app.inject('/health')).statusCode).toBe(200);
  });

  it('lists the base model and each adapter in vLLM shape', async () => {
    start();
    const res = await app.inject('/v1/models');
    expect(res.json()).toEqual({
      object: 'list',
      data: [
        expect.objectContaining({
          id: 'tiny-base',
          object: 'model',
          owned_by: 'loom',
          root: '/models/tiny-base',
          parent: null,
          max_model_len: 64,
          permission: [],
        }),
        expect.objectContaining({ id: 'ad-a', root: '/adapters/a', parent: 'tiny-base' }),
        expect.objectContaining({ id: 'ad-b', root: '/adapters/b', parent: 'tiny-base' }),
      ],
    });
  });

  it('completes a string prompt for an adapter and maps every sampling field', async () => {
    const stack = start();
    const res = await post('/v1/completions', {
      model: 'ad-a',
      prompt: 'hi',
      max_tokens: 5,
      temperature: 0.5,
      top_p: 0.9,
      top_k: -1,
      seed: 7,
      stop: 'zz',
      stop_token_ids: [3],
      ignore_eos: true,
      user: 'u',
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.object).toBe('text_completion');
    expect(body.model).toBe('ad-a');
    const prompt = [BOS, 104, 105];
    expect(body.choices).toEqual([
      { index: 0, text: fakeText('ad-a', prompt, 5), logprobs: null, finish_reason: 'length' },
    ]);
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    const sent = stack.scheduler.submitted[0];
    expect(sent.adapter).toBe('ad-a');
    expect(sent.promptTokens).toEqual(prompt);
    expect(sent.sampling).toEqual({
      maxTokens: 5,
      temperature: 0.5,
      topP: 0.9,
      topK: 0,
      seed: 7,
      stop: ['zz'],
      stopTokenIds: [3],
      ignoreEos: true,
      n: 1,
    });
  });

  it('takes token ids and a list of one prompt; defaults max_tokens to 16', async () => {
    const stack = start();
    expect((await post('/v1/completions', { model: 'tiny-base', prompt: [1, 2, 3] })).statusCode).toBe(200);
    expect((await post('/v1/completions', { model: 'tiny-base', prompt: ['ab'] })).statusCode).toBe(200);
    expect((await post('/v1/completions', { model: 'tiny-base', prompt: [[4, 5]] })).statusCode).toBe(200);
    const [ids, list, nested] = stack.scheduler.submitted;
    expect(ids.promptTokens).toEqual([1, 2, 3]);
    expect(ids.adapter).toBeNull();
    expect(ids.sampling.maxTokens).toBe(16);
    expect(list.promptTokens).toEqual([BOS, 97, 98]);
    expect(nested.promptTokens).toEqual([4, 5]);
  });

  it('renders chat through the template without adding special tokens, n choices', async () => {
    const stack = start();
    const res = await post('/v1/chat/completions', {
      model: 'ad-b',
      messages: [
        { role: 'developer', content: 'be brief' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'hel' },
            { type: 'text', text: 'lo' },
          ],
        },
      ],
      max_completion_tokens: 3,
      n: 2,
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.object).toBe('chat.completion');
    expect(body.choices).toHaveLength(2);
    expect(body.choices[1]).toMatchObject({
      index: 1,
      message: { role: 'assistant' },
      finish_reason: 'length',
    });
    const rendered = '<s>system: be brief\nuser: hello\nassistant:';
    expect(stack.scheduler.submitted[0].promptTokens).toEqual([...Buffer.from(rendered)]);
    expect(body.usage.completion_tokens).toBe(6);
  });

  it('streams completions as SSE with a usage chunk and [DONE]', async () => {
    start();
    const res = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: 'x',
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = sseEvents(res.body);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(
      chunks
        .slice(0, 3)
        .map((c) => c.choices[0].text)
        .join(''),
    ).toBe(fakeText(null, [BOS, 120], 3));
    expect(chunks[2].choices[0].finish_reason).toBe('length');
    expect(chunks[3]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
  });

  it('streams chat with a role chunk first', async () => {
    start();
    const res = await post('/v1/chat/completions', {
      model: 'tiny-base',
      messages: [{ role: 'user', content: 'q' }],
      max_tokens: 2,
      stream: true,
    });
    const chunks = sseEvents(res.body)
      .slice(0, -1)
      .map((e) => JSON.parse(e));
    expect(chunks[0].object).toBe('chat.completion.chunk');
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
  });

  it('answers an overloaded scheduler with 503 and Retry-After', async () => {
    const stack = start();
    stack.scheduler.refuseWith = new AdmissionError('queue full', 2);
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: 'x', stream: true });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.json().error).toMatchObject({ type: 'server_error', code: 'server_overloaded' });
  });

  it('answers 503 once closing begins', async () => {
    start();
    app.loom.beginClosing();
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: 'x' });
    expect(res.statusCode).toBe(503);
    expect((await app.inject('/health')).statusCode).toBe(503);
  });
});

const chat = (extra: object) => ({
  model: 'tiny-base',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});
const cmpl = (extra: object) => ({ model: 'tiny-base', prompt: 'hi', ...extra });

const badRequests: [string, string, unknown, number, string | null][] = [
  ['unknown model', '/v1/completions', cmpl({ model: 'nope' }), 404, 'model'],
  ['missing prompt', '/v1/completions', { model: 'tiny-base' }, 400, 'prompt'],
  ['missing model', '/v1/chat/completions', { messages: [] }, 400, 'model'],
  ['max_tokens 0', '/v1/completions', cmpl({ max_tokens: 0 }), 400, 'max_tokens'],
  ['max_tokens as a string', '/v1/completions', cmpl({ max_tokens: '5' }), 400, 'max_tokens'],
  ['prompt + max_tokens past max_model_len', '/v1/completions', cmpl({ max_tokens: 62 }), 400, 'max_tokens'],
  ['prompt past the context', '/v1/completions', cmpl({ prompt: 'x'.repeat(70) }), 400, 'prompt'],
  ['empty prompt', '/v1/completions', cmpl({ prompt: '' }), 400, 'prompt'],
  ['empty token prompt', '/v1/completions', cmpl({ prompt: [] }), 400, 'prompt'],
  ['two prompts', '/v1/completions', cmpl({ prompt: ['a', 'b'] }), 400, 'prompt'],
  ['token id out of vocabulary', '/v1/completions', cmpl({ prompt: [1, 999] }), 400, 'prompt'],
  ['prompt of wrong type', '/v1/completions', cmpl({ prompt: 5 }), 400, 'prompt'],
  ['empty messages', '/v1/chat/completions', chat({ messages: [] }), 400, 'messages'],
  [
    'unknown role',
    '/v1/chat/completions',
    chat({ messages: [{ role: 'wizard', content: 'x' }] }),
    400,
    'messages[0].role',
  ],
  [
    'message without role',
    '/v1/chat/completions',
    chat({ messages: [{ content: 'x' }] }),
    400,
    'messages[0].role',
  ],
  [
    'image content',
    '/v1/chat/completions',
    chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }),
    400,
    'messages[0].content[0].type',
  ],
  ['empty stop string', '/v1/completions', cmpl({ stop: '' }), 400, 'stop'],
  ['empty stop in a list', '/v1/completions', cmpl({ stop: ['a', ''] }), 400, 'stop[1]'],
  [
    'too many stops',
    '/v1/completions',
    cmpl({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }),
    400,
    'stop',
  ],
  ['stop of wrong type', '/v1/completions', cmpl({ stop: 3 }), 400, 'stop'],
  ['n = 0', '/v1/completions', cmpl({ n: 0 }), 400, 'n'],
  ['n beyond max-num-seqs', '/v1/chat/completions', chat({ n: 9 }), 400, 'n'],
  ['negative temperature', '/v1/completions', cmpl({ temperature: -0.1 }), 400, 'temperature'],
  ['top_p 0', '/v1/completions', cmpl({ top_p: 0 }), 400, 'top_p'],
  ['top_p above 1', '/v1/chat/completions', chat({ top_p: 1.5 }), 400, 'top_p'],
  ['completion logprobs', '/v1/completions', cmpl({ logprobs: 2 }), 400, 'logprobs'],
  ['chat logprobs', '/v1/chat/completions', chat({ logprobs: true }), 400, 'logprobs'],
  ['stream of wrong type', '/v1/chat/completions', chat({ stream: 'yes' }), 400, 'stream'],
  [
    'include_usage of wrong type',
    '/v1/chat/completions',
    chat({ stream_options: { include_usage: 1 } }),
    400,
    'stream_options.include_usage',
  ],
  [
    'stop token out of vocabulary',
    '/v1/completions',
    cmpl({ stop_token_ids: [5000] }),
    400,
    'stop_token_ids',
  ],
  ['frequency penalty', '/v1/completions', cmpl({ frequency_penalty: 0.5 }), 400, 'frequency_penalty'],
  [
    'tools',
    '/v1/chat/completions',
    chat({ tools: [{ type: 'function', function: { name: 'f' } }] }),
    400,
    'tools',
  ],
  [
    'json mode',
    '/v1/chat/completions',
    chat({ response_format: { type: 'json_object' } }),
    400,
    'response_format',
  ],
  [
    'stream_options without stream',
    '/v1/completions',
    cmpl({ stream_options: { include_usage: true } }),
    400,
    'stream_options',
  ],
  ['body that is an array', '/v1/completions', [1, 2], 400, null],
];

describe('bad requests get OpenAI error JSON with the right 4xx', () => {
  it.each(badRequests)('%s', async (_name, url, payload, status, param) => {
    const stack = start();
    const res = await post(url, payload);
    expect(res.statusCode).toBe(status);
    const { error } = res.json();
    expect(error).toMatchObject({
      param,
      type: status === 404 ? 'not_found_error' : 'invalid_request_error',
    });
    expect(typeof error.message).toBe('string');
    expect(typeof error.code).toBe('string');
    expect(stack.scheduler.submitted).toHaveLength(0);
    expect((await post('/v1/completions', cmpl({ max_tokens: 1 }))).statusCode).toBe(200);
  });

  it('says the numbers when the context is exceeded', async () => {
    start();
    const res = await post('/v1/completions', cmpl({ max_tokens: 62 }));
    expect(res.json().error.message).toContain(
      'maximum context length is 64 tokens. However, you requested 65 tokens (3 in the prompt, 62 in the completion)',
    );
  });

  it('rejects malformed JSON, a chat without template and an unknown route', async () => {
    start({ hasChatTemplate: false });
    const malformed = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      headers: { 'content-type': 'application/json' },
      payload: '{"model": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.type).toBe('invalid_request_error');
    const noTemplate = await post('/v1/chat/completions', chat({}));
    expect(noTemplate.statusCode).toBe(400);
    expect(noTemplate.json().error.message).toContain('no chat template');
    const unknown = await app.inject('/v1/engines');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('unknown_url');
  });
});

describe('shutdown', () => {
  it('ends open event streams with a shutdown error and [DONE], then closes', async () => {
    const stack = start();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    const res = await fetch(`http://127.0.0.1:${address.port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: 'x', max_tokens: 60, stream: true }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let body = decoder.decode((await reader.read()).value);
    expect(app.loom.numOpenStreams).toBe(1);
    const closed = app.close();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      body += decoder.decode(chunk.value);
    await closed;
    const events = sseEvents(body);
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).error.code).toBe('server_shutting_down');
    expect(stack.scheduler.live.size).toBe(0);
    expect(stack.scheduler.isClosed).toBe(true);
  });
});

describe('/metrics', () => {
  it('reports pool pages, sequences and HTTP answers in Prometheus text', async () => {
    start();
    await post('/v1/completions', cmpl({ max_tokens: 2 }));
    await post('/v1/completions', cmpl({ model: 'nope' }));
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toContain('loom_pool_pages{use="free"} 15');
    expect(res.body).toContain('loom_pool_pages{use="kv"} 0');
    expect(res.body).toContain('loom_sequences{state="running"} 0');
    expect(res.body).toContain('loom_http_responses_total{route="/v1/completions",status="200"} 1');
    expect(res.body).toContain('loom_http_responses_total{route="/v1/completions",status="404"} 1');
  });
});
