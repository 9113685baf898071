import { describe, expect, it } from 'vitest';
import { drainAndClose } from '../../server/shutdown.js';
import { fakeAppPerTest } from './fake-app.js';
import { sseEvents } from './fake-stack.js';

const fake = fakeAppPerTest();

async function listen(): Promise<string> {
  await fake.app.listen({ host: '127.0.0.1', port: 0 });
  const address = fake.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return `http://127.0.0.1:${address.port}`;
}

function completion(url: string, body: object): Promise<Response> {
  return fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-base', prompt: 'x', ...body }),
  });
}

async function readAll(res: Response): Promise<string> {
  return new TextDecoder().decode(await res.arrayBuffer());
}

describe('drainAndClose', () => {
  it('refuses new work at once and lets streaming and non-streaming requests finish', async () => {
    const stack = fake.start();
    stack.scheduler.tokenDelayMs = 10;
    const url = await listen();
    const streaming = await completion(url, { max_tokens: 30, stream: true });
    const plain = completion(url, { max_tokens: 30 });
    while (stack.scheduler.live.size < 2) await new Promise((resolve) => setImmediate(resolve));

    const closed = drainAndClose(fake.app, 30_000);
    expect(stack.scheduler.live.size).toBe(2);
    const health = await fake.app.inject('/health');
    expect(health.statusCode).toBe(503);
    expect(health.json()).toEqual({ status: 'draining' });
    expect(health.headers.connection).toBe('close');
    const refused = await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { model: 'tiny-base', prompt: 'late' },
    });
    expect(refused.statusCode).toBe(503);
    expect(refused.headers.connection).toBe('close');
    expect(refused.json().error.code).toBe('server_shutting_down');

    const events = sseEvents(await readAll(streaming));
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).choices[0].finish_reason).toBe('length');
    const res = await plain;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: { finish_reason: string }[] }).choices[0].finish_reason).toBe(
      'length',
    );
    await closed;
    expect(stack.scheduler.isClosed).toBe(true);
  });

  it('ends what still runs at the timeout: a stream with an error event and [DONE], a plain request with 503', async () => {
    const stack = fake.start();
    // 60 tokens at 100 ms each outlast a 200 ms deadline.
    stack.scheduler.tokenDelayMs = 100;
    const url = await listen();
    const streaming = await completion(url, { max_tokens: 60, stream: true, prompt: 'y' });
    const plain = completion(url, { max_tokens: 60 });
    while (stack.scheduler.live.size < 2) await new Promise((resolve) => setImmediate(resolve));

    const closed = drainAndClose(fake.app, 200);
    const events = sseEvents(await readAll(streaming));
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).error.code).toBe('server_shutting_down');
    const res = await plain;
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('server_shutting_down');
    await closed;
    expect(stack.scheduler.live.size).toBe(0);
  });
});
