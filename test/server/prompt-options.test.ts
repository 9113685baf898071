import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/** vLLM's add_special_tokens (completions) and truncate_prompt_tokens (both routes) on the real stack. */
const server = useTinyServer('onnx');

const BASE = { model: TINY_MODEL_NAME, max_tokens: 2, temperature: 0 };
const IDS = Array.from({ length: 300 }, (_, i) => 70 + (i % 50));

describe('prompt options', () => {
  it('add_special_tokens: false leaves out the BOS a string prompt gets by default', async () => {
    const withBos = await server().post('/v1/completions', { ...BASE, prompt: 'Hello there' });
    const without = await server().post('/v1/completions', {
      ...BASE,
      prompt: 'Hello there',
      add_special_tokens: false,
    });
    expect(withBos.status).toBe(200);
    expect(without.body.usage.prompt_tokens).toBe(withBos.body.usage.prompt_tokens - 1);
  });

  it('truncate_prompt_tokens keeps the last k tokens, so a prompt past the context runs', async () => {
    // 300 tokens against max_model_len 256: refused whole, served cut to its last 100.
    expect((await server().post('/v1/completions', { ...BASE, prompt: IDS })).status).toBe(400);
    const cut = await server().post('/v1/completions', {
      ...BASE,
      prompt: IDS,
      truncate_prompt_tokens: 100,
      echo: true,
    });
    expect(cut.status, JSON.stringify(cut.body)).toBe(200);
    expect(cut.body.usage.prompt_tokens).toBe(100);
    const tail = await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens: IDS.slice(-100) });
    expect(cut.body.choices[0].text.startsWith(tail.body.prompt)).toBe(true);
    // The same as sending those 100 tokens.
    const same = await server().post('/v1/completions', { ...BASE, prompt: IDS.slice(-100) });
    expect(cut.body.choices[0].text.slice(tail.body.prompt.length)).toBe(same.body.choices[0].text);
    // -1 keeps max_model_len tokens; a short prompt is left whole.
    const short = await server().post('/v1/completions', {
      ...BASE,
      prompt: [5, 6, 7],
      truncate_prompt_tokens: -1,
    });
    expect(short.body.usage.prompt_tokens).toBe(3);
  });

  it('truncate_prompt_tokens applies to chat prompts too', async () => {
    const res = await server().post('/v1/chat/completions', {
      ...BASE,
      messages: [{ role: 'user', content: 'Tell me about the sea and the sky.' }],
      truncate_prompt_tokens: 5,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.usage.prompt_tokens).toBe(5);
  });

  it.each([
    [0, 'truncate_prompt_tokens must be -1 or at least 1.'],
    [257, 'truncate_prompt_tokens value (257) is greater than max_model_len (256).'],
    [-2, "'truncate_prompt_tokens' must be >= -1."],
  ])('refuses truncate_prompt_tokens %s with a 400 that names it', async (k, message) => {
    const res = await server().post('/v1/completions', { ...BASE, prompt: 'Hi', truncate_prompt_tokens: k });
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('truncate_prompt_tokens');
    expect(res.body.error.message).toContain(message);
  });
});
