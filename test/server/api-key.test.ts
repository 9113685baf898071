import { describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();
const KEY = 'sk-loom-test-key';

const OPEN = [
  ['GET', '/health'],
  ['GET', '/ping'],
  ['POST', '/ping'],
  ['GET', '/metrics'],
  ['GET', '/version'],
  ['GET', '/load'],
  ['GET', '/'],
] as const;

const CLOSED: [string, string, object?][] = [
  ['GET', '/v1/models'],
  ['GET', '/v1/models/tiny-base'],
  ['POST', '/v1/completions', { model: 'tiny-base', prompt: 'hi', max_tokens: 2 }],
  [
    'POST',
    '/v1/chat/completions',
    { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 },
  ],
  ['POST', '/tokenize', { prompt: 'hi' }],
  ['POST', '/detokenize', { tokens: [104] }],
  ['POST', '/v1/load_lora_adapter', { lora_name: 'x', lora_path: '/tmp/x' }],
  ['POST', '/v1/unload_lora_adapter', { lora_name: 'ad-a' }],
  ['POST', '/invocations', { model: 'tiny-base', prompt: 'hi', max_tokens: 2 }],
  ['GET', '/no/such/path'],
];

/** LoRAX's routes: closed as the others, their refusals in LoRAX's shape. */
const CLOSED_LORAX: [string, string, object?][] = [
  ['POST', '/generate', { inputs: 'hi' }],
  ['POST', '/generate_stream', { inputs: 'hi' }],
  ['POST', '/', { inputs: 'hi' }],
  ['GET', '/info'],
];

function inject(method: string, url: string, payload: object | undefined, authorization?: string) {
  return fake.app.inject({
    method: method as 'GET' | 'POST',
    url,
    payload,
    headers: authorization === undefined ? {} : { authorization },
  });
}

describe('--api-key', () => {
  it.each([
    ['no key', undefined],
    ['a wrong key', 'Bearer sk-wrong'],
    ['a key one character short', `Bearer ${KEY.slice(0, -1)}`],
    ['the right key in another scheme', `Basic ${KEY}`],
  ])('refuses %s on every closed endpoint with an OpenAI 401', async (_what, authorization) => {
    fake.app = buildApp({ stack: fakeStack(), apiKey: KEY });
    for (const [method, url, payload] of CLOSED) {
      const res = await inject(method, url, payload, authorization);
      expect({ url, status: res.statusCode }).toEqual({ url, status: 401 });
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toEqual({
        error: {
          message: expect.any(String),
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      });
    }
  });

  it("refuses LoRAX's routes without the key, in LoRAX's error shape", async () => {
    fake.app = buildApp({ stack: fakeStack(), apiKey: KEY });
    for (const [method, url, payload] of CLOSED_LORAX) {
      const res = await inject(method, url, payload, 'Bearer sk-wrong');
      expect({ url, status: res.statusCode }).toEqual({ url, status: 401 });
      expect(res.json()).toEqual({ error: 'Incorrect API key provided.', error_type: 'authentication' });
      expect((await inject(method, url, payload, `Bearer ${KEY}`)).statusCode).toBe(200);
    }
  });

  it("accepts any of several keys (vLLM's --api-key takes several), and no other", async () => {
    fake.app = buildApp({ stack: fakeStack(), apiKey: [KEY, 'sk-second'] });
    const [method, url, payload] = CLOSED[2];
    for (const key of [KEY, 'sk-second'])
      expect((await inject(method, url, payload, `Bearer ${key}`)).statusCode).toBe(200);
    expect((await inject(method, url, payload, 'Bearer sk-third')).statusCode).toBe(401);
  });

  it('serves every closed endpoint to the right key, as it would without auth', async () => {
    const stack = fakeStack();
    fake.app = buildApp({ stack, apiKey: KEY });
    for (const [method, url, payload] of CLOSED) {
      const res = await inject(method, url, payload, `Bearer ${KEY}`);
      expect({ url, unauthorized: res.statusCode === 401 }).toEqual({ url, unauthorized: false });
    }
    const completion = await inject('POST', '/v1/completions', CLOSED[2][2], `bearer ${KEY}`);
    expect(completion.statusCode).toBe(200);
    expect(stack.scheduler.submitted.length).toBeGreaterThan(0);
  });

  it.each([
    ['no key', undefined],
    ['a wrong key', 'Bearer nope'],
    ['the right key', `Bearer ${KEY}`],
  ])('leaves the probes open with %s', async (_what, authorization) => {
    fake.app = buildApp({ stack: fakeStack(), apiKey: KEY });
    for (const [method, url] of OPEN) {
      const res = await inject(method, url, undefined, authorization);
      expect({ url, status: res.statusCode }).toEqual({ url, status: 200 });
    }
  });

  it('does not read the body of a request it refuses, nor submit it', async () => {
    const stack = fakeStack();
    fake.app = buildApp({ stack, apiKey: KEY });
    const res = await fake.app.inject({ method: 'POST', url: '/v1/completions', payload: '{not json' });
    expect(res.statusCode).toBe(401);
    expect(stack.scheduler.submitted).toHaveLength(0);
  });

  it('asks for nothing when no key is set', async () => {
    fake.app = buildApp({ stack: fakeStack() });
    for (const [method, url, payload] of CLOSED) {
      const res = await inject(method, url, payload);
      expect(res.statusCode).not.toBe(401);
    }
  });
});

describe('adapter paths in /v1/models', () => {
  it("shows adapters' server paths unless hidden, and their ids in their place when hidden", async () => {
    fake.app = buildApp({ stack: fakeStack(), apiKey: KEY });
    const shown = (await inject('GET', '/v1/models', undefined, `Bearer ${KEY}`)).json().data;
    expect(shown.map((c: { root: string }) => c.root)).toEqual([
      '/models/tiny-base',
      '/adapters/a',
      '/adapters/b',
    ]);
    await fake.app.close();
    fake.app = buildApp({ stack: fakeStack(), hideAdapterPaths: true });
    const hidden = (await inject('GET', '/v1/models', undefined)).json().data;
    expect(hidden.map((c: { root: string }) => c.root)).toEqual(['/models/tiny-base', 'ad-a', 'ad-b']);
    expect(JSON.stringify(hidden)).not.toContain('/adapters/');
    const one = (await inject('GET', '/v1/models/ad-a', undefined)).json();
    expect(one.root).toBe('ad-a');
  });
});
