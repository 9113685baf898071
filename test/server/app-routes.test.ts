import { describe, expect, it } from 'vitest';
import { AdmissionError } from '../../scheduler/request.js';
import { buildApp } from '../../server/app.js';
import { TokenGuide } from '../../structured/token-guide.js';
import { fakeAppPerTest } from './fake-app.js';
import { BOS, fakeStack, fakeText, sseEvents } from './fake-stack.js';

const fake = fakeAppPerTest();
const { start, post } = fake;

describe('routes over a fake stack', () => {
  it('answers /health 503 while starting and 200 once a stack is attached', async () => {
    fake.app = buildApp();
    expect((await fake.app.inject('/health')).statusCode).toBe(503);
    const models = await fake.app.inject('/v1/models');
    expect(models.statusCode).toBe(503);
    expect(models.json().error.code).toBe('server_starting');
    fake.app.loom.attach(fakeStack());
    expect((await fake.app.inject('/health')).statusCode).toBe(200);
  });

  it('lists the base model and each adapter in vLLM shape', async () => {
    start();
    const res = await fake.app.inject('/v1/models');
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
      presence_penalty: 0.5,
      frequency_penalty: -0.25,
      repetition_penalty: 1.1,
      logit_bias: { '7': 200, '9': -3 },
      min_tokens: 2,
      min_p: 0.05,
      allowed_token_ids: [104, 105, 3],
      bad_words: ['zz'],
      include_stop_str_in_output: true,
      skip_special_tokens: false,
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.object).toBe('text_completion');
    expect(body.model).toBe('ad-a');
    const prompt = [BOS, 104, 105];
    expect(body.choices).toEqual([
      {
        index: 0,
        text: fakeText('ad-a', prompt, 5),
        logprobs: null,
        finish_reason: 'length',
        stop_reason: null,
        prompt_logprobs: null,
      },
    ]);
    expect(body.usage).toEqual({
      prompt_tokens: 3,
      completion_tokens: 5,
      total_tokens: 8,
      prompt_tokens_details: null,
    });
    expect(body.system_fingerprint).toBeNull();
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
      includeStopStrInOutput: true,
      skipSpecialTokens: false,
      stopTokenIds: [3],
      ignoreEos: true,
      n: 1,
      logprobs: null,
      promptLogprobs: null,
      minP: 0.05,
      logitEdits: {
        presencePenalty: 0.5,
        frequencyPenalty: -0.25,
        repetitionPenalty: 1.1,
        // Clamped to ±100, as vLLM does.
        logitBias: new Map([
          [7, 100],
          [9, -3],
        ]),
        minTokens: 2,
        allowedTokenIds: [104, 105, 3],
        badWords: [[122, 122]],
        guide: null,
      },
    });
    // Structured output reaches the scheduler as a guide over the vocabulary.
    const guided = await post('/v1/completions', { model: 'ad-a', prompt: 'hi', guided_choice: ['a', 'b'] });
    expect(guided.statusCode).toBe(200);
    expect(stack.scheduler.submitted[1].sampling.logitEdits?.guide).toBeInstanceOf(TokenGuide);
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
    // vLLM joins a message's text parts with newlines.
    const rendered = '<s>system: be brief\nuser: hel\nlo\nassistant:';
    expect(stack.scheduler.submitted[0].promptTokens).toEqual([...Buffer.from(rendered)]);
    expect(body.usage.completion_tokens).toBe(6);
  });

  it("chat echo (vLLM's): the answer starts with a final assistant message's text, streamed or whole", async () => {
    start();
    const prefilled = {
      model: 'tiny-base',
      messages: [
        { role: 'user', content: 'tell' },
        { role: 'assistant', content: 'Once' },
      ],
      continue_final_message: true,
      add_generation_prompt: false,
      max_tokens: 3,
    };
    const plain = (await post('/v1/chat/completions', prefilled)).json().choices[0].message.content;
    const echoed = (await post('/v1/chat/completions', { ...prefilled, echo: true })).json();
    expect(echoed.choices[0].message.content).toBe(`Once${plain}`);
    const events = sseEvents(
      (await post('/v1/chat/completions', { ...prefilled, echo: true, stream: true })).body,
    );
    const streamed = events
      .slice(0, -1)
      .map((e) => JSON.parse(e).choices[0]?.delta.content ?? '')
      .join('');
    expect(streamed).toBe(`Once${plain}`);
    // The final message is the user's: nothing to echo.
    const asked = { model: 'tiny-base', messages: [{ role: 'user', content: 'tell' }], max_tokens: 3 };
    expect(
      (await post('/v1/chat/completions', { ...asked, echo: true })).json().choices[0].message.content,
    ).toBe((await post('/v1/chat/completions', asked)).json().choices[0].message.content);
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

  it('ends every stream with its usage under --enable-force-include-usage, asked or not', async () => {
    fake.app = buildApp({ stack: fakeStack(), forceIncludeUsage: true });
    for (const stream_options of [undefined, { include_usage: false }]) {
      const res = await post('/v1/chat/completions', {
        model: 'tiny-base',
        messages: [{ role: 'user', content: 'q' }],
        max_tokens: 2,
        stream: true,
        ...(stream_options ? { stream_options } : {}),
      });
      const chunks = sseEvents(res.body)
        .slice(0, -1)
        .map((e) => JSON.parse(e));
      expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 2 } });
      // The other chunks say usage null, as vLLM's do when usage is on.
      expect(chunks[0].usage).toBeNull();
    }
  });

  it("serves GET /tokenizer_info, the tokenizer's configuration, only under --enable-tokenizer-info-endpoint", async () => {
    fake.start();
    expect((await fake.app.inject({ method: 'GET', url: '/tokenizer_info' })).statusCode).toBe(404);
    await fake.app.close();
    fake.app = buildApp({ stack: fakeStack(), tokenizerInfoEndpoint: true });
    const res = await fake.app.inject({ method: 'GET', url: '/tokenizer_info' });
    expect(res.statusCode).toBe(200);
    // Every key the configuration holds comes through, nested and null ones too.
    expect(res.json()).toEqual({
      bos_token: '<s>',
      eos_token: '</s>',
      pad_token: null,
      added_tokens_decoder: { '1': '<s>', '257': '</s>' },
      tokenizer_class: 'CachedFakeTokenizerFast',
    });
  });

  it('keeps tools out of the prompt under tool_choice "none" only with --exclude-tools-when-tool-choice-none', async () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    const body = {
      model: 'tiny-base',
      messages: [{ role: 'user', content: 'q' }],
      max_tokens: 1,
      tools,
      tool_choice: 'none',
    };
    const promptTokens = async (exclude: boolean, request: object = body) => {
      fake.app = buildApp({
        stack: fakeStack({ maxModelLen: 512 }),
        excludeToolsWhenToolChoiceNone: exclude,
      });
      const res = await post('/v1/chat/completions', request);
      expect(res.statusCode, res.body).toBe(200);
      const tokens = res.json().usage.prompt_tokens as number;
      await fake.app.close();
      return tokens;
    };
    const withTools = await promptTokens(false);
    const without = await promptTokens(true);
    const { tools: _, tool_choice: __, ...noTools } = body;
    expect(without).toBe(await promptTokens(false, noTools));
    expect(withTools - without).toBe(`tools: ${JSON.stringify(tools)}\n`.length);
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

  it('answers a full queue with 429 and an unreachable TTFT objective with 503, both with Retry-After', async () => {
    const stack = start();
    stack.scheduler.refuseWith = new AdmissionError('queue full', 2);
    const full = await post('/v1/completions', { model: 'tiny-base', prompt: 'x', stream: true });
    expect(full.statusCode).toBe(429);
    expect(full.headers['retry-after']).toBe('2');
    expect(full.json().error).toMatchObject({ type: 'server_error', code: 'server_overloaded' });
    stack.scheduler.refuseWith = new AdmissionError('too late', 3, 'slo_unattainable');
    const late = await post('/v1/completions', { model: 'tiny-base', prompt: 'x', stream: true });
    expect(late.statusCode).toBe(503);
    expect(late.headers['retry-after']).toBe('3');
    expect(late.json().error).toMatchObject({ type: 'server_error', code: 'server_overloaded' });
  });

  it('answers a streamed request aborted in the queue (early abort) with 503 JSON before any event', async () => {
    const stack = start();
    stack.scheduler.abortInQueueWith = new AdmissionError('past the objective', 4, 'slo_unattainable');
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: 'x', stream: true });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.headers['retry-after']).toBe('4');
    expect(res.json().error).toMatchObject({ code: 'server_overloaded', message: 'past the objective' });
  });

  it('answers 503 once closing begins', async () => {
    start();
    fake.app.loom.beginClosing();
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: 'x' });
    expect(res.statusCode).toBe(503);
    expect((await fake.app.inject('/health')).statusCode).toBe(503);
  });
});

const cmpl = (extra: object) => ({ model: 'tiny-base', prompt: 'hi', ...extra });

async function listenUrl(): Promise<string> {
  await fake.app.listen({ host: '127.0.0.1', port: 0 });
  const address = fake.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return `http://127.0.0.1:${address.port}`;
}

describe('shutdown', () => {
  it('ends a non-streaming request in flight with a 503, as it ends streams', async () => {
    const stack = start();
    const url = await listenUrl();
    const pending = fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: 'x', max_tokens: 60 }),
    });
    while (stack.scheduler.live.size === 0) await new Promise((resolve) => setImmediate(resolve));
    const closed = fake.app.close();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('server_shutting_down');
    await closed;
  });

  it('ends open event streams with a shutdown error and [DONE], then closes', async () => {
    const stack = start();
    const url = await listenUrl();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: 'x', max_tokens: 60, stream: true }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let body = decoder.decode((await reader.read()).value);
    expect(fake.app.loom.numInFlight).toBe(1);
    const closed = fake.app.close();
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
    const res = await fake.app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toContain('loom_pool_pages{use="free"} 15');
    expect(res.body).toContain('loom_pool_pages{use="kv"} 0');
    expect(res.body).toContain('loom_sequences{state="running"} 0');
    expect(res.body).toContain('loom_http_responses_total{route="/v1/completions",status="200"} 1');
    expect(res.body).toContain('loom_http_responses_total{route="/v1/completions",status="404"} 1');
  });
});
