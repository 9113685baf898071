import { describe, expect, it } from 'vitest';
import { fakeAppPerTest } from './fake-app.js';
import { sseEvents } from './fake-stack.js';

/**
 * POST /invocations (SageMaker's route, as vLLM and LoRAX serve it): a body is answered by the
 * API its fields say it is in, as that API's own route answers it, errors included; SageMaker's
 * adapter header picks the adapter.
 */
const fake = fakeAppPerTest();
const { start, post } = fake;

const ADAPTER_HEADER = 'x-amzn-sagemaker-adapter-identifier';

/** The same body to /invocations and to its own route: both answers, ids (random) left out. */
async function both(url: string, body: object, headers: Record<string, string> = {}) {
  const strip = (text: string) => text.replace(/"(id|created)":("[^"]*"|\d+)/g, '"$1":_');
  const invoked = await fake.app.inject({ method: 'POST', url: '/invocations', payload: body, headers });
  const direct = await post(url, body);
  return { invoked, direct, same: () => expect(strip(invoked.body)).toBe(strip(direct.body)) };
}

describe('POST /invocations', () => {
  it('answers a body with messages as chat completions does, whole or streamed', async () => {
    start();
    const chat = { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };
    const whole = await both('/v1/chat/completions', chat);
    expect(whole.invoked.statusCode).toBe(200);
    expect(whole.invoked.json().object).toBe('chat.completion');
    whole.same();
    const streamed = await both('/v1/chat/completions', { ...chat, stream: true });
    expect(streamed.invoked.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(sseEvents(streamed.invoked.body).at(-1)).toBe('[DONE]');
    streamed.same();
  });

  it('answers a body with a prompt as completions does', async () => {
    start();
    const res = await both('/v1/completions', { model: 'ad-a', prompt: 'hello', max_tokens: 4 });
    expect(res.invoked.json().choices[0].text).toHaveLength(4);
    res.same();
  });

  it('answers a body with inputs as LoRAX’s POST / does', async () => {
    start();
    const res = await both('/', { inputs: 'hello', parameters: { adapter_id: 'ad-b', max_new_tokens: 3 } });
    expect(res.invoked.json()).toEqual([{ generated_text: expect.any(String) }]);
    res.same();
  });

  it('runs on the adapter SageMaker’s header names, over the body’s model or adapter_id', async () => {
    const stack = start();
    const headers = { [ADAPTER_HEADER]: 'ad-b' };
    for (const body of [
      { model: 'tiny-base', prompt: 'hello', max_tokens: 2 },
      { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 },
      { inputs: 'hello', parameters: { adapter_id: 'ad-a', max_new_tokens: 2 } },
      { inputs: 'hello' },
    ]) {
      const res = await fake.app.inject({ method: 'POST', url: '/invocations', payload: body, headers });
      expect(res.statusCode, res.body).toBe(200);
      expect(stack.scheduler.submitted.at(-1)?.adapter).toBe('ad-b');
    }
  });

  it('refuses a body of no API, and words a bad body as its own route does', async () => {
    start();
    const none = await post('/invocations', { model: 'tiny-base', input: 'hi' });
    expect(none.statusCode).toBe(400);
    expect(none.json().error.message).toMatch(/^Cannot find suitable handler for request/);
    const chat = { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], temperature: -1 };
    const badChat = await both('/v1/chat/completions', chat);
    expect(badChat.invoked.statusCode).toBe(400);
    expect(badChat.invoked.json().error.param).toBe('temperature');
    badChat.same();
    const badLorax = await both('/', { inputs: 'hi', parameters: { top_k: 0 } });
    expect(badLorax.invoked.statusCode).toBe(422);
    expect(badLorax.invoked.json()).toEqual({
      error: expect.stringContaining('top_k'),
      error_type: 'validation',
    });
    badLorax.same();
    expect((await post('/invocations', [1, 2])).statusCode).toBe(400);
  });
});
