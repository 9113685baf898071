import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTinyServer, TINY_MODEL_NAME, type TinyServer } from './tiny-server.js';

let server: TinyServer;

beforeAll(async () => {
  // One running sequence and one waiting: the third concurrent request must be refused.
  server = await startTinyServer('reference', { maxNumSeqs: 1, maxNumBatchedTokens: 64, maxWaiting: 1 });
});

afterAll(async () => {
  await server?.close();
});

it('refuses work beyond the waiting queue with 429 and Retry-After, then serves again', async () => {
  const long = { model: TINY_MODEL_NAME, prompt: 'busy', max_tokens: 200, ignore_eos: true } as never;
  const { scheduler } = server.stack;
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 1));
  };
  const first = server.client.completions.create(long);
  await until(() => scheduler.stats().numRunning === 1);
  const second = server.client.completions.create(long);
  await until(() => scheduler.stats().numWaiting === 1);
  const refused = await server.client.completions
    .create({ model: TINY_MODEL_NAME, prompt: 'one more', max_tokens: 2 })
    .then(
      () => null,
      (error: unknown) => error,
    );
  expect(refused).toBeInstanceOf(OpenAI.APIError);
  const apiError = refused as InstanceType<typeof OpenAI.APIError>;
  expect(apiError.status).toBe(429);
  expect(apiError.code).toBe('server_overloaded');
  expect(apiError.headers?.get('retry-after')).toBe('1');
  const metrics = await (await fetch(server.baseURL.replace(/\/v1$/, '/metrics'))).text();
  expect(metrics).toContain('loom_admission_refusals_total{reason="queue_full"} 1');
  await Promise.all([first, second]);
  const after = (await server.client.completions.create({
    model: TINY_MODEL_NAME,
    prompt: 'one more',
    max_tokens: 2,
    ignore_eos: true,
  } as never)) as OpenAI.Completion;
  expect(after.usage?.completion_tokens).toBe(2);
});
