import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type AppOptions, buildApp } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}
const INFO = 30;

/** An app over a fake stack whose pino output is captured, line by line. */
function appWithLog(options: Partial<AppOptions> = {}, level = 'info') {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  const stack = fakeStack();
  fake.app = buildApp({ stack, logger: { level, stream }, ...options });
  return { lines, stack };
}

const completion = { model: 'ad-a', prompt: 'hi', max_tokens: 3 };

describe('one line per finished generation', () => {
  it('says request id, adapter, tokens, time to first token, total time and finish reasons', async () => {
    const { lines } = appWithLog();
    const res = await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { ...completion, n: 2 },
    });
    const finished = lines.filter((l) => l.msg === 'generation finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatchObject({
      level: INFO,
      requestId: res.json().id,
      adapter: 'ad-a',
      promptTokens: 3,
      generatedTokens: 6,
      finishReasons: ['length', 'length'],
    });
    const { timeToFirstTokenMs, totalMs } = finished[0] as unknown as {
      timeToFirstTokenMs: number;
      totalMs: number;
    };
    expect(timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
    expect(totalMs).toBeGreaterThanOrEqual(timeToFirstTokenMs);
  });

  it('writes one per prompt of a batch, streamed too, and says the base model is null', async () => {
    const { lines } = appWithLog();
    await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { model: 'tiny-base', prompt: ['a', 'b'], max_tokens: 2, stream: true },
    });
    const finished = lines.filter((l) => l.msg === 'generation finished');
    expect(finished.map((l) => [l.adapter, l.promptTokens])).toEqual(
      expect.arrayContaining([
        [null, 2],
        [null, 2],
      ]),
    );
    expect(new Set(finished.map((l) => l.requestId)).size).toBe(2);
  });

  it('is off with --disable-log-requests', async () => {
    const { lines } = appWithLog({ logRequests: false });
    expect(
      (await fake.app.inject({ method: 'POST', url: '/v1/completions', payload: completion })).statusCode,
    ).toBe(200);
    expect(lines.filter((l) => l.msg === 'generation finished')).toEqual([]);
  });
});

describe('request lines', () => {
  it('logs probes below info and everything else at info, one line per request', async () => {
    const { lines } = appWithLog();
    for (const url of ['/health', '/metrics', '/ping']) await fake.app.inject(url);
    await fake.app.inject('/v1/models');
    const requestLines = lines.filter((l) => l.msg === 'request completed' || l.msg === 'incoming request');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({ level: INFO, method: 'GET', url: '/v1/models', statusCode: 200 });
  });

  it('logs the probes at debug when asked for', async () => {
    const { lines } = appWithLog({}, 'debug');
    await fake.app.inject('/health');
    expect(lines.filter((l) => l.msg === 'request completed')).toEqual([
      expect.objectContaining({ level: 20, url: '/health' }),
    ]);
  });

  it('gives a 4xx line the error code and message the client got', async () => {
    const { lines } = appWithLog({ apiKey: 'k' });
    await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      headers: { authorization: 'Bearer k' },
      payload: { ...completion, temperature: 'hot' },
    });
    await fake.app.inject('/v1/models');
    const [bad, unauthorized] = lines.filter((l) => l.msg === 'request completed');
    expect(bad).toMatchObject({ statusCode: 400, errorCode: 'invalid_type' });
    expect(bad.error).toContain('temperature');
    expect(unauthorized).toMatchObject({ statusCode: 401, errorCode: 'invalid_api_key' });
  });

  it('leaves out --disable-access-log-for-endpoints paths (query or not), and all lines with --disable-uvicorn-access-log', async () => {
    const { lines } = appWithLog({ accessLogExcludedPaths: ['/v1/models', '/version'] }, 'debug');
    for (const url of ['/v1/models', '/v1/models?x=1', '/version', '/health']) await fake.app.inject(url);
    expect(lines.filter((l) => l.msg === 'request completed').map((l) => l.url)).toEqual(['/health']);

    await fake.app.close();
    const off = appWithLog({ accessLog: false }, 'debug');
    for (const url of ['/v1/models', '/health']) await fake.app.inject(url);
    await fake.app.inject({ method: 'POST', url: '/v1/completions', payload: completion });
    expect(off.lines.filter((l) => l.msg === 'request completed')).toEqual([]);
    // The generation lines are --disable-log-requests's to turn off, not this flag's.
    expect(off.lines.filter((l) => l.msg === 'generation finished')).toHaveLength(1);
  });

  it('truncates a huge URL in its line', async () => {
    const { lines } = appWithLog();
    await fake.app.inject(`/v1/models/${'y'.repeat(50_000)}`);
    const [line] = lines.filter((l) => l.msg === 'request completed');
    expect(String(line.url).length).toBeLessThan(400);
    expect(String(line.error).length).toBeLessThan(400);
  });
});

describe('the periodic stats line', () => {
  it('is written while requests run, with throughput, running/waiting and pool use, and not when idle', async () => {
    const { lines, stack } = appWithLog({ statsIntervalMs: 40 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(lines.filter((l) => l.msg === 'engine stats')).toEqual([]);
    // Long enough (40 tokens × 50 ms) that a loaded machine's late timers still see it running.
    stack.scheduler.tokenDelayMs = 50;
    const pending = fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { ...completion, max_tokens: 40 },
    });
    const busyLines = () => lines.filter((l) => l.msg === 'engine stats' && l.running === 1);
    for (let waited = 0; busyLines().length === 0 && waited < 1500; waited += 20)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const busy = busyLines();
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0]).toMatchObject({
      level: INFO,
      running: 1,
      waiting: 0,
      poolUsePercent: expect.any(Number),
    });
    expect(busy[0]).toHaveProperty('generationTokensPerSecond');
    expect(busy[0]).toHaveProperty('promptTokensPerSecond');
    await pending;
  });

  it('is not written without an interval (--disable-log-stats)', async () => {
    const { lines, stack } = appWithLog();
    stack.scheduler.tokenDelayMs = 10;
    await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { ...completion, max_tokens: 10 },
    });
    expect(lines.filter((l) => l.msg === 'engine stats')).toEqual([]);
  });
});
