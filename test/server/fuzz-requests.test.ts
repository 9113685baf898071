import type { FastifyInstance } from 'fastify';
import { expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { buildApp } from '../../server/app.js';
import { fakeStack } from './fake-stack.js';
import { startTinyServer } from './tiny-server.js';

const FIELDS = [
  'model',
  'prompt',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'stop',
  'n',
  'stream',
  'stream_options',
  'ignore_eos',
  'stop_token_ids',
  'logprobs',
  'user',
  'response_format',
  'structured_outputs',
  'thinking_token_budget',
  'include_reasoning',
  'reasoning_effort',
  'documents',
  'chat_template',
  'tools',
  'tool_choice',
  'request_id',
  'adapter_source',
  'ignore_eos_token',
];

const STRINGS = [
  '',
  'tiny-base',
  'ad-a',
  'tiny-r2',
  'user',
  'text',
  'x'.repeat(80),
  '\u{1F600}',
  // Structured output's format names, so random bodies reach the structural tag's formats.
  'structural_tag',
  'tag',
  'token',
  'any_tokens',
  'token_triggered_tags',
  'token_dispatch',
  'json_schema',
  '<s>',
];

function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * (depth > 1 ? 7 : 9));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor(rand() * 600) - 100;
    case 3:
      return rand() * 4 - 1;
    case 4:
      return STRINGS[Math.floor(rand() * STRINGS.length)];
    case 5:
      return 1e300;
    case 6:
      return -0;
    case 7:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const keys = [
        'role',
        'content',
        'type',
        'text',
        'include_usage',
        'name',
        'format',
        'call_id',
        'arguments',
        'structural_tag',
        'json',
        'triggers',
        'structures',
        'begin',
        'end',
        'elements',
        'token',
        'exclude_tokens',
        'trigger_tokens',
        'rules',
        'any_order',
      ];
      return Object.fromEntries(
        keys.filter(() => rand() < 0.5).map((k) => [k, randomValue(rand, depth + 1)]),
      );
    }
  }
}

const RESPONSES_FIELDS = [
  'input',
  'instructions',
  'max_output_tokens',
  'temperature',
  'top_logprobs',
  'include',
  'stream',
  'tools',
  'tool_choice',
  'text',
  'store',
  'background',
  'previous_response_id',
  'truncation',
  'metadata',
  'parallel_tool_calls',
];

const MESSAGES_FIELDS = [
  'system',
  'messages',
  'max_tokens',
  'stop_sequences',
  'stream',
  'temperature',
  'tools',
  'tool_choice',
  'metadata',
  'thinking',
];

const GENERATE_PARAMETERS = [
  'adapter_id',
  'adapter_source',
  'best_of',
  'temperature',
  'top_k',
  'top_p',
  'do_sample',
  'max_new_tokens',
  'return_full_text',
  'stop',
  'seed',
  'truncate',
  'details',
  'decoder_input_details',
  'return_k_alternatives',
  'top_n_tokens',
  'apply_chat_template',
  'response_format',
  'grammar',
];

/** A random body for one of the five generation routes (LoRAX's as /generate, /generate_stream or /). */
function randomBody(rand: () => number): { url: string; body: Record<string, unknown> } {
  const body: Record<string, unknown> = { model: 'tiny-base' };
  const pick = rand();
  // A third of the bodies change few fields, so that some get through to generation.
  const rate = rand() < 0.35 ? 0.05 : 0.35;
  if (pick < 0.3) {
    for (const field of RESPONSES_FIELDS) if (rand() < rate) body[field] = randomValue(rand);
    if (rand() < 0.7) body.input ??= 'hi';
    if (typeof body.max_output_tokens !== 'number' || rand() < 0.5) body.max_output_tokens = 2;
    return { url: '/v1/responses', body };
  }
  if (pick < 0.45) {
    for (const field of MESSAGES_FIELDS) if (rand() < rate) body[field] = randomValue(rand);
    if (rand() < 0.7) body.messages ??= [{ role: 'user', content: 'hi' }];
    if (typeof body.max_tokens !== 'number' || rand() < 0.5) body.max_tokens = 2;
    return { url: '/v1/messages', body };
  }
  if (pick < 0.55) {
    const parameters: Record<string, unknown> = {};
    for (const field of GENERATE_PARAMETERS) if (rand() < rate) parameters[field] = randomValue(rand);
    if (typeof parameters.max_new_tokens !== 'number' || rand() < 0.5) parameters.max_new_tokens = 2;
    const lorax: Record<string, unknown> = { inputs: rand() < 0.9 ? 'hi' : randomValue(rand), parameters };
    if (rand() < 0.3) lorax.stream = randomValue(rand);
    const urls = ['/generate', '/generate_stream', '/'];
    return { url: urls[Math.floor(rand() * urls.length)], body: lorax };
  }
  const url = pick < 0.77 ? '/v1/completions' : '/v1/chat/completions';
  for (const field of FIELDS) if (rand() < rate) body[field] = randomValue(rand);
  // Mostly the route's own prompt field, sometimes the other route's.
  if ((url === '/v1/completions') === rand() < 0.85) body.prompt ??= 'hi';
  else body.messages ??= [{ role: 'user', content: 'hi' }];
  if (typeof body.max_tokens !== 'number' || rand() < 0.5) body.max_tokens = 2;
  // SageMaker's route reads the same bodies by their fields.
  return { url: rand() < 0.1 ? '/invocations' : url, body };
}

/** Sends `count` random bodies; every answer must be 2xx or an OpenAI-style 4xx. */
async function fuzz(app: FastifyInstance, count: number): Promise<void> {
  const rand = mulberry32(20261123);
  const statuses = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const { url, body } = randomBody(rand);
    const res = await app.inject({ method: 'POST', url, payload: body });
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    if (res.statusCode >= 500)
      throw new Error(`iteration ${i}: ${res.statusCode} for ${JSON.stringify(body)}: ${res.body}`);
    if (res.statusCode >= 400) {
      // LoRAX's routes answer in LoRAX's shape, the others in OpenAI's and Anthropic's.
      if ('inputs' in body)
        expect(res.json()).toEqual({ error: expect.any(String), error_type: expect.any(String) });
      else expect(res.json().error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
    }
  }
  expect(statuses.get(200)).toBeGreaterThan(0);
  expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
  const after = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: 'tiny-base', prompt: 'hi', max_tokens: 1 },
  });
  expect(after.statusCode).toBe(200);
}

it('never answers a random request body with a 5xx (fake stack), and keeps serving', async () => {
  const app = buildApp({ stack: fakeStack(), maxStoredResponses: 4 });
  await fuzz(app, 500);
  await app.close();
});

it('never answers a random request body with a 5xx (real tiny stack), and keeps serving', async () => {
  const server = await startTinyServer('onnx');
  await fuzz(server.app, 150);
  await server.close();
});
