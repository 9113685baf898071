import { describe, expect, it } from 'vitest';
import { AdmissionError, type GenerationRequest, type GenerationStream } from '../../scheduler/request.js';
import { fakeAppPerTest } from './fake-app.js';
import { BOS, type FakeScheduler, fakeText, sseEvents } from './fake-stack.js';

const fake = fakeAppPerTest();
const { start, post } = fake;

const bytes = (text: string) => [BOS, ...Buffer.from(text)];

/** Rewrites what the fake scheduler streams, keeping its token counts. */
function rewriteStreams(
  scheduler: FakeScheduler,
  rewrite: (request: GenerationRequest, stream: GenerationStream) => GenerationStream,
): void {
  const submit = scheduler.submit.bind(scheduler);
  scheduler.submit = (request) => rewrite(request, submit(request));
}

describe('a batch of prompts in one completions request', () => {
  it('answers each prompt × n as choices indexed prompt-major, with usage summed', async () => {
    const stack = start();
    const res = await post('/v1/completions', { model: 'ad-a', prompt: ['hi', 'yo!'], n: 2, max_tokens: 3 });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const texts = [fakeText('ad-a', bytes('hi'), 3), fakeText('ad-a', bytes('yo!'), 3)];
    expect(texts[0]).not.toBe(texts[1]);
    expect(body.choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual([
      [0, texts[0]],
      [1, texts[0]],
      [2, texts[1]],
      [3, texts[1]],
    ]);
    expect(body.usage).toEqual({
      prompt_tokens: 3 + 4,
      completion_tokens: 2 * 2 * 3,
      total_tokens: 7 + 12,
      prompt_tokens_details: null,
    });
    const submitted = stack.scheduler.submitted;
    expect(submitted.map((r) => r.promptTokens)).toEqual([bytes('hi'), bytes('yo!')]);
    expect(submitted.map((r) => r.sampling.n)).toEqual([2, 2]);
    expect(submitted[0].requestId).toBe(`${body.id}-0`);
    expect(submitted[1].requestId).toBe(`${body.id}-1`);
  });

  it('takes a batch of token-id prompts, each checked against its own length', async () => {
    start({ maxModelLen: 8 });
    const res = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: [
        [1, 2],
        [3, 4, 5, 6],
      ],
      max_tokens: 2,
    });
    expect(res.json().choices.map((c: { text: string }) => c.text)).toEqual([
      fakeText(null, [1, 2], 2),
      fakeText(null, [3, 4, 5, 6], 2),
    ]);
    const tooLong = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: [[1], [1, 2, 3, 4, 5, 6, 7]],
      max_tokens: 2,
    });
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.code).toBe('context_length_exceeded');
  });

  it('streams every prompt × n choice under its prompt-major index, then the summed usage', async () => {
    start();
    const res = await post('/v1/completions', {
      model: 'ad-b',
      prompt: ['a', 'bc'],
      n: 2,
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.statusCode).toBe(200);
    const frames = sseEvents(res.body);
    expect(frames.at(-1)).toBe('[DONE]');
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    const texts = ['', '', '', ''];
    const finishes: (string | null)[] = [null, null, null, null];
    for (const chunk of chunks.slice(0, -1)) {
      const [choice] = chunk.choices;
      texts[choice.index] += choice.text;
      if (choice.finish_reason) finishes[choice.index] = choice.finish_reason;
      expect(choice.stop_reason).toBeNull();
      expect(chunk.usage).toBeNull();
    }
    const a = fakeText('ad-b', bytes('a'), 4);
    const bc = fakeText('ad-b', bytes('bc'), 4);
    expect(texts).toEqual([a, a, bc, bc]);
    expect(finishes).toEqual(['length', 'length', 'length', 'length']);
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 2 + 3, completion_tokens: 16, total_tokens: 21, prompt_tokens_details: null },
    });
  });

  it('cancels the prompts already admitted when another is refused, and answers 429 at once', async () => {
    const stack = start();
    // The admitted prompts would wait 5 s for their first token: the refusal must not wait for them.
    stack.scheduler.tokenDelayMs = 5000;
    let calls = 0;
    const submit = stack.scheduler.submit.bind(stack.scheduler);
    stack.scheduler.submit = (request) => {
      if (++calls === 2) throw new AdmissionError('queue full', 1);
      return submit(request);
    };
    const startedAt = performance.now();
    const res = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: ['a', 'b', 'c'],
      max_tokens: 50,
    });
    // A full queue is 429 with Retry-After (the scheduler's admission control).
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('1');
    expect(performance.now() - startedAt).toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(stack.scheduler.live.size).toBe(0);
    expect(stack.scheduler.submitted).toHaveLength(2);
  });
});

describe("vLLM's response fields", () => {
  it('gives system_fingerprint null and stop_reason null for a length finish', async () => {
    start();
    const completion = (
      await post('/v1/completions', { model: 'tiny-base', prompt: 'x', max_tokens: 2 })
    ).json();
    expect(completion).toMatchObject({ system_fingerprint: null, choices: [{ stop_reason: null }] });
    const chat = (
      await post('/v1/chat/completions', {
        model: 'tiny-base',
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 2,
      })
    ).json();
    expect(chat).toMatchObject({
      system_fingerprint: null,
      choices: [{ finish_reason: 'length', stop_reason: null }],
      usage: { prompt_tokens_details: null },
    });
  });

  it('names the stop string or the stop token id that ended a choice, streamed or not', async () => {
    start();
    const text = fakeText(null, bytes('s'), 8);
    const stopChar = text[3];
    const stopped = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: 's',
      max_tokens: 8,
      stop: [stopChar],
    });
    expect(stopped.json().choices[0]).toMatchObject({
      text: text.slice(0, text.indexOf(stopChar)),
      finish_reason: 'stop',
      stop_reason: stopChar,
    });
    const chatText = fakeText(null, [...Buffer.from('<s>user: s\nassistant:')], 8);
    const id = chatText.charCodeAt(2);
    const byId = await post('/v1/chat/completions', {
      model: 'tiny-base',
      messages: [{ role: 'user', content: 's' }],
      max_tokens: 8,
      stop_token_ids: [id],
    });
    expect(byId.json().choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: id });
    const streamed = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: 's',
      max_tokens: 8,
      stop: [stopChar],
      stream: true,
    });
    const last = JSON.parse(sseEvents(streamed.body).at(-2) as string);
    expect(last.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: stopChar });
  });

  it('gives stop_reason null when EOS, not a requested stop token, ended the choice (as vLLM)', async () => {
    const stack = start();
    const EOS = 257;
    rewriteStreams(stack.scheduler, (_request, stream) => ({
      get promptTokens() {
        return stream.promptTokens;
      },
      get cachedPromptTokens() {
        return stream.cachedPromptTokens;
      },
      get completionTokens() {
        return stream.completionTokens;
      },
      async *[Symbol.asyncIterator]() {
        for await (const delta of stream)
          yield delta.finishReason === 'length' ? { ...delta, finishReason: 'stop', stopReason: EOS } : delta;
      },
    }));
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: 'e', max_tokens: 2 });
    expect(res.json().choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: null });
    const listed = await post('/v1/completions', {
      model: 'tiny-base',
      prompt: 'e',
      max_tokens: 2,
      stop_token_ids: [EOS],
    });
    expect(listed.json().choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: EOS });
  });
});
