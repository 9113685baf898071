import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { beamScore } from '../../server/beam-search.js';
import { sseEvents } from './fake-stack.js';
import { parsePrometheusText, sampleValue } from './prometheus-text.js';
import { startTinyServer, type TinyServer } from './tiny-server.js';

const PROMPT = 'The quick brown fox jumps over the lazy dog because';

interface CompletionChoice {
  index: number;
  text: string;
  finish_reason: string;
  stop_reason: string | number | null;
  logprobs: {
    tokens: string[];
    token_logprobs: number[];
    top_logprobs: Array<Record<string, number>>;
  } | null;
}

/** The token ids of a choice's logprobs written as "token_id:<id>". */
function tokenIds(choice: CompletionChoice): number[] {
  return choice.logprobs!.tokens.map((t) => Number(t.slice('token_id:'.length)));
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

describe('use_beam_search on the reference engine', () => {
  let server: TinyServer;
  let promptIds: number[];
  beforeAll(async () => {
    server = await startTinyServer('reference', {}, { promptTokensDetails: true });
    const tokenized = await fetch(server.baseURL.replace(/\/v1$/, '/tokenize'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: PROMPT }),
    });
    promptIds = ((await tokenized.json()) as { tokens: number[] }).tokens;
  });
  afterAll(() => server.close());

  const complete = async (body: object) => {
    const res = await server.post('/v1/completions', { model: 'tiny-base', prompt: PROMPT, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { choices: CompletionChoice[]; usage: Record<string, unknown> };
  };

  it('with n 1 and ignore_eos is greedy decoding', async () => {
    const greedy = await complete({ temperature: 0, max_tokens: 8, ignore_eos: true });
    const beam = await complete({ use_beam_search: true, n: 1, max_tokens: 8, ignore_eos: true });
    expect(beam.choices[0].text).toBe(greedy.choices[0].text);
    expect(beam.choices[0].finish_reason).toBe('length');
  });

  it('returns n distinct beams ranked by score, their logprobs those of a full forward pass', async () => {
    const lengthPenalty = 0.5;
    const res = await complete({
      use_beam_search: true,
      n: 3,
      max_tokens: 6,
      length_penalty: lengthPenalty,
      logprobs: 2,
      return_tokens_as_token_ids: true,
      skip_special_tokens: false,
      include_stop_str_in_output: true,
    });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const beams = res.choices.map((c) => tokenIds(c));
    expect(new Set(beams.map((b) => b.join(','))).size).toBe(3);
    const scores = res.choices.map((c, i) => {
      const generated = c.finish_reason === 'stop' ? beams[i].length - 1 : beams[i].length;
      return beamScore(sum(c.logprobs!.token_logprobs), promptIds.length + generated, lengthPenalty);
    });
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    for (const c of res.choices) {
      // Each row lists the chosen token and its 2 top tokens at most (vLLM's rule).
      for (const top of c.logprobs!.top_logprobs) expect(Object.keys(top).length).toBeLessThanOrEqual(3);
    }
    // The best beam scored again in one request: its text as the prompt, echoed with logprobs.
    const rescored = await complete({
      prompt: [...promptIds, ...beams[0]],
      echo: true,
      max_tokens: 1,
      logprobs: 0,
      temperature: 0,
    });
    const echoed = rescored.choices[0].logprobs!.token_logprobs.slice(
      promptIds.length,
      promptIds.length + beams[0].length,
    );
    echoed.forEach((logprob, i) => {
      expect(Math.abs(logprob - res.choices[0].logprobs!.token_logprobs[i])).toBeLessThan(1e-4);
    });
    // usage: the prompt once, and every returned beam's tokens.
    expect(res.usage.prompt_tokens).toBe(promptIds.length);
    expect(res.usage.completion_tokens).toBe(sum(beams.map((b) => b.length)));
  });

  it('echoes the prompt, scored by the first round, before each beam', async () => {
    const res = await complete({
      use_beam_search: true,
      n: 2,
      max_tokens: 3,
      ignore_eos: true,
      echo: true,
      logprobs: 1,
    });
    const plain = await complete({ use_beam_search: true, n: 2, max_tokens: 3, ignore_eos: true });
    res.choices.forEach((c, i) => {
      expect(c.text).toBe(PROMPT + plain.choices[i].text);
      expect(c.logprobs!.token_logprobs).toHaveLength(promptIds.length + 3);
      expect(c.logprobs!.token_logprobs[0]).toBeNull();
      for (const lp of c.logprobs!.token_logprobs.slice(1)) expect(lp).toBeLessThanOrEqual(0);
    });
  });

  it('streams the same choices, each whole in one chunk', async () => {
    const body = { use_beam_search: true, n: 2, max_tokens: 5, ignore_eos: true };
    const plain = await complete(body);
    const res = await fetch(`${server.baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-base', prompt: PROMPT, ...body, stream: true }),
    });
    expect(res.status).toBe(200);
    const events = sseEvents(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]);
    expect(chunks.map((c) => [c.index, c.text, c.finish_reason])).toEqual(
      plain.choices.map((c) => [c.index, c.text, c.finish_reason]),
    );
  });

  it('serves chat, and reuses cached prefix blocks round after round', async () => {
    const before = parsePrometheusText(
      await (await fetch(server.baseURL.replace(/\/v1$/, '/metrics'))).text(),
    );
    const hitsBefore = sampleValue(before, 'vllm:prefix_cache_hits_total', { model_name: 'tiny-base' });
    const res = await server.post('/v1/chat/completions', {
      model: 'tiny-base',
      messages: [{ role: 'user', content: `${PROMPT} ${PROMPT}` }],
      use_beam_search: true,
      n: 2,
      max_tokens: 6,
      ignore_eos: true,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.choices).toHaveLength(2);
    expect(res.body.choices[0].message.content).not.toBe(res.body.choices[1].message.content);
    const after = parsePrometheusText(
      await (await fetch(server.baseURL.replace(/\/v1$/, '/metrics'))).text(),
    );
    // Rounds 2.. find the prompt's full blocks cached: at least one block each.
    const hits = sampleValue(after, 'vllm:prefix_cache_hits_total', { model_name: 'tiny-base' }) - hitsBefore;
    expect(hits).toBeGreaterThanOrEqual(5);
    const stats = server.llm.stats();
    expect(stats.numKvPages).toBe(0);
    expect(stats.numRunning + stats.numWaiting).toBe(0);
  });

  it('frees every page when the client leaves mid-search, and keeps serving', async () => {
    const leaving = new AbortController();
    const request = fetch(`${server.baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny-base',
        prompt: PROMPT,
        use_beam_search: true,
        n: 4,
        max_tokens: 200,
        ignore_eos: true,
      }),
      signal: leaving.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    leaving.abort();
    await expect(request).rejects.toThrow();
    for (let i = 0; i < 100; i++) {
      const s = server.llm.stats();
      if (s.numRunning + s.numWaiting === 0 && s.numKvPages === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const stats = server.llm.stats();
    expect(stats.numKvPages).toBe(0);
    expect(stats.numRunning + stats.numWaiting).toBe(0);
    const next = await complete({ use_beam_search: true, n: 2, max_tokens: 3 });
    expect(next.choices).toHaveLength(2);
  });

  it('refuses what beam search cannot honour, by name', async () => {
    const refused: Array<[object, string]> = [
      [{ use_beam_search: true, n: 11 }, 'n'],
      [{ use_beam_search: true, n: 2, top_p: 0.5 }, 'top_p'],
      [{ use_beam_search: true, n: 2, stop: ['fox'] }, 'stop'],
      [{ use_beam_search: true, n: 2, repetition_penalty: 1.2 }, 'repetition_penalty'],
      [{ use_beam_search: true, n: 2, guided_choice: ['a', 'b'] }, 'guided_choice'],
      [{ length_penalty: 2 }, 'length_penalty'],
    ];
    for (const [body, param] of refused) {
      const res = await server.post('/v1/completions', {
        model: 'tiny-base',
        prompt: PROMPT,
        max_tokens: 2,
        ...body,
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.param).toBe(param);
    }
    // Their defaults ask for nothing: accepted.
    await complete({ use_beam_search: true, n: 2, max_tokens: 2, top_p: 1, stop: [], length_penalty: 1 });
    await complete({ use_beam_search: false, max_tokens: 2, length_penalty: 1 });
  });
});

describe('--max-logprobs', () => {
  it('raises the top-token limit of logprobs, prompt_logprobs and the beam width; -1 lifts it', async () => {
    const raised = await startTinyServer('reference', {}, { maxLogprobs: 40 });
    try {
      const res = await raised.post('/v1/completions', {
        model: 'tiny-base',
        prompt: PROMPT,
        max_tokens: 2,
        logprobs: 30,
        prompt_logprobs: 25,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const top of res.body.choices[0].logprobs.top_logprobs)
        expect(Object.keys(top).length).toBeGreaterThanOrEqual(30);
      expect(Object.keys(res.body.choices[0].prompt_logprobs[1]).length).toBeGreaterThanOrEqual(25);
      const wide = await raised.post('/v1/completions', {
        model: 'tiny-base',
        prompt: PROMPT,
        max_tokens: 2,
        use_beam_search: true,
        n: 12,
      });
      expect(wide.status, JSON.stringify(wide.body)).toBe(200);
      expect(wide.body.choices).toHaveLength(12);
      const past = await raised.post('/v1/completions', { model: 'tiny-base', prompt: PROMPT, logprobs: 41 });
      expect(past.status).toBe(400);
      expect(past.body.error.message).toBe(
        'Requested logprobs of 41, which is greater than max allowed: 40.',
      );
    } finally {
      await raised.close();
    }
    const uncapped = await startTinyServer('reference', {}, { maxLogprobs: -1 });
    try {
      const vocab = uncapped.stack.tokenizer.vocabSize;
      const res = await uncapped.post('/v1/completions', {
        model: 'tiny-base',
        prompt: 'Hi there',
        max_tokens: 1,
        prompt_logprobs: -1,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(Object.keys(res.body.choices[0].prompt_logprobs[1]).length).toBe(vocab);
    } finally {
      await uncapped.close();
    }
  });
});
