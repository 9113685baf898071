import { join } from 'node:path';
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { logSumExp } from '../../kernels/logprobs.js';
import { loadStoredAdapter } from '../../model/load-adapter.js';
import { loadModel } from '../../model/load-model.js';
import { widenAdapter } from '../../model/stored-adapter.js';
import { referenceHarness } from '../kernels/reference-harness.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

const server = useTinyServer('onnx');

/** The parsed `data:` events of a streamed answer, [DONE] left out. */
async function streamed(url: string, body: object): Promise<Record<string, unknown>[]> {
  const res = await server().app.inject({ method: 'POST', url, payload: { ...body, stream: true } });
  expect(res.statusCode).toBe(200);
  return res.body
    .split('\n\n')
    .filter((frame) => frame.startsWith('data: ') && frame !== 'data: [DONE]')
    .map((frame) => JSON.parse(frame.slice(6)));
}

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

/** Rows of the reference engine's logits for every position of `tokens`, under `adapter`. */
async function referenceLogits(adapter: string | null, tokens: number[]) {
  const model = await loadModel(join(server().root, TINY_MODEL_NAME));
  const harness = referenceHarness(model.weights, 2000);
  const layout =
    adapter === null
      ? null
      : harness.load(
          widenAdapter(await loadStoredAdapter(adapter, join(server().root, adapter), model.weights.config)),
        );
  const logits = await harness.engine.step({
    sequences: [harness.sequenceStep(1, tokens, 0, layout, 'all')],
  });
  const vocab = model.weights.config.vocabSize;
  await harness.engine.close();
  return (position: number) => logits.subarray(position * vocab, (position + 1) * vocab);
}

describe('logprobs over the real stack (onnx)', () => {
  it('echo + logprobs: the prompt’s and the sampled tokens’ log-probabilities are the reference engine’s log-softmax, in a mixed batch', async () => {
    const prompt = [1, 57, 200, 12, 99, 7, 150];
    const greedy = { prompt, max_tokens: 3, temperature: 0, ignore_eos: true };
    // Three adapters in one batch: one echoes with k = 5, one asks nothing, the base model k = 0.
    const [scored, plain, base] = await Promise.all([
      server().post('/v1/completions', { ...greedy, model: 'tiny-r4', echo: true, logprobs: 5 }),
      server().post('/v1/completions', { ...greedy, model: 'tiny-r8' }),
      server().post('/v1/completions', { ...greedy, model: TINY_MODEL_NAME, logprobs: 0 }),
    ]);
    expect([scored.status, plain.status, base.status]).toEqual([200, 200, 200]);
    expect(plain.body.choices[0].logprobs).toBeNull();

    const lp: CompletionLogprobs = scored.body.choices[0].logprobs;
    expect(lp.tokens).toHaveLength(prompt.length + 3);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    const rowOf = await referenceLogits('tiny-r4', prompt);
    for (let t = 1; t < prompt.length; t++) {
      const row = rowOf(t - 1);
      const norm = logSumExp(row);
      expect(Math.abs((lp.token_logprobs[t] as number) - (row[prompt[t]] - norm))).toBeLessThanOrEqual(1e-4);
      const top = Object.values(lp.top_logprobs[t] ?? {});
      expect(top.length).toBeGreaterThanOrEqual(5);
      expect(top.length).toBeLessThanOrEqual(6);
      expect(Math.abs(Math.max(...top) - (Math.max(...row) - norm))).toBeLessThanOrEqual(1e-4);
    }
    // Greedy: the first generated token is the most likely one after the prompt.
    const last = rowOf(prompt.length - 1);
    const best = Math.max(...last) - logSumExp(last);
    expect(Math.abs((lp.token_logprobs[prompt.length] as number) - best)).toBeLessThanOrEqual(1e-4);
    // Offsets run over the tokens' own texts; the text starts with the echoed prompt.
    lp.text_offset.forEach((offset, i) => {
      if (i > 0) expect(offset).toBe(lp.text_offset[i - 1] + lp.tokens[i - 1].length);
    });
    expect(scored.body.choices[0].text.startsWith(server().stack.tokenizer.decode(prompt))).toBe(true);

    const baseLp: CompletionLogprobs = base.body.choices[0].logprobs;
    expect(baseLp.tokens).toHaveLength(3);
    expect(baseLp.text_offset[0]).toBe(0);
    const baseRow = (await referenceLogits(null, prompt))(prompt.length - 1);
    expect(
      Math.abs((baseLp.token_logprobs[0] as number) - (Math.max(...baseRow) - logSumExp(baseRow))),
    ).toBeLessThanOrEqual(1e-4);
    // k = 0 still lists the sampled token, as vLLM does.
    expect(Object.keys(baseLp.top_logprobs[0] ?? {})).toEqual([baseLp.tokens[0]]);
  });

  it('streams the same completions logprobs as it answers at once (echo, n = 2, seeded sampling)', async () => {
    const body = {
      model: 'tiny-r2',
      prompt: 'Once upon a time',
      max_tokens: 8,
      temperature: 0.9,
      seed: 11,
      n: 2,
      echo: true,
      logprobs: 2,
      ignore_eos: true,
    };
    const whole = await server().post('/v1/completions', body);
    expect(whole.status).toBe(200);
    const chunks = await streamed('/v1/completions', body);
    for (const index of [0, 1]) {
      const joined: CompletionLogprobs & { text: string } = {
        text: '',
        tokens: [],
        token_logprobs: [],
        top_logprobs: [],
        text_offset: [],
      };
      for (const chunk of chunks) {
        for (const c of chunk.choices as Array<{
          index: number;
          text: string;
          logprobs: CompletionLogprobs | null;
        }>) {
          if (c.index !== index) continue;
          joined.text += c.text;
          if (!c.logprobs) continue;
          for (const key of ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'] as const)
            (joined[key] as unknown[]).push(...c.logprobs[key]);
        }
      }
      const choice = whole.body.choices[index];
      expect(joined.text).toBe(choice.text);
      expect(joined.tokens).toEqual(choice.logprobs.tokens);
      expect(joined.text_offset).toEqual(choice.logprobs.text_offset);
      expect(joined.top_logprobs.map((t) => t && Object.keys(t))).toEqual(
        choice.logprobs.top_logprobs.map((t: object | null) => t && Object.keys(t)),
      );
      joined.token_logprobs.forEach((value, i) => {
        const want = choice.logprobs.token_logprobs[i];
        if (want === null) expect(value).toBeNull();
        else expect(Math.abs((value as number) - want)).toBeLessThanOrEqual(1e-5);
      });
    }
  });

  it('chat: logprobs + top_logprobs through the official openai client, streamed and not, the same', async () => {
    const request = {
      model: 'tiny-r8',
      messages: [{ role: 'user' as const, content: 'Hi there' }],
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    };
    const chat = await server().client.chat.completions.create(request);
    const content = chat.choices[0].logprobs?.content ?? [];
    expect(content).toHaveLength(chat.usage?.completion_tokens ?? -1);
    for (const entry of content) {
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, 'utf8')]);
      expect(entry.top_logprobs).toHaveLength(2);
      // Greedy: each token is the most likely one.
      expect(Math.abs(entry.logprob - entry.top_logprobs[0].logprob)).toBeLessThanOrEqual(1e-6);
      expect(entry.top_logprobs[0].logprob).toBeGreaterThanOrEqual(entry.top_logprobs[1].logprob);
    }
    const stream = await server().client.chat.completions.create({ ...request, stream: true });
    const streamedContent: OpenAI.ChatCompletionTokenLogprob[] = [];
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      streamedContent.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    }
    expect(text).toBe(chat.choices[0].message.content);
    expect(streamedContent.map((e) => [e.token, e.top_logprobs.map((t) => t.token)])).toEqual(
      content.map((e) => [e.token, e.top_logprobs.map((t) => t.token)]),
    );
    streamedContent.forEach((e, i) => {
      expect(Math.abs(e.logprob - content[i].logprob)).toBeLessThanOrEqual(1e-5);
    });

    const none = await server().client.chat.completions.create({
      ...request,
      logprobs: false,
      top_logprobs: 0,
    });
    expect(none.choices[0].logprobs).toBeNull();
  });

  it('echo without logprobs: each prompt’s text (or its ids decoded) before each choice, no logprobs', async () => {
    for (const prompt of [
      ['Hello there', 'Bye'],
      [
        [1, 72, 105],
        [1, 66],
      ],
    ]) {
      const res = await server().post('/v1/completions', {
        model: 'tiny-r3',
        prompt,
        max_tokens: 3,
        n: 2,
        echo: true,
      });
      expect(res.status).toBe(200);
      const choices = res.body.choices as Array<{ index: number; text: string; logprobs: null }>;
      expect(choices).toHaveLength(4);
      choices.forEach((c, i) => {
        const single = prompt[Math.floor(i / 2)];
        const echoed = typeof single === 'string' ? single : server().stack.tokenizer.decode(single);
        expect(c.text.startsWith(echoed)).toBe(true);
        expect(c.logprobs).toBeNull();
      });
    }
  });

  it('prompt_logprobs: each prompt token’s logprob and rank and the top k are the reference engine’s, per prompt of a batch', async () => {
    const prompts = [
      [1, 57, 200, 12, 99, 7, 150],
      [1, 30, 31],
    ];
    const res = await server().post('/v1/completions', {
      model: 'tiny-r4',
      prompt: prompts,
      max_tokens: 2,
      temperature: 0,
      prompt_logprobs: 3,
    });
    expect(res.status).toBe(200);
    for (const [p, prompt] of prompts.entries()) {
      const choice = res.body.choices[p];
      expect(choice.logprobs).toBeNull();
      const scored: Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null> =
        choice.prompt_logprobs;
      expect(scored).toHaveLength(prompt.length);
      expect(scored[0]).toBeNull();
      const rowOf = await referenceLogits('tiny-r4', prompt);
      for (let t = 1; t < prompt.length; t++) {
        const row = rowOf(t - 1);
        const norm = logSumExp(row);
        const entries = scored[t] ?? {};
        const own = entries[String(prompt[t])];
        expect(Math.abs(own.logprob - (row[prompt[t]] - norm))).toBeLessThanOrEqual(1e-4);
        expect(own.decoded_token).toBe(server().stack.tokenizer.decode([prompt[t]], false));
        const ranked = Object.entries(entries)
          .filter(([id]) => Number(id) !== prompt[t] || entries[id].rank <= 3)
          .sort((a, b) => a[1].rank - b[1].rank);
        // The top 3 by rank 1..3 (the prompt token among them keeps its place), then the prompt token.
        const sorted = Float64Array.from(row).sort().reverse();
        expect(ranked.slice(0, 3).map(([, e]) => e.rank)).toEqual([1, 2, 3]);
        ranked.slice(0, 3).forEach(([, e], r) => {
          expect(Math.abs(e.logprob - (sorted[r] - norm))).toBeLessThanOrEqual(1e-4);
        });
        if (own.rank > 3) {
          expect(Object.keys(entries)).toHaveLength(4);
          expect(own.rank).toBe(row.filter((x) => x >= row[prompt[t]]).length);
        } else expect(Object.keys(entries)).toHaveLength(3);
      }
    }

    // echo + logprobs 1 beside prompt_logprobs 4: the echoed entries list vLLM's first 2 distinct
    // ids of [prompt token, top 4…]; prompt_logprobs lists all of them.
    const both = await server().post('/v1/completions', {
      model: 'tiny-r4',
      prompt: prompts[0],
      max_tokens: 1,
      temperature: 0,
      echo: true,
      logprobs: 1,
      prompt_logprobs: 4,
    });
    expect(both.status).toBe(200);
    const lp: CompletionLogprobs = both.body.choices[0].logprobs;
    const full = both.body.choices[0].prompt_logprobs;
    for (let t = 1; t < prompts[0].length; t++) {
      expect(Object.keys(lp.top_logprobs[t] ?? {})).toHaveLength(2);
      expect(Object.keys(full[t]).length).toBeGreaterThanOrEqual(4);
    }
  });

  it('prompt_logprobs on chat (once, beside the choices), as vLLM checks it, and with a stream at 0', async () => {
    const request = {
      model: 'tiny-r8',
      messages: [{ role: 'user', content: 'Hi there' }],
      max_tokens: 2,
      temperature: 0,
    };
    const chat = await server().post('/v1/chat/completions', { ...request, prompt_logprobs: 2, n: 2 });
    expect(chat.status).toBe(200);
    expect(chat.body.prompt_logprobs).toHaveLength(chat.body.usage.prompt_tokens);
    expect(chat.body.prompt_logprobs[0]).toBeNull();
    expect(chat.body.choices.every((c: object) => !('prompt_logprobs' in c))).toBe(true);
    const plain = await server().post('/v1/chat/completions', request);
    expect(plain.body.prompt_logprobs).toBeNull();

    for (const [url, body] of [
      ['/v1/chat/completions', request],
      ['/v1/completions', { model: 'tiny-r8', prompt: 'Hello there', max_tokens: 2 }],
    ] as const) {
      const refused = [
        [{ prompt_logprobs: -2 }, '`prompt_logprobs` must be a positive value or -1.'],
        [{ prompt_logprobs: 21 }, 'Requested prompt logprobs of 21, which is greater than max allowed: 20.'],
        // -1 is the whole vocabulary.
        [
          { prompt_logprobs: -1 },
          `Requested prompt logprobs of ${server().stack.tokenizer.vocabSize}, which is greater than max allowed: 20.`,
        ],
        [{ prompt_logprobs: 1, stream: true }, '`prompt_logprobs` are not available when `stream=True`.'],
        [{ prompt_logprobs: -1, stream: true }, '`prompt_logprobs` are not available when `stream=True`.'],
      ] as const;
      for (const [extra, message] of refused) {
        const res = await server().post(url, { ...body, ...extra });
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ param: 'prompt_logprobs', message });
      }
      // 0 with a stream is allowed (vLLM's rule): the prompt's scores come with the first token.
      const chunks = await streamed(url, { ...body, prompt_logprobs: 0 });
      const carrying = chunks.filter((c) =>
        url === '/v1/completions'
          ? (c.choices as Array<Record<string, unknown>>).some((choice) => choice.prompt_logprobs)
          : c.prompt_logprobs,
      );
      expect(carrying).toHaveLength(1);
    }
  });

  it('echo with max_tokens 0 scores the prompt alone (vLLM’s echo without generation); without echo it is a 400', async () => {
    const prompt = 'Once upon a time';
    const body = { model: 'tiny-r2', prompt, max_tokens: 0, echo: true, logprobs: 1 };
    const res = await server().post('/v1/completions', body);
    expect(res.status).toBe(200);
    const choice = res.body.choices[0];
    expect(choice.text).toBe(prompt);
    const numPrompt = server().stack.tokenizer.encode(prompt, true).length;
    expect(choice.logprobs.tokens).toHaveLength(numPrompt);
    expect(choice.logprobs.token_logprobs[0]).toBeNull();
    expect(choice.logprobs.token_logprobs.slice(1).every((v: number) => v <= 0)).toBe(true);
    expect(choice.finish_reason).toBe('length');
    // vLLM generates one token and counts it.
    expect(res.body.usage).toMatchObject({ prompt_tokens: numPrompt, completion_tokens: 1 });
    const chunks = await streamed('/v1/completions', body);
    const texts = chunks.flatMap((c) => (c.choices as Array<{ text: string }>).map((x) => x.text));
    expect(texts.join('')).toBe(prompt);

    const refused = await server().post('/v1/completions', { ...body, echo: false });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({
      param: 'max_tokens',
      message: 'max_tokens must be at least 1, got 0.',
    });
    const chat = await server().post('/v1/chat/completions', {
      model: 'tiny-r2',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 0,
    });
    expect(chat.status).toBe(400);
  });

  it('completions logprobs through the official openai client', async () => {
    const res = await server().client.completions.create({
      model: TINY_MODEL_NAME,
      prompt: 'Hello',
      max_tokens: 4,
      logprobs: 20,
      temperature: 0,
    });
    const lp = res.choices[0].logprobs;
    expect(lp?.tokens).toHaveLength(res.usage?.completion_tokens ?? -1);
    expect(Object.keys(lp?.top_logprobs?.[0] ?? {}).length).toBeGreaterThanOrEqual(18);
    await expect(
      server().client.completions.create({ model: TINY_MODEL_NAME, prompt: 'Hello', logprobs: 21 }),
    ).rejects.toMatchObject({ status: 400, param: 'logprobs' });
    await expect(
      server().client.chat.completions.create({
        model: TINY_MODEL_NAME,
        messages: [{ role: 'user', content: 'Hi' }],
        top_logprobs: 3,
      }),
    ).rejects.toMatchObject({ status: 400, param: 'top_logprobs' });
  });
});
