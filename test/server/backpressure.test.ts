import { rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlmEngine } from '../../scheduler/llm-engine.js';
import { buildApp } from '../../server/app.js';
import { buildServingStack } from '../../server/serving-stack.js';
import { TINY_MODEL_NAME, writeTinyModel } from './tiny-server.js';

/**
 * A streaming client that stops reading its socket, against the real stack: the server must not
 * buffer its output without bound. Its request pauses (socket and stream buffers full, then a few
 * unread deltas per choice), other streams keep flowing, and past --stream-stall-timeout it is
 * aborted: its pages return and, if the client reads again, its stream ends with an error event.
 * The server listens on a Unix socket: the kernel buffers ~200 KB of it, where TCP on loopback
 * autotunes to several MB, more than this tiny model writes in a test's time.
 */

const N = 16;
const MAX_TOKENS = 480;
const STALL_TIMEOUT_S = 3;

let root: string;
let app: FastifyInstance;
let llm: LlmEngine;
let path: string;

beforeAll(async () => {
  const model = await writeTinyModel();
  root = model.root;
  const stack = await buildServingStack(
    {
      modelDir: model.modelDir,
      loraModules: model.adapters,
      servedModelName: null,
      maxModelLen: 512,
      maxNumSeqs: 32,
      maxNumBatchedTokens: 512,
      engine: 'onnx',
      poolSize: '16MiB',
      chatTemplateFile: null,
      seed: 1234,
      streamStallTimeoutSeconds: STALL_TIMEOUT_S,
    },
    { info: () => {} },
  );
  llm = stack.scheduler as LlmEngine;
  app = buildApp({ stack });
  path = join(root, 'loom.sock');
  await app.listen({ path });
}, 60_000);

afterAll(async () => {
  await app?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Sends a streaming completion on a raw socket; `paused`: the client never reads it. */
function streamingRequest(body: object, paused: boolean): Socket {
  const json = JSON.stringify({ model: TINY_MODEL_NAME, stream: true, ...body });
  const socket = connect({ path });
  if (paused) socket.pause();
  socket.write(
    `POST /v1/completions HTTP/1.1\r\nhost: loom\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
  );
  return socket;
}

/** Reads the socket until the stream's [DONE]: its `data:` payloads. */
function eventsOf(socket: Socket): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (!received.includes('data: [DONE]')) return;
      socket.destroy();
      resolve(
        received
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice('data: '.length)),
      );
    });
    socket.on('error', reject);
    socket.resume();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Generated tokens stop growing: what the stack produced no longer changes over `ms`. */
async function settledTokens(ms: number): Promise<number> {
  let before = -1;
  let now = llm.stats().numGeneratedTokens;
  while (now !== before) {
    before = now;
    await sleep(ms);
    now = llm.stats().numGeneratedTokens;
  }
  return now;
}

describe('a streaming client that stops reading', () => {
  it('pauses its request, lets other streams run, then aborts it at the stall timeout and frees its pages', async () => {
    const socket = streamingRequest(
      { prompt: 'Once upon a time', max_tokens: MAX_TOKENS, n: N, ignore_eos: true },
      true,
    );
    while (llm.stats().numRequests === 0) await sleep(5);
    const pausedAt = await settledTokens(300);
    // Paused well short of its 16 × 480 tokens: the output it holds is bounded by the flow control.
    expect(pausedAt).toBeLessThan((N * MAX_TOKENS) / 2);
    expect(llm.stats().numRequests).toBe(1);
    expect(llm.stats().numKvPages).toBeGreaterThan(0);

    // Another client's stream runs to its end meanwhile.
    const other = await eventsOf(
      streamingRequest(
        { prompt: 'Hello', max_tokens: 40, ignore_eos: true, stream_options: { include_usage: true } },
        false,
      ),
    );
    expect(other.at(-1)).toBe('[DONE]');
    expect(
      (JSON.parse(other.at(-2)!) as { usage: { completion_tokens: number } }).usage.completion_tokens,
    ).toBe(40);
    expect(llm.stats().numRequests).toBe(1);

    // The stall timeout aborts it: every page it held comes back.
    const deadline = Date.now() + (STALL_TIMEOUT_S + 5) * 1000;
    while (llm.stats().numRequests > 0 && Date.now() < deadline) await sleep(50);
    expect(llm.stats().numRequests).toBe(0);
    expect(llm.stats().numKvPages).toBe(0);

    // Reading again, the client finds the output produced before the pause, then why it ended.
    const events = await eventsOf(socket);
    expect(events.at(-1)).toBe('[DONE]');
    const last = JSON.parse(events.at(-2)!) as { error: { code: string; message: string } };
    expect(last.error.code).toBe('stream_stalled');
    expect(last.error.message).toMatch(/read none of its stream for 3 s/);
    const tokensSent = events
      .slice(0, -2)
      .filter((e) => (JSON.parse(e) as { choices: unknown[] }).choices.length);
    expect(tokensSent.length).toBeGreaterThan(0);
    expect(tokensSent.length).toBeLessThanOrEqual(pausedAt);
  }, 60_000);
});
