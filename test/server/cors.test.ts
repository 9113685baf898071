import { describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();
const ORIGIN = 'https://ui.example';

function preflight(origin: string) {
  return fake.app.inject({
    method: 'OPTIONS',
    url: '/v1/completions',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    },
  });
}

describe('--allowed-origins', () => {
  it('is off by default: no CORS headers, and a preflight is not answered', async () => {
    fake.app = buildApp({ stack: fakeStack() });
    const res = await fake.app.inject({ url: '/v1/models', headers: { origin: ORIGIN } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const pre = await preflight(ORIGIN);
    expect(pre.statusCode).toBe(404);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
  });

  it("answers a listed origin's preflight before auth, and marks its answers, errors included", async () => {
    fake.app = buildApp({ stack: fakeStack(), allowedOrigins: [ORIGIN], apiKey: 'k' });
    const pre = await preflight(ORIGIN);
    expect(pre.statusCode).toBe(204);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': ORIGIN,
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type',
      vary: 'Origin',
    });
    const ok = await fake.app.inject({
      url: '/v1/models',
      headers: { origin: ORIGIN, authorization: 'Bearer k' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
    const refused = await fake.app.inject({ url: '/v1/models', headers: { origin: ORIGIN } });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['access-control-allow-origin']).toBe(ORIGIN);
  });

  it('gives an unlisted origin no CORS headers, and refuses its preflight with a 403', async () => {
    fake.app = buildApp({ stack: fakeStack(), allowedOrigins: [ORIGIN] });
    const res = await fake.app.inject({ url: '/v1/models', headers: { origin: 'https://evil.example' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const pre = await preflight('https://evil.example');
    expect(pre.statusCode).toBe(403);
    expect(pre.json().error.code).toBe('origin_not_allowed');
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows any origin with "*"', async () => {
    fake.app = buildApp({ stack: fakeStack(), allowedOrigins: ['*'] });
    const res = await fake.app.inject({ url: '/version', headers: { origin: 'http://localhost:3000' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect((await preflight('http://localhost:3000')).statusCode).toBe(204);
  });
});
