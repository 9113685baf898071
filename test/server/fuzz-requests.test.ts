import type { FastifyInstance } from 'fastify';
import { expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeStack } from './fake-stack.js';
import { startTinyServer } from './tiny-server.js';

/** A small seeded PRNG so a failing body can be reproduced from the printed seed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIELDS = [
  'model',
  'prompt',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'stop',
  'n',
  'stream',
  'stream_options',
  'ignore_eos',
  'stop_token_ids',
  'logprobs',
  'user',
];

function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * (depth > 1 ? 7 : 9));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor(rand() * 600) - 100;
    case 3:
      return rand() * 4 - 1;
    case 4:
      return ['', 'tiny-base', 'ad-a', 'tiny-r2', 'user', 'text', 'x'.repeat(80), '\u{1F600}'][
        Math.floor(rand() * 8)
      ];
    case 5:
      return 1e300;
    case 6:
      return -0;
    case 7:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const keys = ['role', 'content', 'type', 'text', 'include_usage'];
      return Object.fromEntries(
        keys.filter(() => rand() < 0.5).map((k) => [k, randomValue(rand, depth + 1)]),
      );
    }
  }
}

/** Sends `count` random bodies; every answer must be 2xx or an OpenAI-style 4xx. */
async function fuzz(app: FastifyInstance, count: number): Promise<void> {
  const rand = mulberry32(20261123);
  const statuses = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const body: Record<string, unknown> = { model: 'tiny-base' };
    for (const field of FIELDS) if (rand() < 0.35) body[field] = randomValue(rand);
    if (rand() < 0.5) body.prompt ??= 'hi';
    else body.messages ??= [{ role: 'user', content: 'hi' }];
    if (typeof body.max_tokens !== 'number' || rand() < 0.5) body.max_tokens = 2;
    const url = rand() < 0.5 ? '/v1/completions' : '/v1/chat/completions';
    const res = await app.inject({ method: 'POST', url, payload: body });
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    if (res.statusCode >= 500)
      throw new Error(`iteration ${i}: ${res.statusCode} for ${JSON.stringify(body)}: ${res.body}`);
    if (res.statusCode >= 400) {
      expect(res.json().error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
    }
  }
  expect(statuses.get(200)).toBeGreaterThan(0);
  expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
  const after = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: 'tiny-base', prompt: 'hi', max_tokens: 1 },
  });
  expect(after.statusCode).toBe(200);
}

it('never answers a random request body with a 5xx (fake stack), and keeps serving', async () => {
  const app = buildApp({ stack: fakeStack() });
  await fuzz(app, 400);
  await app.close();
});

it('never answers a random request body with a 5xx (real tiny stack), and keeps serving', async () => {
  const server = await startTinyServer('onnx');
  await fuzz(server.app, 150);
  await server.close();
});
