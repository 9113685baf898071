import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { TINY_ADAPTERS, TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

const server = useTinyServer('onnx');
const client = (): OpenAI => server().client;

const MODELS = [TINY_MODEL_NAME, 'tiny-r2', 'tiny-r8'];
const GREEDY = { temperature: 0, max_tokens: 12, ignore_eos: true } as const;

async function complete(model: string, prompt: string, maxTokens = 12): Promise<string> {
  const res = await client().completions.create({ ...GREEDY, model, prompt, max_tokens: maxTokens } as never);
  return (res as OpenAI.Completion).choices[0].text;
}

/** Completion tokens of a small request: text alone may be empty when bytes end mid-character. */
async function stillServing(model: string): Promise<number | undefined> {
  const res = await client().completions.create({
    model,
    prompt: 'still serving',
    max_tokens: 2,
    ignore_eos: true,
  } as never);
  return (res as OpenAI.Completion).usage?.completion_tokens;
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return performance.now() - started;
}

describe('the official openai client against a tiny real model', () => {
  it('lists the base model and every adapter', async () => {
    const models = [];
    for await (const model of client().models.list()) models.push(model);
    expect(models.map((m) => m.id)).toEqual([TINY_MODEL_NAME, ...TINY_ADAPTERS.map((a) => a.name)]);
    const base = models[0] as unknown as Record<string, unknown>;
    expect(base).toMatchObject({ object: 'model', owned_by: 'loom', parent: null, max_model_len: 256 });
    expect(models[1]).toMatchObject({
      parent: TINY_MODEL_NAME,
      root: server().stack.scheduler.adapters.list()[0].path,
    });
  });

  it.each(MODELS)('completes, streams and chat-completes for %s', async (model) => {
    const res = await client().completions.create({ model, prompt: 'Once upon a time', ...GREEDY } as never);
    const completion = res as OpenAI.Completion;
    expect(completion.model).toBe(model);
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.choices[0].finish_reason).toBe('length');
    expect(completion.usage).toMatchObject({ completion_tokens: 12 });
    const text = completion.choices[0].text;

    const stream = await client().completions.create({
      model,
      prompt: 'Once upon a time',
      ...GREEDY,
      stream: true,
      stream_options: { include_usage: true },
    } as never);
    let streamed = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      expect(chunk.model).toBe(model);
      if (chunk.choices.length) streamed += chunk.choices[0].text;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toBe(text);
    expect(usage).toEqual(completion.usage);

    const chat = await client().chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hello there' }],
      ...GREEDY,
    } as never);
    const chatCompletion = chat as OpenAI.ChatCompletion;
    expect(chatCompletion.model).toBe(model);
    expect(chatCompletion.choices[0].message.role).toBe('assistant');
    const reply = chatCompletion.choices[0].message.content ?? '';

    const chatStream = await client().chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hello there' }],
      ...GREEDY,
      stream: true,
    } as never);
    let streamedReply = '';
    for await (const chunk of chatStream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      streamedReply += chunk.choices[0]?.delta.content ?? '';
    }
    expect(streamedReply).toBe(reply);
  });

  it('gives different text for the base model and its adapters', async () => {
    const texts = await Promise.all(MODELS.map((m) => complete(m, 'The adapters differ')));
    expect(new Set(texts).size).toBe(MODELS.length);
  });

  it('batch invariance: 16 concurrent greedy requests over 5 adapters and the base match their solo text', async () => {
    const models = [TINY_MODEL_NAME, ...TINY_ADAPTERS.map((a) => a.name)];
    const jobs = Array.from({ length: 16 }, (_, i) => ({
      model: models[i % models.length],
      prompt: `Request ${i}: ${'abcdefgh'.slice(0, 1 + (i % 8))}`,
      maxTokens: 6 + (i % 5),
    }));
    const solo: string[] = [];
    for (const job of jobs) solo.push(await complete(job.model, job.prompt, job.maxTokens));
    let maxRunning = 0;
    const watch = setInterval(() => {
      maxRunning = Math.max(maxRunning, server().stack.scheduler.stats().numRunning);
    }, 1);
    const together = await Promise.all(jobs.map((job) => complete(job.model, job.prompt, job.maxTokens)));
    clearInterval(watch);
    expect(together).toEqual(solo);
    expect(maxRunning).toBeGreaterThanOrEqual(models.length);
  });

  it('frees the KV pages of a client that aborts mid-stream within a step or two', async () => {
    const stack = server().app.loom.stack!;
    const { scheduler } = stack;
    const kvPages = () => scheduler.stats().numKvPages;
    await waitFor(() => kvPages() === 0, 2000);
    const stream = await client().completions.create({
      model: 'tiny-r4',
      prompt: 'a long story',
      temperature: 0,
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    } as never);
    let chunks = 0;
    let stepsAtAbort = 0;
    for await (const _chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      if (++chunks < 3) continue;
      expect(kvPages()).toBeGreaterThan(0);
      stepsAtAbort = scheduler.stats().numSteps;
      break;
    }
    await waitFor(() => kvPages() === 0, 2000);
    expect(scheduler.stats().numSteps - stepsAtAbort).toBeLessThanOrEqual(2);
    await expect(stillServing('tiny-r4')).resolves.toBe(2);
  });

  it('frees the KV pages of a non-streaming request whose client goes away', async () => {
    const { scheduler } = server().app.loom.stack!;
    const kvPages = () => scheduler.stats().numKvPages;
    await waitFor(() => kvPages() === 0, 2000);
    const controller = new AbortController();
    const pending = client().completions.create(
      { model: 'tiny-r8', prompt: 'never read', max_tokens: 200, ignore_eos: true } as never,
      { signal: controller.signal },
    );
    await waitFor(() => kvPages() > 0, 2000);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(() => kvPages() === 0, 2000);
  });

  it('ends a choice at a stop string with finish_reason stop', async () => {
    const full = await complete('tiny-r16', 'Where does it stop?', 12);
    expect(full.length).toBeGreaterThanOrEqual(6);
    const stop = full.slice(4, 6);
    const res = (await client().completions.create({
      ...GREEDY,
      model: 'tiny-r16',
      prompt: 'Where does it stop?',
      stop: [stop],
    } as never)) as OpenAI.Completion;
    expect(res.choices[0].finish_reason).toBe('stop');
    expect(res.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
  });

  it('samples reproducibly with a seed, n choices per request', async () => {
    const ask = async () =>
      (
        (await client().chat.completions.create({
          model: 'tiny-r4',
          messages: [{ role: 'user', content: 'Pick something' }],
          temperature: 1,
          top_p: 0.9,
          seed: 99,
          n: 2,
          max_tokens: 8,
        })) as OpenAI.ChatCompletion
      ).choices.map((c) => c.message.content);
    const first = await ask();
    expect(first).toHaveLength(2);
    expect(await ask()).toEqual(first);
  });

  it('answers bad requests with typed 4xx errors and keeps serving', async () => {
    await expect(complete('no-such-model', 'x')).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
      param: 'model',
    });
    await expect(
      client().completions.create({ model: TINY_MODEL_NAME, prompt: 'x', max_tokens: 0 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(
      client().chat.completions.create({ model: TINY_MODEL_NAME, messages: [], max_tokens: 3 }),
    ).rejects.toMatchObject({ status: 400, param: 'messages' });
    await expect(
      client().completions.create({ model: TINY_MODEL_NAME, prompt: 'x', max_tokens: 300 }),
    ).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded' });
    await expect(stillServing(TINY_MODEL_NAME)).resolves.toBe(2);
  });
});
