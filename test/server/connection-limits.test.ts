import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { buildApp, type ConnectionLimits } from '../../server/app.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack, sseEvents } from './fake-stack.js';

/** Sockets are cut, not held: slow senders, and connections past the cap (real sockets). */
const fake = fakeAppPerTest();
const LIMITS = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 200, maxConnections: 3 };

async function listen(limits: Partial<ConnectionLimits> = {}): Promise<number> {
  const stack = fakeStack();
  fake.app = buildApp({ stack, connections: { ...LIMITS, ...limits } });
  await fake.app.listen({ host: '127.0.0.1', port: 0 });
  const address = fake.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Milliseconds until the server ends the socket, while `drip` writes a byte every 50 ms. */
function timeUntilCut(socket: Socket, drip: string): Promise<{ ms: number; reply: string }> {
  const began = Date.now();
  let reply = '';
  socket.on('data', (data) => {
    reply += data;
  });
  const timer = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write(drip);
  }, 50);
  return new Promise((resolve) => {
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ ms: Date.now() - began, reply });
    });
    socket.on('error', () => {});
  });
}

describe('connection limits', () => {
  it('cuts a client that sends its headers a byte at a time', async () => {
    const socket = await open(await listen());
    socket.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\n');
    const { ms, reply } = await timeUntilCut(socket, 'X');
    expect(ms).toBeLessThan(3000);
    expect(reply === '' || reply.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it('cuts a client that sends its body a byte at a time', async () => {
    const socket = await open(await listen());
    socket.write(
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":"',
    );
    const { ms } = await timeUntilCut(socket, 'm');
    expect(ms).toBeLessThan(3000);
  });

  it('refuses connections past the cap and serves again once they close', async () => {
    const port = await listen();
    const held = await Promise.all([open(port), open(port), open(port)]);
    const extra = await open(port);
    const closed = await new Promise<boolean>((resolve) => {
      extra.on('close', () => resolve(true));
      extra.on('error', () => {});
      setTimeout(() => resolve(false), 2000);
    });
    expect(closed).toBe(true);
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it("answers headers past --h11-max-incomplete-event-size with a 431 in OpenAI's shape, and serves on", async () => {
    const port = await listen({ maxHeaderBytes: 2048 });
    const res = await fetch(`http://127.0.0.1:${port}/health`, { headers: { 'x-big': 'a'.repeat(4096) } });
    expect(res.status).toBe(431);
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'request_header_fields_too_large',
      message: expect.stringContaining('2048 bytes'),
    });
    expect(
      (await fetch(`http://127.0.0.1:${port}/health`, { headers: { 'x-big': 'a'.repeat(1000) } })).status,
    ).toBe(200);
  });

  it('refuses more headers than --h11-max-header-count (431) rather than dropping the rest', async () => {
    const port = await listen({ maxHeaderCount: 8 });
    /** The reply to a GET /health with Host and `n` more headers, on a socket of its own. */
    const withHeaders = async (n: number): Promise<string> => {
      const socket = await open(port);
      const extra = Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');
      socket.write(`GET /health HTTP/1.1\r\nHost: x\r\n${extra}Connection: close\r\n\r\n`);
      return (await timeUntilCut(socket, '')).reply;
    };
    expect(await withHeaders(6)).toMatch(/^HTTP\/1.1 200/);
    const refused = await withHeaders(7);
    expect(refused).toMatch(/^HTTP\/1.1 431/);
    const body = JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4)) as { error: { message: string } };
    expect(body.error.message).toMatch(/more than 8 headers.*--h11-max-header-count/);
  });

  it("answers a request that is not HTTP with a 400 in OpenAI's shape", async () => {
    const socket = await open(await listen());
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    const { reply } = await timeUntilCut(socket, '');
    expect(reply).toMatch(/^HTTP\/1.1 400 Bad Request/);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).error.code).toBe('bad_request');
  });

  it('lets a response run longer than the request deadline', async () => {
    const port = await listen();
    (fake.app.loom.stack as ReturnType<typeof fakeStack>).scheduler.tokenDelayMs = 50;
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: 'x', max_tokens: 24, stream: true }),
    });
    const began = Date.now();
    const events = sseEvents(new TextDecoder().decode(await res.arrayBuffer()));
    expect(Date.now() - began).toBeGreaterThan(LIMITS.requestTimeoutMs);
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).choices[0].finish_reason).toBe('length');
  });
});
