import { describe, expect, it } from 'vitest';
import { sseEvents } from './fake-stack.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * vLLM's return_token_ids on the real stack: each choice gives the token ids it generated and the
 * prompt's, streamed (the prompt's with a choice's first chunk, each chunk its own tokens) or
 * whole alike, the ids agreeing with /tokenize, /detokenize and usage.
 */
const server = useTinyServer('onnx');

interface Chunk {
  prompt_token_ids?: number[];
  choices: Array<{
    index: number;
    text?: string;
    delta?: { content?: string };
    token_ids?: number[];
    prompt_token_ids?: number[];
  }>;
}

/** The data events of a streamed answer. */
async function chunks(url: string, body: object): Promise<Chunk[]> {
  const res = await fetch(`${server().baseURL.replace(/\/v1$/, '')}${url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  expect(res.status).toBe(200);
  return sseEvents(await res.text())
    .filter((e) => e !== '[DONE]')
    .map((e) => JSON.parse(e) as Chunk);
}

async function detokenize(tokens: number[]): Promise<string> {
  const res = await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens });
  return res.body.prompt as string;
}

describe('return_token_ids', () => {
  it('completions: each choice has its prompt and generated ids, whole or streamed', async () => {
    const body = {
      model: TINY_MODEL_NAME,
      prompt: ['Once upon', 'a time'],
      max_tokens: 12,
      n: 2,
      temperature: 0.9,
      seed: 3,
      return_token_ids: true,
    };
    const res = await server().post('/v1/completions', body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    let generated = 0;
    for (const choice of res.body.choices) {
      const prompt = body.prompt[Math.floor(choice.index / 2)];
      const tokenized = await server().post('/tokenize', { model: TINY_MODEL_NAME, prompt });
      expect(choice.prompt_token_ids).toEqual(tokenized.body.tokens);
      expect(await detokenize(choice.token_ids)).toBe(choice.text);
      generated += choice.token_ids.length;
    }
    expect(generated).toBe(res.body.usage.completion_tokens);

    const streamed = await chunks('/v1/completions', body);
    const ids = new Map<number, number[]>();
    for (const chunk of streamed)
      for (const c of chunk.choices) {
        // The prompt's ids come once, with the choice's first chunk.
        expect(c.prompt_token_ids !== undefined).toBe(!ids.has(c.index));
        ids.set(c.index, [...(ids.get(c.index) ?? []), ...(c.token_ids ?? [])]);
      }
    for (const choice of res.body.choices) expect(ids.get(choice.index)).toEqual(choice.token_ids);
  });

  it('chat: the prompt ids beside the choices, each choice its own ids, whole or streamed', async () => {
    const messages = [{ role: 'user', content: 'Tell me a story.' }];
    const body = { model: TINY_MODEL_NAME, messages, max_tokens: 10, temperature: 0, return_token_ids: true };
    const res = await server().post('/v1/chat/completions', body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const tokenized = await server().post('/tokenize', { model: TINY_MODEL_NAME, messages });
    expect(res.body.prompt_token_ids).toEqual(tokenized.body.tokens);
    const [choice] = res.body.choices;
    expect(choice.token_ids).toHaveLength(res.body.usage.completion_tokens);
    expect(await detokenize(choice.token_ids)).toBe(choice.message.content);

    const streamed = await chunks('/v1/chat/completions', body);
    const withPrompt = streamed.filter((c) => c.prompt_token_ids !== undefined);
    expect(withPrompt).toHaveLength(1);
    expect(withPrompt[0].prompt_token_ids).toEqual(tokenized.body.tokens);
    expect(streamed.flatMap((c) => c.choices.flatMap((x) => x.token_ids ?? []))).toEqual(choice.token_ids);
  });

  it('gives no ids unless asked', async () => {
    const res = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
    });
    expect(res.body.prompt_token_ids).toBeUndefined();
    expect(res.body.choices[0].token_ids).toBeUndefined();
    const streamed = await chunks('/v1/completions', { model: TINY_MODEL_NAME, prompt: 'hi', max_tokens: 3 });
    expect(
      streamed.every((c) =>
        c.choices.every((x) => x.token_ids === undefined && x.prompt_token_ids === undefined),
      ),
    ).toBe(true);
  });
});
