import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();

describe('a client that leaves before its first token', () => {
  it('is logged at info, without a stack, streaming or not', async () => {
    const lines: Array<{ level: number; msg: string; err?: unknown }> = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        callback();
      },
    });
    const stack = fakeStack();
    stack.scheduler.tokenDelayMs = 300;
    fake.app = buildApp({ stack, logger: { level: 'info', stream } });
    await fake.app.listen({ host: '127.0.0.1', port: 0 });
    const address = fake.app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    for (const streaming of [true, false]) {
      const leave = new AbortController();
      const pending = fetch(`http://127.0.0.1:${address.port}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-base', prompt: 'x', max_tokens: 5, stream: streaming }),
        signal: leave.signal,
      }).catch(() => null);
      while (stack.scheduler.live.size === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      leave.abort();
      await pending;
      // The first token comes 300 ms after submit: by then the response has nobody to go to.
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(lines.some((l) => 'err' in l)).toBe(false);
    expect(lines.filter((l) => l.msg === 'client left before the response began').length).toBeGreaterThan(0);
  });
});
