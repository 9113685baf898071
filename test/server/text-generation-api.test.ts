import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { greenList } from '../../scheduler/watermark.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * LoRAX's REST API (/generate, /generate_stream, /, /info) on the real stack: the same tokens as
 * /v1/completions for the same prompt, adapter and sampling; LoRAX's response shapes, stream
 * events and error bodies; every LoRAX parameter done or refused by name.
 */
const server = useTinyServer('onnx', (root) => ({ loraRoot: root }));

// biome-ignore lint/suspicious/noExplicitAny: answers are read as JSON
type Json = any;

const PROMPT = 'The quick brown fox';

async function post(url: string, body: object) {
  const res = await server().app.inject({ method: 'POST', url, payload: body });
  const isJson = String(res.headers['content-type']).startsWith('application/json');
  return { status: res.statusCode, headers: res.headers, body: (isJson ? res.json() : res.body) as Json };
}

async function generate(parameters: object, inputs = PROMPT) {
  const res = await post('/generate', { inputs, parameters });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res;
}

/** The stream's events, as LoRAX's client reads them: each `data:` line's JSON. */
async function streamed(url: string, body: object): Promise<Json[]> {
  const res = await post(url, body);
  expect(res.status, String(res.body)).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
  return String(res.body)
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => JSON.parse(frame.replace(/^data: ?/, '')));
}

/** The same request through /v1/completions, log-probabilities on. */
async function completion(model: string, extra: object) {
  const res = await post('/v1/completions', { model, prompt: PROMPT, temperature: 0, logprobs: 0, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.choices[0];
}

/** Log-probabilities of the same tokens from two runs: batches of other shapes round differently. */
function expectClose(actual: number[], expected: number[]) {
  expect(actual).toHaveLength(expected.length);
  for (const [i, value] of actual.entries()) expect(value).toBeCloseTo(expected[i], 4);
}

function expectRefused(res: { status: number; body: Json }, field: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body).toEqual({ error: expect.stringContaining(field), error_type: 'validation' });
}

describe('POST /generate', () => {
  it('answers what /v1/completions answers greedily, on the base model and on an adapter', async () => {
    for (const adapter of [null, 'tiny-r8']) {
      const res = await generate({ adapter_id: adapter, max_new_tokens: 10, details: true });
      const same = await completion(adapter ?? TINY_MODEL_NAME, { max_tokens: 10 });
      expect(res.body.generated_text).toBe(same.text);
      const details = res.body.details;
      expect(details).toMatchObject({
        finish_reason: 'length',
        generated_tokens: 10,
        skipped_tokens: 0,
        seed: null,
        prefill: [],
      });
      expect(details.prompt_tokens).toBe(server().stack.tokenizer.encode(PROMPT).length);
      expectClose(
        details.tokens.map((t: Json) => t.logprob),
        same.logprobs.token_logprobs,
      );
      expect(details.tokens.every((t: Json) => t.special === false && t.skipped === false)).toBe(true);
      expect(res.headers['x-model-id']).toBe(TINY_MODEL_NAME);
      expect(res.headers['x-adapter-id']).toBe(adapter ?? undefined);
      expect(res.headers['x-generated-tokens']).toBe('10');
    }
  });

  it('leaves details out unless asked, and prepends the prompt with return_full_text', async () => {
    const plain = await generate({ max_new_tokens: 6 });
    expect(Object.keys(plain.body)).toEqual(['generated_text']);
    const full = await generate({ max_new_tokens: 6, return_full_text: true });
    expect(full.body.generated_text).toBe(PROMPT + plain.body.generated_text);
  });

  it('reads the base model from an empty or __base_model__ adapter_id, and nulls as left out', async () => {
    const base = await generate({ max_new_tokens: 5 });
    for (const adapter_id of ['', '__base_model__', TINY_MODEL_NAME])
      expect((await generate({ adapter_id, max_new_tokens: 5 })).body.generated_text).toBe(
        base.body.generated_text,
      );
    const nulls = await generate({
      max_new_tokens: 5,
      adapter_source: null,
      merged_adapters: null,
      api_token: null,
      best_of: null,
      temperature: null,
      top_k: null,
      top_p: null,
      typical_p: null,
      seed: null,
      truncate: null,
      response_format: null,
      return_k_alternatives: null,
      stop: [],
      do_sample: false,
      watermark: false,
    });
    expect(nulls.body.generated_text).toBe(base.body.generated_text);
  });

  it('keeps the stop sequence that ended the text, as LoRAX does', async () => {
    const greedy = (await generate({ max_new_tokens: 12 })).body.generated_text as string;
    const stop = greedy.slice(4, 6);
    const res = await generate({ max_new_tokens: 12, stop: [stop], details: true });
    expect(res.body.generated_text).toBe(greedy.slice(0, greedy.indexOf(stop) + stop.length));
    expect(res.body.details.finish_reason).toBe('stop_sequence');
  });

  it('samples with do_sample: a seed repeats the text, and the seed drawn for none is reported', async () => {
    const seeded = { do_sample: true, seed: 7, max_new_tokens: 12, details: true };
    const a = await generate(seeded);
    expect(a.body.details.seed).toBe(7);
    expect((await generate(seeded)).body.generated_text).toBe(a.body.generated_text);
    const drawn = await generate({ do_sample: true, max_new_tokens: 12, details: true });
    const seed = drawn.body.details.seed;
    expect(Number.isSafeInteger(seed)).toBe(true);
    const again = await generate({ do_sample: true, seed, max_new_tokens: 12 });
    expect(again.body.generated_text).toBe(drawn.body.generated_text);
    // temperature 0 is greedy even with do_sample (LoRAX's rule).
    const greedy = await generate({ max_new_tokens: 12 });
    const cold = await generate({ do_sample: true, temperature: 0, max_new_tokens: 12, details: true });
    expect(cold.body.generated_text).toBe(greedy.body.generated_text);
    expect(cold.body.details.seed).toBeNull();
  });

  it('samples with typical_p: seeded runs repeat, and it samples even without do_sample', async () => {
    const typical = { typical_p: 0.5, seed: 11, max_new_tokens: 10, details: true };
    const a = await generate(typical);
    expect(a.body.details.seed).toBe(11);
    expect((await generate(typical)).body.generated_text).toBe(a.body.generated_text);
  });

  it('answers best_of with the sequence of the highest mean log-probability and lists the others', async () => {
    const res = await generate({ best_of: 3, do_sample: true, max_new_tokens: 8, details: true });
    const details = res.body.details;
    expect(details.best_of_sequences).toHaveLength(2);
    const mean = (tokens: Json[]) => tokens.reduce((s, t) => s + t.logprob, 0) / tokens.length;
    for (const other of details.best_of_sequences) {
      expect(other).toMatchObject({
        finish_reason: expect.any(String),
        generated_tokens: other.tokens.length,
      });
      expect(mean(details.tokens)).toBeGreaterThanOrEqual(mean(other.tokens));
    }
  });

  it('scores the prompt with decoder_input_details, and lists alternatives and top tokens', async () => {
    const res = await generate({
      max_new_tokens: 4,
      decoder_input_details: true,
      return_k_alternatives: 3,
      top_n_tokens: 2,
    });
    const details = res.body.details;
    const prompt = server().stack.tokenizer.encode(PROMPT);
    expect(details.prefill.map((t: Json) => t.id)).toEqual(prompt);
    expect(details.prefill[0].logprob).toBeNull();
    expect(details.prefill.slice(1).every((t: Json) => t.logprob <= 0)).toBe(true);
    for (const [i, token] of details.tokens.entries()) {
      // Greedy: the chosen token is the most likely, first among its alternatives.
      expect(token.alternative_tokens).toHaveLength(3);
      expect(token.alternative_tokens[0]).toMatchObject({ id: token.id, logprob: token.logprob });
      expect(details.top_tokens[i]).toHaveLength(2);
      expect(details.top_tokens[i][0].id).toBe(token.id);
    }
  });

  it('follows a grammar and a response_format, ending the text with the model’s end token', async () => {
    const regex = await generate({
      max_new_tokens: 20,
      grammar: { type: 'regex', value: '[ab]{5}' },
      details: true,
    });
    expect(regex.body.generated_text).toMatch(/^[ab]{5}$/);
    expect(regex.body.details.finish_reason).toBe('eos_token');
    const json = await generate({
      max_new_tokens: 60,
      response_format: {
        type: 'json_object',
        schema: {
          type: 'object',
          properties: { a: { type: 'boolean' } },
          required: ['a'],
          additionalProperties: false,
        },
      },
    });
    expect(typeof JSON.parse(json.body.generated_text).a).toBe('boolean');
  });

  it('renders inputs as a user message with apply_chat_template, as chat completions does', async () => {
    const res = await generate({ max_new_tokens: 8, apply_chat_template: true });
    const chat = await post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: PROMPT }],
      temperature: 0,
      max_tokens: 8,
    });
    expect(res.body.generated_text).toBe(chat.body.choices[0].message.content);
  });

  it('keeps the last `truncate` tokens of the prompt', async () => {
    const res = await generate({ max_new_tokens: 4, truncate: 3, details: true });
    expect(res.body.details.prompt_tokens).toBe(3);
  });

  it('loads an adapter_source "local" path under --lora-root once, and refuses one outside it', async () => {
    const path = join(server().root, 'tiny-r4');
    const res = await generate({ adapter_id: path, adapter_source: 'local', max_new_tokens: 6 });
    expect(res.headers['x-adapter-source']).toBe('local');
    const same = await completion('tiny-r4', { max_tokens: 6 });
    expect(res.body.generated_text).toBe(same.text);
    expect((await generate({ adapter_id: path, adapter_source: 'local', max_new_tokens: 6 })).body).toEqual(
      res.body,
    );
    const outside = await post('/generate', {
      inputs: PROMPT,
      parameters: { adapter_id: '/tmp', adapter_source: 'local' },
    });
    expect(outside.status).toBe(403);
    expect(outside.body.error).toContain('outside --lora-root');
  });
});

describe('merged_adapters', () => {
  it('merges an adapter with itself into the same adapter, linear or ties, registered once per merge', async () => {
    const alone = await generate({ adapter_id: 'tiny-r8', max_new_tokens: 8 });
    const halves = { ids: ['tiny-r8', 'tiny-r8'], weights: [0.5, 0.5], merge_strategy: 'linear' };
    const merged = await generate({ merged_adapters: halves, max_new_tokens: 8 });
    expect(merged.body.generated_text).toBe(alone.body.generated_text);
    expect(merged.headers['x-adapter-id']).toBe('tiny-r8,tiny-r8');
    const ties = { ids: ['tiny-r8', 'tiny-r8'], weights: [1, 1], merge_strategy: 'ties', density: 1 };
    expect((await generate({ merged_adapters: ties, max_new_tokens: 8 })).body.generated_text).toBe(
      alone.body.generated_text,
    );
    await generate({ merged_adapters: halves, max_new_tokens: 2 });
    const names = server()
      .stack.scheduler.adapters.list()
      .map((a) => a.name)
      .filter((n) => n.startsWith('merged-'));
    expect(names).toHaveLength(2);
  });

  it('merges with DARE: density 1 keeps all, a lower one drops the same values each time it is asked', async () => {
    const alone = await generate({ adapter_id: 'tiny-r8', max_new_tokens: 8 });
    const whole = {
      ids: ['tiny-r8', 'tiny-r8'],
      weights: [0.5, 0.5],
      merge_strategy: 'dare_linear',
      density: 1,
    };
    expect((await generate({ merged_adapters: whole, max_new_tokens: 8 })).body.generated_text).toBe(
      alone.body.generated_text,
    );
    const before = server().stack.scheduler.adapters.list().length;
    const sparse = { ids: ['tiny-r8'], weights: [1], merge_strategy: 'dare_ties', density: 0.3 };
    const first = await generate({ merged_adapters: sparse, max_new_tokens: 8, details: true });
    const again = await generate({ merged_adapters: sparse, max_new_tokens: 8, details: true });
    expect(first.status).toBe(200);
    // One adapter both times (the second may reuse the first's cached prefix: logprobs to rounding).
    expect(again.body.details.tokens.map((t: Json) => t.id)).toEqual(
      first.body.details.tokens.map((t: Json) => t.id),
    );
    expect(server().stack.scheduler.adapters.list().length).toBe(before + 1);
  });

  it('refuses what LoRAX refuses, and DARE at density 0', async () => {
    const refuse = async (merged_adapters: object, field: string, extra: object = {}) =>
      expectRefused(
        await post('/generate', { inputs: PROMPT, parameters: { merged_adapters, ...extra } }),
        field,
      );
    await refuse({ ids: ['tiny-r8', 'tiny-r2'], weights: [1, 1] }, 'different ranks');
    await refuse({ ids: ['tiny-r8'], weights: [1, 1] }, 'same length');
    await refuse({ ids: [], weights: [] }, 'cannot be empty');
    await refuse({ ids: ['tiny-r8'], weights: [1], merge_strategy: 'dare_ties' }, 'above 0.0 for dare_ties');
    await refuse({ ids: ['tiny-r8'], weights: [1], merge_strategy: 'svd' }, 'merge_strategy');
    await refuse({ ids: ['tiny-r8'], weights: [1] }, 'adapter_id', { adapter_id: 'tiny-r2' });
    await refuse({ ids: [TINY_MODEL_NAME], weights: [1] }, 'base model');
  });
});

describe('POST /generate_stream and /', () => {
  it('streams one event per token, the last with the whole text and details', async () => {
    const parameters = { adapter_id: 'tiny-r2', max_new_tokens: 9, details: true };
    const whole = await generate(parameters);
    const events = await streamed('/generate_stream', { inputs: PROMPT, parameters });
    expect(events).toHaveLength(9);
    for (const event of events.slice(0, -1))
      expect(event).toMatchObject({ generated_text: null, details: null });
    const last = events.at(-1);
    expect(last.generated_text).toBe(whole.body.generated_text);
    expect(last.details).toEqual({
      finish_reason: 'length',
      prompt_tokens: whole.body.details.prompt_tokens,
      generated_tokens: 9,
      seed: null,
    });
    expect(events.map((e) => e.token.id)).toEqual(whole.body.details.tokens.map((t: Json) => t.id));
    expectClose(
      events.map((e) => e.token.logprob),
      whole.body.details.tokens.map((t: Json) => t.logprob),
    );
    expect(events.map((e) => e.token.text).join('')).toBe(whole.body.generated_text);
  });

  it('answers / as LoRAX’s client calls it: a one-element array, or a stream with stream true', async () => {
    const parameters = { max_new_tokens: 5 };
    const whole = await generate(parameters);
    const res = await post('/', { inputs: PROMPT, parameters, stream: false });
    expect(res.body).toEqual([whole.body]);
    const events = await streamed('/', { inputs: PROMPT, parameters, stream: true });
    expect(events.at(-1).generated_text).toBe(whole.body.generated_text);
  });
});

describe('watermark: true (LoRAX’s, with PyTorch’s CPU green lists)', () => {
  // A delta far above any logit gap: every token the watermark touches must be green.
  const marked = useTinyServer('onnx', {}, { watermark: { gamma: 0.5, delta: 100 } });

  it('chooses each token from the green list of the token before it; without it, not always', async () => {
    const run = async (watermark: boolean) => {
      const res = await marked().post('/generate', {
        inputs: PROMPT,
        parameters: { max_new_tokens: 16, watermark, details: true, decoder_input_details: true },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const prompt: number[] = res.body.details.prefill.map((t: Json) => t.id);
      return [...prompt.slice(-1), ...res.body.details.tokens.map((t: Json) => t.id)] as number[];
    };
    const vocabSize = marked().stack.modelVocabSize!;
    const greenShare = (ids: number[]) =>
      ids.slice(1).filter((id, i) => greenList(ids[i], vocabSize, 0.5).position[id] >= 0).length /
      (ids.length - 1);
    const watermarked = await run(true);
    expect(watermarked.length).toBeGreaterThan(8);
    expect(greenShare(watermarked)).toBe(1);
    // Greedy over the model's own logits: about half its tokens are green by chance.
    expect(greenShare(await run(false))).toBeLessThan(1);
  });
});

describe('refusals, in LoRAX’s error shape', () => {
  const refusals: Array<[string, object, string]> = [
    ['a typical_p of 1', { typical_p: 1 }, 'typical_p'],
    ['an api_token', { api_token: 'hf_x' }, 'api_token'],
    ['adapter sources that download', { adapter_id: 'org/x', adapter_source: 's3' }, 'adapter_source s3'],
    ['an unknown adapter source', { adapter_id: 'x', adapter_source: 'ftp' }, 'adapter_source'],
    ['best_of without sampling', { best_of: 2 }, 'sampling'],
    ['best_of with a seed', { best_of: 2, do_sample: true, seed: 1 }, 'seed'],
    ['more tokens than the context', { max_new_tokens: 1000 }, 'max_new_tokens'],
    ['a truncate past the context', { truncate: 100000 }, 'truncate'],
    ['an unknown parameter', { frobnicate: 1 }, 'frobnicate'],
    ['an unknown grammar type', { grammar: { type: 'ebnf', value: 'x' } }, 'grammar.type'],
    ['a return_k_alternatives past --max-logprobs', { return_k_alternatives: 100 }, 'return_k_alternatives'],
  ];
  it.each(refusals)('refuses %s by name with 422', async (_what, parameters, field) => {
    expectRefused(await post('/generate', { inputs: PROMPT, parameters }), field);
  });

  it('refuses empty inputs, and best_of or decoder_input_details on a stream', async () => {
    expectRefused(await post('/generate', { inputs: '' }), 'inputs');
    const stream = { inputs: PROMPT, stream: true };
    expectRefused(await post('/', { ...stream, parameters: { best_of: 2, do_sample: true } }), 'best_of');
    expectRefused(
      await post('/generate_stream', { ...stream, parameters: { decoder_input_details: true } }),
      'decoder_input_details',
    );
    expectRefused(await post('/generate', stream), '/generate_stream');
  });

  it('answers an unregistered adapter 404, saying Loom downloads nothing', async () => {
    const res = await post('/generate', { inputs: PROMPT, parameters: { adapter_id: 'org/not-here' } });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: expect.stringContaining('downloads nothing'),
      error_type: 'not_found',
    });
  });
});

describe("LoRAX's extensions of the OpenAI routes", () => {
  it('reads model by adapter_source, ignore_eos_token as ignore_eos, and refuses api_token by name', async () => {
    const path = join(server().root, 'tiny-r16');
    const local = await post('/v1/completions', {
      model: path,
      adapter_source: 'local',
      prompt: PROMPT,
      max_tokens: 5,
      temperature: 0,
    });
    expect(local.status, JSON.stringify(local.body)).toBe(200);
    expect(local.body.choices[0].text).toBe((await completion('tiny-r16', { max_tokens: 5 })).text);
    const chat = { model: 'tiny-r2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
    expect((await post('/v1/chat/completions', { ...chat, adapter_source: 'hub' })).status).toBe(200);
    const s3 = await post('/v1/chat/completions', { ...chat, adapter_source: 's3' });
    expect(s3.status).toBe(400);
    expect(s3.body.error).toMatchObject({ param: 'adapter_source', code: 'unsupported_parameter' });
    const token = await post('/v1/chat/completions', { ...chat, api_token: 'hf_x' });
    expect(token.body.error).toMatchObject({ param: 'api_token', code: 'unsupported_parameter' });
    const both = await post('/v1/completions', {
      ...chat,
      prompt: 'x',
      messages: undefined,
      ignore_eos: true,
      ignore_eos_token: false,
    });
    expect(both.body.error.param).toBe('ignore_eos_token');
    const ignoring = await post('/v1/completions', {
      model: TINY_MODEL_NAME,
      prompt: PROMPT,
      max_tokens: 20,
      temperature: 0,
      guided_regex: 'ab',
      ignore_eos_token: true,
    });
    expect(ignoring.body.choices[0].finish_reason).toBe('length');
  });
});

describe('GET /info', () => {
  it('says what is served and its limits', async () => {
    const res = await server().app.inject({ method: 'GET', url: '/info' });
    expect(res.json()).toMatchObject({
      model_id: TINY_MODEL_NAME,
      max_total_tokens: 256,
      max_input_length: 255,
      max_stop_sequences: expect.any(Number),
      max_best_of: expect.any(Number),
    });
  });
});
