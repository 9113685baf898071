import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

const server = useTinyServer('onnx');

describe('the vLLM surface over the real stack (onnx)', () => {
  it('answers a batch of prompts exactly as the same prompts sent one by one (greedy)', async () => {
    const prompts = ['Once upon', 'The cat sat', 'x'];
    const one = async (prompt: string) =>
      (await server().post('/v1/completions', { model: 'tiny-r4', prompt, max_tokens: 6, temperature: 0 }))
        .body;
    const singles = await Promise.all(prompts.map(one));
    const batch = await server().post('/v1/completions', {
      model: 'tiny-r4',
      prompt: prompts,
      max_tokens: 6,
      temperature: 0,
      n: 2,
    });
    expect(batch.status).toBe(200);
    expect(batch.body.choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual(
      singles.flatMap((s, p) => [
        [2 * p, s.choices[0].text],
        [2 * p + 1, s.choices[0].text],
      ]),
    );
    const promptTokens = singles.reduce((sum, s) => sum + s.usage.prompt_tokens, 0);
    expect(batch.body.usage).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 2 * 3 * 6 });
  });

  it('says which stop string ended a choice (stop_reason), and cuts the text before it', async () => {
    const body = { model: TINY_MODEL_NAME, prompt: 'Hello there', max_tokens: 12, temperature: 0 };
    const free = (await server().post('/v1/completions', body)).body.choices[0];
    expect(free).toMatchObject({ finish_reason: 'length', stop_reason: null });
    const stop = free.text.slice(4, 6);
    const stopped = (await server().post('/v1/completions', { ...body, stop: ['never-there', stop] })).body
      .choices[0];
    expect(stopped).toEqual({
      index: 0,
      text: free.text.slice(0, free.text.indexOf(stop)),
      logprobs: null,
      finish_reason: 'stop',
      stop_reason: stop,
      prompt_logprobs: null,
    });
  });

  it("tokenizes as generation does and detokenizes back, with the model's tokenizer", async () => {
    const text = 'Hello world, again';
    const tokenized = await server().post('/tokenize', { model: TINY_MODEL_NAME, prompt: text });
    const expected = server().stack.tokenizer.encode(text, true);
    expect(tokenized.body).toEqual({
      count: expected.length,
      max_model_len: 256,
      tokens: expected,
      token_strs: null,
    });
    // LoRAX's form: the same ids, and spans that read the text back.
    const lorax = await server().post('/tokenize', { inputs: text });
    expect(lorax.body.map((t: { id: number }) => t.id)).toEqual(expected);
    const spans = lorax.body.map((t: { start: number; stop: number }) => text.slice(t.start, t.stop));
    expect(spans.join('')).toBe(text);
    const detokenized = await server().post('/detokenize', { model: 'tiny-r4', tokens: expected });
    expect(detokenized.body.prompt).toBe(server().stack.tokenizer.decode(expected, false));
    expect(detokenized.body.prompt.endsWith(text)).toBe(true);
  });

  it("serves the OpenAI client's models.retrieve and a batched completions.create", async () => {
    const card = await server().client.models.retrieve('tiny-r8');
    expect(card).toMatchObject({ id: 'tiny-r8', object: 'model', parent: TINY_MODEL_NAME });
    const completion = await server().client.completions.create({
      model: 'tiny-r8',
      prompt: ['a', 'b'],
      max_tokens: 2,
      temperature: 0,
    });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(completion.system_fingerprint).toBeNull();
  });
});
