import { describe, expect, it } from 'vitest';
import { sseEvents } from './fake-stack.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/** vLLM's return_tokens_as_token_ids and stream_options.continuous_usage_stats on the real stack. */
const server = useTinyServer('onnx');

const GREEDY = { model: TINY_MODEL_NAME, max_tokens: 4, temperature: 0, ignore_eos: true };

interface Chunk {
  choices: unknown[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

async function stream(url: string, body: object): Promise<Chunk[]> {
  const res = await fetch(`${server().baseURL}${url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  return sseEvents(await res.text())
    .filter((e) => e !== '[DONE]')
    .map((e) => JSON.parse(e) as Chunk);
}

describe('vLLM response extras', () => {
  it('return_tokens_as_token_ids names each logprob token by its id, on both routes', async () => {
    const plain = await server().post('/v1/completions', { ...GREEDY, prompt: 'Hi', logprobs: 2 });
    const ids = await server().post('/v1/completions', {
      ...GREEDY,
      prompt: 'Hi',
      logprobs: 2,
      return_tokens_as_token_ids: true,
    });
    const tokens: string[] = ids.body.choices[0].logprobs.tokens;
    expect(tokens).toHaveLength(4);
    for (const t of tokens) expect(t).toMatch(/^token_id:\d+$/);
    // Each id decodes to the token the plain answer wrote, and the sampled text is unchanged.
    const decoded = await Promise.all(
      tokens.map(
        async (t) =>
          (await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens: [Number(t.slice(9))] })).body
            .prompt,
      ),
    );
    expect(decoded).toEqual(plain.body.choices[0].logprobs.tokens);
    expect(ids.body.choices[0].text).toBe(plain.body.choices[0].text);
    for (const top of ids.body.choices[0].logprobs.top_logprobs)
      for (const key of Object.keys(top)) expect(key).toMatch(/^token_id:\d+$/);
    const chat = await server().post('/v1/chat/completions', {
      ...GREEDY,
      messages: [{ role: 'user', content: 'Hi' }],
      logprobs: true,
      top_logprobs: 1,
      return_tokens_as_token_ids: true,
    });
    const entry = chat.body.choices[0].logprobs.content[0];
    expect(entry.token).toMatch(/^token_id:\d+$/);
    expect(entry.bytes).toEqual([...Buffer.from(entry.token)]);
    expect(entry.top_logprobs[0].token).toMatch(/^token_id:\d+$/);
  });

  it('continuous_usage_stats puts the usage so far in every chunk; include_usage alone puts null', async () => {
    const body = { ...GREEDY, prompt: 'Hi' };
    const running = await stream('/completions', {
      ...body,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    });
    const withChoices = running.filter((c) => c.choices.length > 0);
    expect(withChoices.length).toBeGreaterThan(0);
    const counts = withChoices.map((c) => c.usage?.completion_tokens ?? -1);
    expect(counts.at(-1)).toBe(4);
    expect([...counts].sort((a, b) => a - b)).toEqual(counts);
    for (const { usage } of withChoices)
      expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
    expect(running.at(-1)?.usage?.completion_tokens).toBe(4);
    const once = await stream('/completions', { ...body, stream_options: { include_usage: true } });
    for (const c of once.filter((x) => x.choices.length > 0)) expect(c.usage).toBeNull();
    // Without include_usage it does nothing (vLLM: both are needed).
    const neither = await stream('/completions', {
      ...body,
      stream_options: { continuous_usage_stats: true },
    });
    for (const c of neither) expect(c.usage).toBeUndefined();
  });
});

describe("vLLM's --return-tokens-as-token-ids and --response-role", () => {
  const flagged = useTinyServer('onnx', {}, { returnTokensAsTokenIds: true, responseRole: 'narrator' });

  it('writes tokens as ids by default with the flag, unless a request says false', async () => {
    const body = { ...GREEDY, prompt: 'Hi', logprobs: 1 };
    const byDefault = await flagged().post('/v1/completions', body);
    for (const t of byDefault.body.choices[0].logprobs.tokens) expect(t).toMatch(/^token_id:\d+$/);
    const asked = await flagged().post('/v1/completions', { ...body, return_tokens_as_token_ids: false });
    expect(asked.body.choices[0].logprobs.tokens.some((t: string) => t.startsWith('token_id:'))).toBe(false);
  });

  it("answers in the flag's role after a generation prompt, in the last message's without one", async () => {
    const messages = [{ role: 'user', content: 'Hi' }];
    const answer = await flagged().post('/v1/chat/completions', { ...GREEDY, messages });
    expect(answer.body.choices[0].message.role).toBe('narrator');
    const continued = await flagged().post('/v1/chat/completions', {
      ...GREEDY,
      messages: [...messages, { role: 'assistant', content: 'Hello' }],
      add_generation_prompt: false,
      continue_final_message: true,
    });
    expect(continued.body.choices[0].message.role).toBe('assistant');
    const chunks = await fetch(`${flagged().baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...GREEDY, messages, stream: true }),
    });
    const first = JSON.parse(sseEvents(await chunks.text())[0]);
    expect(first.choices[0].delta.role).toBe('narrator');
  });
});
