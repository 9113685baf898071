import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { maxBodyBytes, maxPromptChars } from '../../server/request-limits.js';
import { fakeAppPerTest } from './fake-app.js';
import { fakeStack } from './fake-stack.js';

const fake = fakeAppPerTest();
const { start, post } = fake;

describe('request size bounds derived from the model', () => {
  it('answers 413 to a body longer than the longest legal prompt needs, declared or chunked', async () => {
    const stack = start();
    const limit = maxBodyBytes(stack);
    expect(limit).toBeLessThan(200_000);
    const big = JSON.stringify({ model: 'tiny-base', prompt: 'x'.repeat(limit) });
    const declared = await post('/v1/completions', JSON.parse(big));
    expect(declared.statusCode).toBe(413);
    expect(declared.json().error).toMatchObject({ code: 'request_too_large', type: 'invalid_request_error' });

    await fake.app.listen({ host: '127.0.0.1', port: 0 });
    const address = fake.app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    // Chunks keep coming past the limit: the answer must come (or the connection be cut) long
    // before the body ends. The server may reset the socket while unread chunks are in flight,
    // so the reply is read as raw bytes and a reset counts as a cut.
    const outcome = await new Promise<{ reply: string; sent: number }>((resolve) => {
      const socket = connect(address.port, '127.0.0.1');
      let reply = '';
      let sent = 0;
      const chunk = 'x'.repeat(16 * 1024);
      const timer = setInterval(() => {
        if (reply || socket.destroyed || sent > 64 * limit) return;
        socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
        sent += chunk.length;
      }, 1);
      const done = () => {
        clearInterval(timer);
        socket.destroy();
        resolve({ reply, sent });
      };
      socket.on('data', (data) => {
        reply += data;
        if (reply.includes('\r\n\r\n')) done();
      });
      socket.on('close', done);
      socket.on('error', done);
      socket.write(
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      );
    });
    expect(outcome.sent).toBeLessThan(8 * limit);
    if (outcome.reply) expect(outcome.reply).toMatch(/^HTTP\/1\.1 413/);
  });

  it('refuses a prompt with more characters than max_model_len tokens can hold before tokenizing it', async () => {
    const stack = start();
    let encoded = 0;
    const encode = stack.tokenizer.encode.bind(stack.tokenizer);
    stack.tokenizer.encode = (text, special) => {
      encoded++;
      return encode(text, special);
    };
    const tooLong = 'y'.repeat(maxPromptChars(stack) + 1);
    const res = await post('/v1/completions', { model: 'tiny-base', prompt: tooLong });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'context_length_exceeded', param: 'prompt' });
    const chat = await post('/v1/chat/completions', {
      model: 'tiny-base',
      messages: [
        { role: 'system', content: 'y'.repeat(maxPromptChars(stack) / 2) },
        { role: 'user', content: 'y'.repeat(maxPromptChars(stack) / 2 + 1) },
      ],
    });
    expect(chat.statusCode).toBe(400);
    expect(chat.json().error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    expect(encoded).toBe(0);
  });

  it('bounds n by --max-n, --max-num-seqs and the waiting-queue cap with 400s that name the limit', async () => {
    fake.app = buildApp({ stack: fakeStack({ maxNumSeqs: 8, maxWaiting: 6 }), maxN: 4 });
    const ask = (n: number) =>
      post('/v1/completions', { model: 'tiny-base', prompt: 'hi', n, max_tokens: 2 });
    expect((await ask(4)).statusCode).toBe(200);
    const pastMaxN = await ask(5);
    expect(pastMaxN.statusCode).toBe(400);
    expect(pastMaxN.json().error).toMatchObject({ param: 'n' });
    expect(pastMaxN.json().error.message).toContain('--max-n');

    fake.app = buildApp({ stack: fakeStack({ maxNumSeqs: 8, maxWaiting: 6 }), maxN: 100 });
    const pastQueue = await ask(7);
    expect(pastQueue.statusCode).toBe(400);
    expect(pastQueue.json().error.message).toContain('waiting-queue');
  });

  it('quotes at most 256 characters of an unknown model name or URL', async () => {
    start();
    const name = 'm'.repeat(50_000);
    const res = await post('/v1/completions', { model: name, prompt: 'hi' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message.length).toBeLessThan(400);
    expect(res.json().error.message).toContain('(50000 characters)');
    const url = await fake.app.inject(`/v1/${'u'.repeat(8000)}`);
    expect(url.statusCode).toBe(404);
    expect(url.json().error.message.length).toBeLessThan(400);
  });
});
