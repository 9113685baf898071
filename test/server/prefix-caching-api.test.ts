import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import type { EngineChoice } from '../../kernels/engine-factory.js';
import { parsePrometheusText, sampleValue } from './prometheus-text.js';
import { startTinyServer, type TinyServer } from './tiny-server.js';

const SYSTEM = 'You are a careful assistant. Answer in one short sentence, and never use lists or tables. ';
const QUESTIONS = ['What is the capital of France?', 'Why is the sky blue?'];
const ASK = { temperature: 0, max_tokens: 6, ignore_eos: true, logprobs: 3 } as const;

interface Answer {
  text: string;
  topLogprobs: Array<Record<string, number>>;
  cached: number | null;
}

async function complete(
  server: TinyServer,
  model: string,
  prompt: string,
  extra: object = {},
): Promise<Answer> {
  const res = (await server.client.completions.create({
    ...ASK,
    model,
    prompt,
    ...extra,
  } as never)) as OpenAI.Completion;
  const details = (res.usage as { prompt_tokens_details?: { cached_tokens: number } | null } | undefined)
    ?.prompt_tokens_details;
  return {
    text: res.choices[0].text,
    topLogprobs: (res.choices[0].logprobs?.top_logprobs ?? []) as Array<Record<string, number>>,
    cached: details ? details.cached_tokens : null,
  };
}

function expectSameAnswer(actual: Answer, expected: Answer): void {
  expect(actual.text).toBe(expected.text);
  expect(actual.topLogprobs.length).toBe(expected.topLogprobs.length);
  actual.topLogprobs.forEach((row, i) => {
    expect(Object.keys(row)).toEqual(Object.keys(expected.topLogprobs[i]));
    for (const [token, logprob] of Object.entries(row))
      expect(Math.abs(logprob - expected.topLogprobs[i][token])).toBeLessThan(1e-4);
  });
}

/** Answers without prefix caching: every prompt computed in full. */
async function fullyComputed(engine: EngineChoice, prompts: Array<[string, string]>): Promise<Answer[]> {
  const server = await startTinyServer(engine, { enablePrefixCaching: false });
  try {
    const answers: Answer[] = [];
    for (const [model, prompt] of prompts) answers.push(await complete(server, model, prompt));
    return answers;
  } finally {
    await server.close();
  }
}

describe.each(['reference', 'onnx'] as const)('prefix caching on the %s engine', (engine) => {
  it('answers from cached blocks exactly as from a full prefill, for the base model and an adapter', async () => {
    const prompts: Array<[string, string]> = [
      ['tiny-base', SYSTEM + QUESTIONS[0]],
      ['tiny-base', SYSTEM + QUESTIONS[1]],
      ['tiny-r8', SYSTEM + QUESTIONS[0]],
      ['tiny-r8', SYSTEM + QUESTIONS[1]],
    ];
    const expected = await fullyComputed(engine, prompts);
    const server = await startTinyServer(engine, {}, { promptTokensDetails: true });
    try {
      const first = await complete(server, ...prompts[0]);
      expect(first.cached).toBe(0);
      expectSameAnswer(first, expected[0]);
      // The same system prompt: its full blocks come from the cache, the question is computed.
      const second = await complete(server, ...prompts[1]);
      expect(second.cached).toBeGreaterThan(0);
      expectSameAnswer(second, expected[1]);
      // The adapter's K/V differ from the base model's: nothing is shared with them...
      const adapted = await complete(server, ...prompts[2]);
      expect(adapted.cached).toBe(0);
      expectSameAnswer(adapted, expected[2]);
      // ...but the adapter's own requests share theirs.
      const adaptedAgain = await complete(server, ...prompts[3]);
      expect(adaptedAgain.cached).toBe(second.cached);
      expectSameAnswer(adaptedAgain, expected[3]);
      // The same prompt again: all but its last token's block.
      const repeated = await complete(server, ...prompts[0]);
      expect(repeated.cached).toBeGreaterThan(second.cached!);
      expectSameAnswer(repeated, expected[0]);

      const metrics = parsePrometheusText(
        await (await fetch(server.baseURL.replace(/\/v1$/, '/metrics'))).text(),
      );
      const model = { model_name: 'tiny-base' };
      expect(sampleValue(metrics, 'vllm:prefix_cache_hits_total', model)).toBe(
        second.cached! + adaptedAgain.cached! + repeated.cached!,
      );
      expect(sampleValue(metrics, 'vllm:prefix_cache_queries_total', model)).toBeGreaterThan(
        sampleValue(metrics, 'vllm:prefix_cache_hits_total', model),
      );
    } finally {
      await server.close();
    }
  });
});

describe('cache_salt', () => {
  it('keeps salted requests apart, and refuses an empty salt as vLLM does', async () => {
    const server = await startTinyServer('reference', {}, { promptTokensDetails: true });
    try {
      const prompt = SYSTEM + QUESTIONS[0];
      expect((await complete(server, 'tiny-base', prompt)).cached).toBe(0);
      expect((await complete(server, 'tiny-base', prompt, { cache_salt: 'tenant-a' })).cached).toBe(0);
      expect(
        (await complete(server, 'tiny-base', prompt, { cache_salt: 'tenant-a' })).cached,
      ).toBeGreaterThan(0);
      const chat = await server.post('/v1/chat/completions', {
        model: 'tiny-base',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 2,
        cache_salt: '',
      });
      expect(chat.status).toBe(400);
      expect(chat.body.error.message).toBe("Parameter 'cache_salt' must be a non-empty string if provided.");
      expect(chat.body.error.param).toBe('cache_salt');
      const wrongType = await server.post('/v1/completions', {
        model: 'tiny-base',
        prompt: 'Hi',
        cache_salt: 7,
      });
      expect(wrongType.status).toBe(400);
      // Without --enable-prompt-tokens-details, vLLM answers null.
      const plain = await startTinyServer('reference');
      try {
        expect((await complete(plain, 'tiny-base', prompt)).cached).toBeNull();
      } finally {
        await plain.close();
      }
    } finally {
      await server.close();
    }
  });
});

describe("vLLM's POST /reset_prefix_cache (VLLM_SERVER_DEV_MODE)", () => {
  it('drops every cached block, also while a stream runs, and the answers stay the same', async () => {
    const server = await startTinyServer('reference', {}, { promptTokensDetails: true, devEndpoints: true });
    const reset = (query = '') =>
      fetch(server.baseURL.replace(/\/v1$/, `/reset_prefix_cache${query}`), { method: 'POST' });
    try {
      const prompt = SYSTEM + QUESTIONS[0];
      const first = await complete(server, 'tiny-base', prompt);
      expect((await complete(server, 'tiny-base', prompt)).cached).toBeGreaterThan(0);
      const res = await reset();
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('');
      const afterReset = await complete(server, 'tiny-base', prompt);
      expect(afterReset.cached).toBe(0);
      expectSameAnswer(afterReset, first);

      // Reset while a stream is mid-way: it runs to the end on its own blocks, and what it cached
      // before the reset is not found afterwards.
      const stream = await server.client.completions.create({
        model: 'tiny-base',
        prompt: SYSTEM + QUESTIONS[1],
        max_tokens: 24,
        temperature: 0,
        ignore_eos: true,
        stream: true,
      } as never);
      let text = '';
      let resetDone: Promise<Response> | null = null;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
        text += chunk.choices[0]?.text ?? '';
        resetDone ??= reset('?reset_running_requests=true&reset_external=false');
      }
      expect((await resetDone!).status).toBe(200);
      expect(text.length).toBeGreaterThan(0);
      expect((await complete(server, 'tiny-base', prompt)).cached).toBe(0);

      const bad = await reset('?reset_running_requests=maybe');
      expect(bad.status).toBe(400);
      const sleeping = await fetch(server.baseURL.replace(/\/v1$/, '/is_sleeping'));
      expect(await sleeping.json()).toEqual({ is_sleeping: false });
    } finally {
      await server.close();
    }
  });

  it('is not served without VLLM_SERVER_DEV_MODE, as vLLM', async () => {
    const server = await startTinyServer('reference');
    try {
      const res = await fetch(server.baseURL.replace(/\/v1$/, '/reset_prefix_cache'), { method: 'POST' });
      expect(res.status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
