import { describe, expect, it } from 'vitest';
import { ChatTemplateError, ChatTemplateRenderError } from '../../model/chat-template.js';
import { fakeAppPerTest } from './fake-app.js';

const fake = fakeAppPerTest();
const { start, post } = fake;

const chat = (extra: object) => ({
  model: 'tiny-base',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});
const cmpl = (extra: object) => ({ model: 'tiny-base', prompt: 'hi', ...extra });

const badRequests: [string, string, unknown, number, string | null][] = [
  ['unknown model', '/v1/completions', cmpl({ model: 'nope' }), 404, 'model'],
  ['missing prompt', '/v1/completions', { model: 'tiny-base' }, 400, 'prompt'],
  ['missing model', '/v1/chat/completions', { messages: [] }, 400, 'model'],
  ['max_tokens 0', '/v1/completions', cmpl({ max_tokens: 0 }), 400, 'max_tokens'],
  ['max_tokens as a string', '/v1/completions', cmpl({ max_tokens: '5' }), 400, 'max_tokens'],
  ['prompt + max_tokens past max_model_len', '/v1/completions', cmpl({ max_tokens: 62 }), 400, 'max_tokens'],
  ['prompt past the context', '/v1/completions', cmpl({ prompt: 'x'.repeat(70) }), 400, 'prompt'],
  ['empty prompt', '/v1/completions', cmpl({ prompt: '' }), 400, 'prompt'],
  ['empty token prompt', '/v1/completions', cmpl({ prompt: [] }), 400, 'prompt'],
  ['an empty prompt in a batch', '/v1/completions', cmpl({ prompt: ['a', ''] }), 400, 'prompt[1]'],
  ['an empty token prompt in a batch', '/v1/completions', cmpl({ prompt: [[1], []] }), 400, 'prompt[1]'],
  [
    'a token id out of vocabulary in a batch',
    '/v1/completions',
    cmpl({ prompt: [[1], [999]] }),
    400,
    'prompt[1]',
  ],
  ['a batch past --max-n', '/v1/completions', cmpl({ prompt: ['a', 'b', 'c'], n: 6 }), 400, 'prompt'],
  ['token id out of vocabulary', '/v1/completions', cmpl({ prompt: [1, 999] }), 400, 'prompt'],
  ['prompt of wrong type', '/v1/completions', cmpl({ prompt: 5 }), 400, 'prompt'],
  ['empty messages', '/v1/chat/completions', chat({ messages: [] }), 400, 'messages'],
  [
    'unknown role',
    '/v1/chat/completions',
    chat({ messages: [{ role: 'wizard', content: 'x' }] }),
    400,
    'messages[0].role',
  ],
  [
    'message without role',
    '/v1/chat/completions',
    chat({ messages: [{ content: 'x' }] }),
    400,
    'messages[0].role',
  ],
  [
    'image content',
    '/v1/chat/completions',
    chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }),
    400,
    'messages[0].content[0].type',
  ],
  ['empty stop string', '/v1/completions', cmpl({ stop: '' }), 400, 'stop'],
  ['empty stop in a list', '/v1/completions', cmpl({ stop: ['a', ''] }), 400, 'stop[1]'],
  [
    'too many stops',
    '/v1/completions',
    cmpl({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }),
    400,
    'stop',
  ],
  ['stop of wrong type', '/v1/completions', cmpl({ stop: 3 }), 400, 'stop'],
  ['n = 0', '/v1/completions', cmpl({ n: 0 }), 400, 'n'],
  ['n beyond max-num-seqs', '/v1/chat/completions', chat({ n: 9 }), 400, 'n'],
  ['negative temperature', '/v1/completions', cmpl({ temperature: -0.1 }), 400, 'temperature'],
  ['top_p 0', '/v1/completions', cmpl({ top_p: 0 }), 400, 'top_p'],
  ['top_p above 1', '/v1/chat/completions', chat({ top_p: 1.5 }), 400, 'top_p'],
  ['completion logprobs past 20', '/v1/completions', cmpl({ logprobs: 21 }), 400, 'logprobs'],
  ['negative completion logprobs', '/v1/completions', cmpl({ logprobs: -1 }), 400, 'logprobs'],
  [
    'chat top_logprobs past 20',
    '/v1/chat/completions',
    chat({ logprobs: true, top_logprobs: 21 }),
    400,
    'top_logprobs',
  ],
  [
    'chat top_logprobs without logprobs',
    '/v1/chat/completions',
    chat({ top_logprobs: 2 }),
    400,
    'top_logprobs',
  ],
  ['chat logprobs of wrong type', '/v1/chat/completions', chat({ logprobs: 1 }), 400, 'logprobs'],
  ['stream of wrong type', '/v1/chat/completions', chat({ stream: 'yes' }), 400, 'stream'],
  [
    'include_usage of wrong type',
    '/v1/chat/completions',
    chat({ stream_options: { include_usage: 1 } }),
    400,
    'stream_options.include_usage',
  ],
  [
    'stop token out of vocabulary',
    '/v1/completions',
    cmpl({ stop_token_ids: [5000] }),
    400,
    'stop_token_ids',
  ],
  ['frequency penalty past 2', '/v1/completions', cmpl({ frequency_penalty: 2.5 }), 400, 'frequency_penalty'],
  [
    'tools without a tool_choice (OpenAI\'s default "auto" needs a tool-call parser)',
    '/v1/chat/completions',
    chat({ tools: [{ type: 'function', function: { name: 'f' } }] }),
    400,
    'tool_choice',
  ],
  [
    'a tool of a type other than function',
    '/v1/chat/completions',
    chat({ tools: [{ type: 'retrieval', function: { name: 'f' } }], tool_choice: 'none' }),
    400,
    'tools[0].type',
  ],
  [
    'a response_format type Loom does not know',
    '/v1/chat/completions',
    chat({ response_format: { type: 'yaml' } }),
    400,
    'response_format',
  ],
  [
    'stream_options without stream',
    '/v1/completions',
    cmpl({ stream_options: { include_usage: true } }),
    400,
    'stream_options',
  ],
  ['body that is an array', '/v1/completions', [1, 2], 400, null],
];

describe('bad requests get OpenAI error JSON with the right 4xx', () => {
  it.each(badRequests)('%s', async (_name, url, payload, status, param) => {
    const stack = start();
    const res = await post(url, payload);
    expect(res.statusCode).toBe(status);
    const { error } = res.json();
    expect(error).toMatchObject({
      param,
      type: status === 404 ? 'not_found_error' : 'invalid_request_error',
    });
    expect(typeof error.message).toBe('string');
    expect(typeof error.code).toBe('string');
    expect(stack.scheduler.submitted).toHaveLength(0);
    expect((await post('/v1/completions', cmpl({ max_tokens: 1 }))).statusCode).toBe(200);
  });

  it('says the numbers when the context is exceeded', async () => {
    start();
    const res = await post('/v1/completions', cmpl({ max_tokens: 62 }));
    expect(res.json().error.message).toContain(
      'maximum context length is 64 tokens. However, you requested 65 tokens (3 in the prompt, 62 in the completion)',
    );
  });

  it('rejects malformed JSON, a chat without template and an unknown route', async () => {
    start({ hasChatTemplate: false });
    const malformed = await fake.app.inject({
      method: 'POST',
      url: '/v1/completions',
      headers: { 'content-type': 'application/json' },
      payload: '{"model": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.type).toBe('invalid_request_error');
    const noTemplate = await post('/v1/chat/completions', chat({}));
    expect(noTemplate.statusCode).toBe(400);
    expect(noTemplate.json().error.message).toContain('no chat template');
    const unknown = await fake.app.inject('/v1/engines');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('unknown_url');
  });
});

describe('chat template failures', () => {
  it('answers a template that breaks by itself with a 500 that says so, and its refusal with a 400', async () => {
    const stack = start();
    const failing = (error: Error) => ({
      ...stack.tokenizer,
      hasChatTemplate: true,
      vocabSize: stack.tokenizer.vocabSize,
      encode: stack.tokenizer.encode.bind(stack.tokenizer),
      chatTemplateContentFormat: () => 'string',
      applyChatTemplate: () => {
        throw error;
      },
    });
    Object.assign(stack, {
      tokenizer: failing(new ChatTemplateRenderError('Cannot perform operation + on undefined values')),
    });
    const broken = await post('/v1/chat/completions', chat({}));
    expect(broken.statusCode).toBe(500);
    expect(broken.json().error).toMatchObject({ type: 'server_error', code: 'chat_template_error' });
    expect(broken.json().error.message).toContain("model's chat template failed to render");
    Object.assign(stack, { tokenizer: failing(new ChatTemplateError('Conversation roles must alternate')) });
    const refused = await post('/v1/chat/completions', chat({}));
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.message).toContain('Conversation roles must alternate');
  });
});
