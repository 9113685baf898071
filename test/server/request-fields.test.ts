import { describe, expect, it } from 'vitest';
import { UNSUPPORTED_FIELDS } from '../../server/schemas/sampling-fields.js';
import { fakeAppPerTest } from './fake-app.js';

/**
 * No request field is silently ignored: each is implemented, or refused with a 400 that names it
 * unless it holds the value that asks for what Loom does anyway, and a field no schema names is
 * a 400 too.
 */
const fake = fakeAppPerTest();
const { start, post } = fake;

const routes = [
  ['/v1/completions', { model: 'tiny-base', prompt: 'hi', max_tokens: 2 }],
  [
    '/v1/chat/completions',
    { model: 'tiny-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 },
  ],
] as const;

/** [field, a value Loom does not implement, the default value it accepts]. */
const CASES: Array<[string, unknown, unknown]> = [];

describe('request fields', () => {
  it('covers every field the schemas list as unsupported', () => {
    expect(CASES.map(([name]) => name).sort()).toEqual(Object.keys(UNSUPPORTED_FIELDS).sort());
  });

  for (const [url, body] of routes) {
    it.each(CASES)(
      `${url}: %s is refused by name unless it holds its default`,
      async (field, other, fallback) => {
        start();
        const refused = await post(url, { ...body, [field]: other });
        expect(refused.statusCode).toBe(400);
        expect(refused.json().error).toMatchObject({ param: field, code: 'unsupported_parameter' });
        for (const accepted of [fallback, null])
          expect((await post(url, { ...body, [field]: accepted })).statusCode).toBe(200);
      },
    );

    it(`${url}: a field no schema names is refused with its name`, async () => {
      start();
      const res = await post(url, { ...body, typical_p: 0.9 });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ param: 'typical_p', code: 'unknown_parameter' });
      const nested = await post(url, {
        ...body,
        stream: true,
        stream_options: { include_usage: true, extra: 1 },
      });
      expect(nested.statusCode).toBe(400);
      expect(nested.json().error.param).toBe('stream_options.extra');
    });
  }

  for (const [url, body] of routes) {
    it(`${url}: priority is vLLM's, taken under --scheduling-policy priority and refused otherwise unless 0`, async () => {
      start();
      const refused = await post(url, { ...body, priority: 2 });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error).toMatchObject({
        param: 'priority',
        message: 'Got priority 2 but Priority scheduling is not enabled.',
      });
      for (const accepted of [0, null])
        expect((await post(url, { ...body, priority: accepted })).statusCode).toBe(200);
      await fake.app.close();
      const stack = start({ schedulingPolicy: 'priority' });
      expect((await post(url, { ...body, priority: -3 })).statusCode).toBe(200);
      expect((await post(url, body)).statusCode).toBe(200);
      expect(stack.scheduler.submitted.map((r) => r.priority)).toEqual([-3, 0]);
      expect((await post(url, { ...body, priority: 1.5 })).statusCode).toBe(400);
    });
  }

  it('refuses best_of other than n on /v1/completions', async () => {
    start();
    const res = await post('/v1/completions', { ...routes[0][1], best_of: 3 });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('best_of');
    expect((await post('/v1/completions', { ...routes[0][1], best_of: 1 })).statusCode).toBe(200);
  });
});
