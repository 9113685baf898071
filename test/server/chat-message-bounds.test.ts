import { describe, expect, it } from 'vitest';
import { fakeAppPerTest } from './fake-app.js';

/**
 * What a chat message may hold: every field inside it is bounded or refused by name, so nothing
 * in a message is silently dropped, and nothing in it can cost more than the context allows.
 * The fake stack's context is 64 tokens; its template writes a message's name as "role (name): ".
 */
const fake = fakeAppPerTest();

const chat = (messages: unknown[]) => ({ model: 'tiny-base', messages, max_tokens: 1 });
const user = (content: unknown, extra: object = {}) => ({ role: 'user', content, ...extra });

async function refusal(messages: unknown[], url = '/v1/chat/completions') {
  fake.start();
  const res = await fake.post(url, url === '/tokenize' ? { model: 'tiny-base', messages } : chat(messages));
  expect(res.statusCode).toBe(400);
  return res.json().error as { message: string; param: string | null; code: string };
}

describe('chat message fields', () => {
  it.each([
    ['image_url', { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }],
    ['input_audio', { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }],
    ['file', { type: 'file', file: { file_id: 'file-1' } }],
  ])('refuses a content part of type %s by its type', async (type, part) => {
    const error = await refusal([user([{ type: 'text', text: 'look' }, part])]);
    expect(error.param).toBe('messages[0].content[1].type');
    expect(error.code).toBe('unsupported_parameter');
    expect(error.message).toContain(`"${type}"`);
  });

  it('refuses a text part that carries another type’s field, and a field no part has', async () => {
    const mixed = await refusal([user([{ type: 'text', text: 'x', image_url: { url: 'u' } }])]);
    expect(mixed.param).toBe('messages[0].content[0].image_url');
    const unknown = await refusal([
      user([{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }]),
    ]);
    expect(unknown.code).toBe('unknown_parameter');
    expect(unknown.param).toBe('messages[0].content[0].cache_control');
  });

  it('refuses a field no message has, naming it', async () => {
    const error = await refusal([user('hi', { weight: 0 })]);
    expect(error.code).toBe('unknown_parameter');
    expect(error.param).toBe('messages[0].weight');
  });

  it('takes tool-calling fields where they belong, refuses them elsewhere by name, and empty ones change nothing', async () => {
    const calls = [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a": 1}' } }];
    const toolCalls = await refusal([user('hi', { tool_calls: calls })]);
    expect(toolCalls.param).toBe('messages[0].tool_calls');
    const toolCallId = await refusal([user('hi', { tool_call_id: 'call_1' })]);
    expect(toolCallId.param).toBe('messages[0].tool_call_id');
    const functionCall = await refusal([user('hi', { function_call: { name: 'f', arguments: '{}' } })]);
    expect(functionCall.param).toBe('messages[0].function_call');
    expect(functionCall.code).toBe('unsupported_parameter');

    fake.start();
    const count = async (messages: unknown[]) => {
      const res = await fake.post('/tokenize', { model: 'tiny-base', messages });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { count: number }).count;
    };
    const plain = await count([user('hi'), { role: 'assistant', content: 'ok' }, user('more')]);
    expect(
      await count([
        user('hi'),
        { role: 'assistant', content: 'ok', tool_calls: [] },
        user('more', { tool_call_id: null }),
      ]),
    ).toBe(plain);
    // The calls reach the template (the fake writes them as JSON, arguments parsed).
    const called = await count([
      user('hi'),
      { role: 'assistant', content: null, tool_calls: calls },
      { role: 'tool', content: 'done', tool_call_id: 'call_1' },
    ]);
    expect(called).toBeGreaterThan(plain);
  });

  it('refuses tools and tool calls that the chat template would never write', async () => {
    fake.start({ templateWritesTools: false });
    const tools = [{ type: 'function', function: { name: 'f' } }];
    for (const url of ['/v1/chat/completions', '/tokenize']) {
      const res = await fake.post(url, {
        model: 'tiny-base',
        messages: [user('hi')],
        tools,
        tool_choice: url === '/tokenize' ? undefined : 'none',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.param).toBe('tools');
      expect(res.json().error.message).toContain('chat template');
    }
    const calls = [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }];
    const res = await fake.post(
      '/v1/chat/completions',
      chat([user('hi'), { role: 'assistant', content: '', tool_calls: calls }]),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('messages[1].tool_calls');
  });

  it('gives a message’s name to the chat template, bounded as OpenAI bounds it', async () => {
    fake.start();
    const count = async (extra: object) => {
      const res = await fake.post('/tokenize', { model: 'tiny-base', messages: [user('hi', extra)] });
      expect(res.statusCode).toBe(200);
      return (res.json() as { count: number }).count;
    };
    // " (ann)" is six more bytes of the rendered prompt: the name reached the template.
    expect((await count({ name: 'ann' })) - (await count({}))).toBe(6);
    const long = await refusal([user('hi', { name: 'n'.repeat(65) })]);
    expect(long.param).toBe('messages[0].name');
    const empty = await refusal([user('hi', { name: '' })]);
    expect(empty.param).toBe('messages[0].name');
  });

  it('counts names as prompt text against the context', async () => {
    // 40 characters of content and 4 names of 8 fit no 64-token context of one-byte tokens.
    const messages = Array.from({ length: 4 }, (_, i) => user('0123456789', { name: `speaker${i}` }));
    const error = await refusal(messages);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.message).toContain('72 characters');
  });

  it('refuses more messages, or more content parts, than the context has tokens, before templating', async () => {
    const manyMessages = await refusal(Array.from({ length: 65 }, () => user('')));
    expect(manyMessages.code).toBe('context_length_exceeded');
    expect(manyMessages.message).toContain('65 messages');
    const manyParts = await refusal([
      user(Array.from({ length: 40 }, () => ({ type: 'text', text: '' }))),
      user(Array.from({ length: 25 }, () => ({ type: 'text', text: '' }))),
    ]);
    expect(manyParts.code).toBe('context_length_exceeded');
    expect(manyParts.message).toContain('65 content parts');
    // /tokenize renders the same messages, with the same bounds.
    const tokenize = await refusal(
      Array.from({ length: 65 }, () => user('')),
      '/tokenize',
    );
    expect(tokenize.code).toBe('context_length_exceeded');
  });

  it('bounds a role and a part type to short strings', async () => {
    expect((await refusal([{ role: 'u'.repeat(33), content: 'hi' }])).param).toBe('messages[0].role');
    expect((await refusal([user([{ type: 't'.repeat(65), text: 'x' }])])).param).toBe(
      'messages[0].content[0].type',
    );
  });
});
