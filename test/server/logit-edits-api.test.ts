import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * presence_penalty, frequency_penalty, repetition_penalty, logit_bias, min_tokens and min_p over
 * HTTP on the real stack (onnx engine): each reaches the sampler, and bad values are a 400 that
 * names the field. Their arithmetic is checked against a dense oracle in
 * test/scheduler/logit-edits.test.ts.
 */
const server = useTinyServer('onnx');

const BASE = {
  model: TINY_MODEL_NAME,
  prompt: 'The quick brown fox',
  max_tokens: 12,
  temperature: 0,
  ignore_eos: true,
};

async function complete(extra: object) {
  const res = await server().post('/v1/completions', { ...BASE, logprobs: 0, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const choice = res.body.choices[0];
  return {
    text: choice.text as string,
    tokens: choice.logprobs.tokens as string[],
    choice,
    usage: res.body.usage,
  };
}

async function tokenIds(text: string): Promise<number[]> {
  const res = await server().post('/tokenize', {
    model: TINY_MODEL_NAME,
    prompt: text,
    add_special_tokens: false,
  });
  return res.body.tokens;
}

describe('logit edits over HTTP', () => {
  it('logit_bias +100 makes greedy pick that token every time; -100 keeps it out', async () => {
    const plain = await complete({});
    const [first] = await tokenIds(plain.tokens[0]);
    const other = first === 100 ? 101 : 100;
    const forced = await complete({ logit_bias: { [String(other)]: 100 } });
    const otherText = (await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens: [other] })).body
      .prompt;
    expect(forced.tokens).toEqual(new Array(12).fill(otherText));
    const banned = await complete({ logit_bias: { [String(first)]: -100 } });
    expect(banned.tokens[0]).not.toBe(plain.tokens[0]);
    // Values past ±100 are clamped as vLLM does, not refused.
    expect((await complete({ logit_bias: { [String(other)]: 1e6 } })).tokens).toEqual(forced.tokens);
  });

  it('each penalty and min_p changes what is sampled, and the same request gives the same text', async () => {
    const plain = await complete({});
    for (const extra of [
      { frequency_penalty: 2 },
      { presence_penalty: 2 },
      { repetition_penalty: 3 },
      { repetition_penalty: 0.2 },
    ]) {
      const edited = await complete(extra);
      expect(edited.tokens, JSON.stringify(extra)).not.toEqual(plain.tokens);
      expect((await complete(extra)).tokens).toEqual(edited.tokens);
    }
    // min_p at 1 keeps only the most likely token: sampling at any temperature is then greedy.
    const hot = { temperature: 2, seed: 3 };
    expect((await complete({ ...hot, min_p: 1 })).tokens).toEqual(plain.tokens);
    expect((await complete(hot)).tokens).not.toEqual(plain.tokens);
  });

  it('min_tokens holds back a stop token until that many tokens are out', async () => {
    const plain = await complete({});
    const [first] = await tokenIds(plain.tokens[0]);
    const stopped = await complete({ stop_token_ids: [first] });
    expect(stopped.usage.completion_tokens).toBe(1);
    expect(stopped.choice).toMatchObject({ finish_reason: 'stop', stop_reason: first });
    const held = await complete({ stop_token_ids: [first], min_tokens: 5 });
    expect(held.usage.completion_tokens).toBeGreaterThan(5);
    expect(held.tokens.slice(0, 5)).not.toContain(plain.tokens[0]);
  });

  it('allowed_token_ids: every sampled token is one of them', async () => {
    const allowed = [100, 101, 102];
    const res = await server().post('/v1/completions', {
      ...BASE,
      temperature: 1.5,
      seed: 9,
      logprobs: 0,
      return_tokens_as_token_ids: true,
      allowed_token_ids: allowed,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const ids = (res.body.choices[0].logprobs.tokens as string[]).map((t) =>
      Number(t.slice('token_id:'.length)),
    );
    expect(ids).toHaveLength(12);
    for (const id of ids) expect(allowed).toContain(id);
  });

  it('bad_words: a word of the greedy answer no longer comes', async () => {
    const plain = await complete({ return_tokens_as_token_ids: true });
    const id = Number(plain.tokens[0].slice('token_id:'.length));
    const word = (await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens: [id] })).body.prompt;
    expect((await tokenIds(word.trimStart())).length).toBe(1);
    const [bare] = await tokenIds(word.trimStart());
    const banned = await complete({ return_tokens_as_token_ids: true, bad_words: [word] });
    const ids = banned.tokens.map((t) => Number(t.slice('token_id:'.length)));
    expect(ids).not.toContain(bare);
    expect(ids).not.toContain(id);
    expect(ids).not.toEqual(plain.tokens.map((t) => Number(t.slice('token_id:'.length))));
  });

  it('chat completions take the same fields', async () => {
    const res = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 4,
      frequency_penalty: 1,
      presence_penalty: 0.5,
      repetition_penalty: 1.2,
      min_p: 0.1,
      min_tokens: 2,
      logit_bias: { '65': 3 },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it.each([
    [{ presence_penalty: 2.5 }, 'presence_penalty'],
    [{ frequency_penalty: -3 }, 'frequency_penalty'],
    [{ repetition_penalty: 0 }, 'repetition_penalty'],
    [{ min_p: 1.5 }, 'min_p'],
    [{ min_tokens: -1 }, 'min_tokens'],
    [{ min_tokens: 13 }, 'min_tokens'],
    [{ logit_bias: { abc: 1 } }, 'logit_bias'],
    [{ logit_bias: { '1.5': 1 } }, 'logit_bias'],
    [{ logit_bias: { '99999999': 1 } }, 'logit_bias'],
    [{ logit_bias: { '5': 'x' } }, 'logit_bias'],
    [{ allowed_token_ids: [] }, 'allowed_token_ids'],
    [{ bad_words: [''] }, 'bad_words'],
    [{ allowed_token_ids: [5, 99999999] }, 'allowed_token_ids'],
  ])('refuses %j with a 400 naming %s', async (extra, param) => {
    const res = await server().post('/v1/completions', { ...BASE, ...extra });
    expect(res.status).toBe(400);
    expect(res.body.error.param).toMatch(new RegExp(`^${param}`));
    expect(res.body.error.type).toBe('invalid_request_error');
  });
});
