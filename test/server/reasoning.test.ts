import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scheduler/prng.js';
import { ChatOutputReader } from '../../server/chat-output.js';
import { chatRequestOfMessages } from '../../server/messages-input.js';
import { ReasoningReader } from '../../server/reasoning.js';
import { autoToolCallReader } from '../../server/tool-parsers/parsers.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';
import { assemble, pieces } from './tool-call-pieces.js';

/** A reader's reasoning, content and calls over `text`, whole or cut at random places. */
function read(text: string, tools: boolean, seed: number | null) {
  const reader = new ChatOutputReader(new ReasoningReader(), tools ? autoToolCallReader('hermes') : null);
  const parts = seed === null ? [text] : pieces(text, mulberry32(seed), 7);
  const outs = [...parts.map((p) => reader.push(p)), reader.finish()];
  return {
    reasoning: outs.map((o) => o.reasoning).join(''),
    streamedContent: outs.map((o) => o.content).join(''),
    content: reader.content,
    calls: assemble(outs.flatMap((o) => o.calls)).map((c) => c.function),
  };
}

describe('--reasoning-parser deepseek_r1', () => {
  it('splits the reasoning from the answer, whole or streamed alike', () => {
    const cases: Array<[string, string, string | null]> = [
      ['Let me think.\nOK.</think>\n\nThe answer is 4.', 'Let me think.\nOK.', '\n\nThe answer is 4.'],
      ['<think>short</think>done', 'short', 'done'],
      ['never closes <th', 'never closes <th', null],
      ['all thought</think>', 'all thought', null],
      ['<thin', '<thin', null],
      ['a</think>b</think>c', 'a', 'b</think>c'],
    ];
    for (const [text, reasoning, content] of cases)
      for (const seed of [null, 1, 2, 3, 4, 5, 6, 7, 8]) {
        const got = read(text, false, seed);
        expect({ reasoning: got.reasoning, content: got.content }, `${text} @${seed}`).toEqual({
          reasoning,
          content,
        });
        expect(got.streamedContent).toBe(content ?? '');
      }
  });

  it('reads tool calls out of the answer only', () => {
    const text =
      'Maybe <tool_call>{"name": "no", "arguments": {}}</tool_call>?</think>Calling. <tool_call>{"name": "ping", "arguments": {}}</tool_call>';
    for (const seed of [null, 1, 2, 3, 4, 5]) {
      const got = read(text, true, seed);
      expect(got.reasoning).toBe('Maybe <tool_call>{"name": "no", "arguments": {}}</tool_call>?');
      expect(got.content).toBe('Calling.');
      expect(got.calls).toEqual([{ name: 'ping', arguments: '{}' }]);
    }
  });
});

describe('chat completions with --reasoning-parser deepseek_r1', () => {
  const plain = useTinyServer('onnx', { maxModelLen: 512 });
  const thinking = useTinyServer('onnx', { maxModelLen: 512 }, { reasoningParser: 'deepseek_r1' });
  const body = {
    model: TINY_MODEL_NAME,
    temperature: 0,
    max_tokens: 12,
    messages: [{ role: 'user', content: 'Hi' }],
  };

  it('an output that never ends its reasoning is all reasoning, content null, streamed or whole', async () => {
    const text = (await plain().post('/v1/chat/completions', body)).body.choices[0].message.content;
    const res = await thinking().post('/v1/chat/completions', body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.choices[0].message).toEqual({
      role: 'assistant',
      content: null,
      reasoning: text,
      reasoning_content: text,
    });
    const stream = await thinking().client.chat.completions.create({ ...body, stream: true } as never);
    let reasoning = '';
    let content = '';
    for await (const chunk of stream as unknown as AsyncIterable<{
      choices: Array<{ delta: Record<string, string> }>;
    }>) {
      reasoning += chunk.choices[0]?.delta.reasoning ?? '';
      content += chunk.choices[0]?.delta.content ?? '';
    }
    expect(reasoning).toBe(text);
    expect(content).toBe('');
  });

  it('thinking_token_budget ends the reasoning after that many tokens; then the answer, shaped as asked', async () => {
    const free = await plain().post('/v1/chat/completions', { ...body, max_tokens: 40, logprobs: true });
    const firstThree = free.body.choices[0].logprobs.content
      .slice(0, 3)
      .map((t: { token: string }) => t.token);
    const res = await thinking().post('/v1/chat/completions', {
      ...body,
      max_tokens: 40,
      thinking_token_budget: 3,
      guided_regex: 'a+',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { reasoning, content } = res.body.choices[0].message;
    // The same three tokens of reasoning as without a budget (greedy), then </think>, then the answer.
    expect(reasoning).toBe(firstThree.join(''));
    expect(content).toMatch(/^a+$/);
    const unbounded = await thinking().post('/v1/chat/completions', { ...body, thinking_token_budget: -1 });
    expect(unbounded.body.choices[0].message.content).toBeNull();
    const refused = await plain().post('/v1/chat/completions', { ...body, thinking_token_budget: 3 });
    expect(refused.status).toBe(400);
    expect(refused.body.error.param).toBe('thinking_token_budget');
  });

  it('include_reasoning: false leaves the reasoning out, whole or streamed', async () => {
    const res = await thinking().post('/v1/chat/completions', { ...body, include_reasoning: false });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.choices[0].message).toEqual({ role: 'assistant', content: null });
    const stream = await thinking().client.chat.completions.create({
      ...body,
      include_reasoning: false,
      stream: true,
    } as never);
    for await (const chunk of stream as unknown as AsyncIterable<{
      choices: Array<{ delta: Record<string, string> }>;
    }>)
      expect(chunk.choices[0]?.delta.reasoning).toBeUndefined();
  });

  it('guided output applies after the reasoning only: an output that never ends it is not shaped', async () => {
    const free = (await plain().post('/v1/chat/completions', body)).body.choices[0].message.content;
    const shapedPlain = await plain().post('/v1/chat/completions', { ...body, guided_regex: 'a+' });
    expect(shapedPlain.body.choices[0].message.content).toMatch(/^a+$/);
    for (const extra of [{ guided_regex: 'a+' }, { response_format: { type: 'json_object' } }]) {
      const res = await thinking().post('/v1/chat/completions', { ...body, ...extra });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.choices[0].message.reasoning, JSON.stringify(extra)).toBe(free);
    }
    // A named tool's guide waits too (its tools are in the prompt, as they are with "none").
    const tools = [{ type: 'function', function: { name: 'ping' } }];
    const unguided = await plain().post('/v1/chat/completions', { ...body, tools, tool_choice: 'none' });
    const named = await thinking().post('/v1/chat/completions', {
      ...body,
      tools,
      tool_choice: { type: 'function', function: { name: 'ping' } },
    });
    expect(named.body.choices[0].message.reasoning).toBe(unguided.body.choices[0].message.content);
  });

  it("the Responses API gives the reasoning as a reasoning item, Anthropic's as a thinking block", async () => {
    const text = (await plain().post('/v1/chat/completions', body)).body.choices[0].message.content;
    const response = await thinking().post('/v1/responses', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_output_tokens: 12,
      input: 'Hi',
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.output).toHaveLength(1);
    expect(response.body.output[0]).toMatchObject({
      type: 'reasoning',
      summary: [],
      content: [{ type: 'reasoning_text', text }],
    });
    expect(response.body.output[0].id).toMatch(/^rs_/);
    const events = await thinking().client.responses.create({
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_output_tokens: 12,
      input: 'Hi',
      stream: true,
    } as never);
    let deltas = '';
    for await (const event of events as unknown as AsyncIterable<{ type: string; delta?: string }>)
      if (event.type === 'response.reasoning_text.delta') deltas += event.delta;
    expect(deltas).toBe(text);

    const message = await thinking().post('/v1/messages', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_tokens: 12,
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(message.status, JSON.stringify(message.body)).toBe(200);
    expect(message.body.content).toEqual([
      { type: 'thinking', thinking: text, signature: expect.stringMatching(/^[0-9a-f]{32}$/) },
    ]);
    // Anthropic's thinking budget is vLLM's thinking_token_budget, within Anthropic's bounds.
    const thinkingOf = (thinking: object, max_tokens = 2048) =>
      chatRequestOfMessages(
        { model: TINY_MODEL_NAME, max_tokens, thinking, messages: [{ role: 'user', content: 'Hi' }] },
        true,
      );
    expect(thinkingOf({ type: 'enabled', budget_tokens: 1024 }).thinking_token_budget).toBe(1024);
    expect(thinkingOf({ type: 'disabled' }).thinking_token_budget).toBeUndefined();
    expect(() => thinkingOf({ type: 'enabled', budget_tokens: 100 })).toThrow(/at least 1024/);
    expect(() => thinkingOf({ type: 'enabled', budget_tokens: 1024 }, 1024)).toThrow(/less than max_tokens/);
    expect(() => thinkingOf({ type: 'adaptive' })).toThrow(/of type adaptive/);
    expect(() => thinkingOf({ type: 'enabled', budget_tokens: 1024, style: 1 })).toThrow(/thinking\.style/);
    const budget = await thinking().post('/v1/messages', {
      model: TINY_MODEL_NAME,
      max_tokens: 12,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(budget.status).toBe(400);
    expect(budget.body.error.message).toMatch(/less than max_tokens/);
  });
  it("earlier turns' reasoning reaches the template on every route; elsewhere it is refused", async () => {
    const turns = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.', reasoning_content: 'They greet me.' },
      { role: 'user', content: 'Again' },
    ];
    const chat = await thinking().post('/v1/chat/completions', { ...body, messages: turns });
    expect(chat.status, JSON.stringify(chat.body)).toBe(200);
    const anthropic = await thinking().post('/v1/messages', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_tokens: 12,
      messages: [
        { role: 'user', content: 'Hi' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'They greet me.', signature: 'x' },
            { type: 'redacted_thinking', data: 'opaque' },
            { type: 'text', text: 'Hello.' },
          ],
        },
        { role: 'user', content: 'Again' },
      ],
    });
    expect(anthropic.status, JSON.stringify(anthropic.body)).toBe(200);
    const responses = await thinking().post('/v1/responses', {
      model: TINY_MODEL_NAME,
      temperature: 0,
      max_output_tokens: 12,
      input: [
        { role: 'user', content: 'Hi' },
        {
          type: 'reasoning',
          id: 'rs_1',
          summary: [],
          content: [{ type: 'reasoning_text', text: 'They greet me.' }],
        },
        { role: 'assistant', content: [{ type: 'output_text', text: 'Hello.' }] },
        { role: 'user', content: 'Again' },
      ],
    });
    expect(responses.status, JSON.stringify(responses.body)).toBe(200);
    // Another server's item, with a summary only, is read by its summary.
    const summarized = await thinking().post('/v1/responses', {
      model: TINY_MODEL_NAME,
      max_output_tokens: 4,
      input: [
        { role: 'user', content: 'Hi' },
        { type: 'reasoning', summary: [{ type: 'summary_text', text: 'They greet me.' }] },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Again' },
      ],
    });
    expect(summarized.status, JSON.stringify(summarized.body)).toBe(200);
    // The tiny model's template writes no reasoning: all three prompts are the chat one.
    expect(anthropic.body.usage.input_tokens).toBe(chat.body.usage.prompt_tokens);
    expect(responses.body.usage.input_tokens).toBe(chat.body.usage.prompt_tokens);
    const misplaced = await thinking().post('/v1/chat/completions', {
      ...body,
      messages: [{ role: 'user', content: 'Hi', reasoning: 'no' }],
    });
    expect(misplaced.status).toBe(400);
    expect(misplaced.body.error.param).toBe('messages[0].reasoning');
  });
});

describe('reasoning_effort', () => {
  // A template that reads reasoning_effort (as gpt-oss's does), and the tiny model's, which does not.
  const reads = useTinyServer('onnx', (root) => {
    const file = join(root, 'effort.jinja');
    writeFileSync(
      file,
      '{% for m in messages %}{{ m.content }}{% endfor %}{% if reasoning_effort is defined %}[effort: {{ reasoning_effort }}]{% endif %}',
    );
    return { chatTemplateFile: file };
  });
  const plain = useTinyServer('onnx');
  const tokenize = (server: typeof plain, extra: object) =>
    server().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'Hi' }],
      ...extra,
    });

  it('reaches a template that reads it; one that does not refuses it by name', async () => {
    const none = await tokenize(reads, {});
    const high = await tokenize(reads, { reasoning_effort: 'high' });
    expect(high.status, JSON.stringify(high.body)).toBe(200);
    expect(high.body.count).toBe(
      (await tokenize(reads, { chat_template_kwargs: { reasoning_effort: 'high' } })).body.count,
    );
    expect(high.body.count).toBeGreaterThan(none.body.count);
    const clash = await tokenize(reads, {
      reasoning_effort: 'low',
      chat_template_kwargs: { reasoning_effort: 'high' },
    });
    expect(clash.status).toBe(400);
    const refused = await plain().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
      reasoning_effort: 'low',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.param).toBe('reasoning_effort');
    expect((await tokenize(plain, { reasoning_effort: 'medium' })).status).toBe(400);
  });
});
