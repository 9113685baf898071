import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { BOS, fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();
const { start, post } = fake;
const packageVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

describe('/ping and /version', () => {
  it('answers /ping 503 while starting, 200 while serving, 503 while draining, for GET and POST', async () => {
    fake.app = buildApp();
    for (const method of ['GET', 'POST'] as const)
      expect((await fake.app.inject({ method, url: '/ping' })).statusCode).toBe(503);
    fake.app.loom.attach(fakeStack());
    for (const method of ['GET', 'POST'] as const) {
      const res = await fake.app.inject({ method, url: '/ping' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('');
    }
    fake.app.loom.beginDraining();
    expect((await fake.app.inject('/ping')).statusCode).toBe(503);
  });

  it('answers /ping 503 once the engine has failed', async () => {
    const stack = start();
    stack.scheduler.health = () => ({ clientMessage: 'device lost' }) as never;
    expect((await fake.app.inject('/ping')).statusCode).toBe(503);
  });

  it('reports the generation requests in flight on /load, streams included', async () => {
    const stack = start();
    stack.scheduler.tokenDelayMs = 50;
    expect((await fake.app.inject('/load')).json()).toEqual({ server_load: 0 });
    const body = { model: 'tiny-base', prompt: 'hi', max_tokens: 4 };
    const running = [post('/v1/completions', body), post('/v1/completions', { ...body, stream: true })];
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await fake.app.inject('/load')).json()).toEqual({ server_load: 2 });
    await Promise.all(running);
    expect((await fake.app.inject('/load')).json()).toEqual({ server_load: 0 });
  });

  it("reports package.json's version", async () => {
    start();
    const res = await fake.app.inject('/version');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ version: packageVersion });
  });
});

describe('GET /v1/models/{id}', () => {
  it("returns the base model's card and an adapter's card, the same as the list's", async () => {
    start();
    const list = (await fake.app.inject('/v1/models')).json().data;
    const base = await fake.app.inject('/v1/models/tiny-base');
    expect(base.statusCode).toBe(200);
    expect(base.json()).toEqual(list[0]);
    const adapter = await fake.app.inject('/v1/models/ad-b');
    expect(adapter.json()).toEqual(list[2]);
    expect(adapter.json()).toMatchObject({ id: 'ad-b', parent: 'tiny-base' });
  });

  it('answers an unknown id with an OpenAI 404 that echoes a truncated name', async () => {
    start();
    const long = 'x'.repeat(100_000);
    const res = await fake.app.inject(`/v1/models/${long}`);
    expect(res.statusCode).toBe(404);
    const { error } = res.json();
    expect(error).toMatchObject({ type: 'not_found_error', code: 'model_not_found', param: 'model' });
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).toContain('100000 characters');
  });
});

describe('/tokenize and /detokenize (vLLM shapes)', () => {
  it('tokenizes a prompt with BOS by default and without it when add_special_tokens is false', async () => {
    start();
    const withBos = await post('/tokenize', { model: 'tiny-base', prompt: 'hi' });
    expect(withBos.statusCode).toBe(200);
    expect(withBos.json()).toEqual({
      count: 3,
      max_model_len: 64,
      tokens: [BOS, 104, 105],
      token_strs: null,
    });
    const bare = await post('/tokenize', { prompt: 'hi', add_special_tokens: false });
    expect(bare.json()).toEqual({ count: 2, max_model_len: 64, tokens: [104, 105], token_strs: null });
  });

  it("returns the tokens' vocabulary entries with return_token_strs, for prompts and messages", async () => {
    start();
    const prompt = await post('/tokenize', { prompt: 'hi', return_token_strs: true });
    expect(prompt.json().token_strs).toEqual(['<s>', '<0x68>', '<0x69>']);
    const off = await post('/tokenize', { prompt: 'hi', return_token_strs: false });
    expect(off.json().token_strs).toBeNull();
    const chat = await post('/tokenize', {
      messages: [{ role: 'user', content: 'yo' }],
      add_generation_prompt: false,
      return_token_strs: true,
    });
    expect(chat.json().token_strs).toHaveLength(chat.json().count);
  });

  it('tokenizes messages through the chat template, with the generation prompt unless turned off', async () => {
    start();
    const messages = [{ role: 'user', content: 'yo' }];
    const withPrompt = await post('/tokenize', { model: 'ad-a', messages });
    const rendered = '<s>user: yo\nassistant:';
    expect(withPrompt.json().tokens).toEqual([...Buffer.from(rendered)]);
    const without = await post('/tokenize', { model: 'ad-a', messages, add_generation_prompt: false });
    expect(without.json().tokens).toEqual([...Buffer.from('<s>user: yo\n')]);
    const special = await post('/tokenize', { messages, add_special_tokens: true });
    expect(special.json().tokens).toEqual([BOS, ...Buffer.from(rendered)]);
  });

  it('counts a prompt longer than the context (as vLLM does) but refuses text past the cheap bound', async () => {
    start({ maxModelLen: 8 });
    // 8 characters pass the text bound (8 tokens × 1 character), BOS makes them 9 tokens.
    const res = await post('/tokenize', { prompt: 'abcdefgh' });
    expect(res.json()).toMatchObject({ count: 9, max_model_len: 8 });
    const huge = await post('/tokenize', { prompt: 'a'.repeat(10_000) });
    expect(huge.statusCode).toBe(400);
    expect(huge.json().error.param).toBe('prompt');
  });

  it('refuses unknown models, unknown fields, and a body with neither prompt nor messages', async () => {
    start();
    const unknown = await post('/tokenize', { model: 'nope', prompt: 'hi' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('model_not_found');
    const extra = await post('/tokenize', { prompt: 'hi', return_offsets: true });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().error.message).toContain('return_offsets');
    expect((await post('/tokenize', { model: 'tiny-base' })).statusCode).toBe(400);
    const noTemplate = fakeStack({ hasChatTemplate: false });
    await fake.app.close();
    fake.app = buildApp({ stack: noTemplate });
    const chat = await post('/tokenize', { messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.statusCode).toBe(400);
    expect(chat.json().error.code).toBe('chat_template_missing');
  });

  it("answers LoRAX's form (inputs) with each token's id, entry and character span, and LoRAX's errors", async () => {
    start();
    const res = await post('/tokenize', { inputs: 'hé' });
    expect(res.statusCode).toBe(200);
    // BOS spans nothing; é is two byte tokens, each spanning the one character.
    expect(res.json()).toEqual([
      { id: BOS, text: '<s>', start: 0, stop: 0 },
      { id: 104, text: '<0x68>', start: 0, stop: 1 },
      { id: 0xc3, text: '<0xC3>', start: 1, stop: 2 },
      { id: 0xa9, text: '<0xA9>', start: 1, stop: 2 },
    ]);
    const bare = await post('/tokenize', { inputs: 'h', add_special_tokens: false });
    expect(bare.json()).toEqual([{ id: 104, text: '<0x68>', start: 0, stop: 1 }]);
    const bad = await post('/tokenize', { inputs: 'h', parameters: {} });
    expect(bad.statusCode).toBe(422);
    expect(bad.json()).toMatchObject({ error_type: 'validation' });
    expect(bad.json().error).toContain('parameters');
  });

  it('detokenizes with special tokens written out, so tokenize → detokenize round-trips', async () => {
    start();
    const { tokens } = (await post('/tokenize', { prompt: 'héllo' })).json();
    const res = await post('/detokenize', { model: 'tiny-base', tokens });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ prompt: '<s>héllo' });
  });

  it('refuses out-of-vocabulary ids and unknown models on /detokenize', async () => {
    start();
    const oov = await post('/detokenize', { tokens: [1, 9999] });
    expect(oov.statusCode).toBe(400);
    expect(oov.json().error).toMatchObject({ param: 'tokens' });
    expect(oov.json().error.message).toContain('9999');
    expect((await post('/detokenize', { model: 'nope', tokens: [1] })).statusCode).toBe(404);
    expect((await post('/detokenize', { tokens: 'abc' })).statusCode).toBe(400);
  });
});

describe("vLLM's request ids", () => {
  const chat = { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 };
  const completion = { model: 'tiny-base', prompt: 'hi', max_tokens: 3 };

  it('makes the response id from request_id, the X-Request-Id header over it', async () => {
    start();
    expect((await post('/v1/chat/completions', { ...chat, request_id: 'abc' })).json().id).toBe(
      'chatcmpl-abc',
    );
    expect((await post('/v1/completions', { ...completion, request_id: 'abc' })).json().id).toBe('cmpl-abc');
    const res = await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { ...completion, request_id: 'abc' },
      headers: { 'x-request-id': 'from-header' },
    });
    expect(res.json().id).toBe('cmpl-from-header');
    expect((await post('/v1/completions', completion)).json().id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect((await post('/v1/completions', { ...completion, request_id: 'x'.repeat(257) })).statusCode).toBe(
      400,
    );
  });

  it('serves two requests of one id at once, each its own generation', async () => {
    const stack = start();
    const answers = await Promise.all([
      post('/v1/completions', { ...completion, request_id: 'same' }),
      post('/v1/completions', { ...completion, request_id: 'same', stream: true }),
    ]);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200]);
    const ids = stack.scheduler.submitted.map((r) => r.requestId);
    expect(new Set(ids).size).toBe(2);
    for (const id of ids) expect(id.startsWith('cmpl-same-')).toBe(true);
  });

  it('answers X-Request-Id on every response with --enable-request-id-headers, and not without', async () => {
    fake.app = buildApp({ stack: fakeStack(), requestIdHeaders: true });
    const echoed = await fake.app.inject({ url: '/v1/models', headers: { 'x-request-id': 'trace-1' } });
    expect(echoed.headers['x-request-id']).toBe('trace-1');
    expect((await fake.app.inject('/v1/models')).headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
    await fake.app.close();
    fake.app = buildApp({ stack: fakeStack() });
    expect((await fake.app.inject('/v1/models')).headers['x-request-id']).toBeUndefined();
  });
});
