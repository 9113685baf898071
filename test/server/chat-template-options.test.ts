import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTHETIC_CHAT_TEMPLATE } from '../../model/synthetic-tokenizer.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * vLLM's chat-template options on chat completions and /tokenize's chat form: add_generation_prompt,
 * continue_final_message, add_special_tokens and chat_template_kwargs, on the real stack with the
 * synthetic template plus variables of its own (`persona`, and RAG's `documents`).
 */
const TEMPLATE = `{% if persona %}{{ '[' + persona + ']' }}{% endif %}{% if documents %}{% for d in documents %}{{ '<doc ' + d.title + '>' + d.text + '</doc>' }}{% endfor %}{% endif %}${SYNTHETIC_CHAT_TEMPLATE}`;

const server = useTinyServer('onnx', (root) => {
  const file = join(root, 'template.jinja');
  writeFileSync(file, TEMPLATE);
  return { chatTemplateFile: file };
});
/** The synthetic template alone, which reads no `documents`; this server trusts request templates. */
const plain = useTinyServer('onnx', {}, { trustRequestChatTemplate: true });

const MESSAGES = [
  { role: 'user', content: 'Name a colour.' },
  { role: 'assistant', content: 'The colour is' },
];

async function tokenize(
  extra: object,
): Promise<{ status: number; tokens: number[]; body: { error?: { param?: string } } }> {
  const res = await server().post('/tokenize', { model: TINY_MODEL_NAME, messages: MESSAGES, ...extra });
  return { status: res.status, tokens: res.body.tokens, body: res.body };
}

async function text(tokens: number[]): Promise<string> {
  return (await server().post('/detokenize', { model: TINY_MODEL_NAME, tokens })).body.prompt;
}

describe('--default-chat-template-kwargs', () => {
  const defaulted = useTinyServer(
    'onnx',
    (root) => {
      const file = join(root, 'template.jinja');
      writeFileSync(file, TEMPLATE);
      return { chatTemplateFile: file };
    },
    { defaultChatTemplateKwargs: { persona: 'pirate' } },
  );
  const render = async (extra: object) => {
    const res = await defaulted().post('/tokenize', { model: TINY_MODEL_NAME, messages: MESSAGES, ...extra });
    return (await defaulted().post('/detokenize', { model: TINY_MODEL_NAME, tokens: res.body.tokens })).body
      .prompt as string;
  };

  it("reach every chat request's template, under the request's own chat_template_kwargs", async () => {
    expect(await render({})).toMatch(/^\[pirate\]/);
    expect(await render({ chat_template_kwargs: { persona: 'poet' } })).toMatch(/^\[poet\]/);
    const chat = await defaulted().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      max_tokens: 1,
    });
    const tokens = await defaulted().post('/tokenize', { model: TINY_MODEL_NAME, messages: MESSAGES });
    expect(chat.body.usage.prompt_tokens).toBe(tokens.body.count);
  });
});

describe("documents (vLLM's, HF apply_chat_template's)", () => {
  const documents = [{ title: 'Rome', text: 'Rome is in Italy.' }];

  it('reach a template that reads them, in chat completions and /tokenize; one that does not refuses them', async () => {
    const withDocs = await tokenize({ documents });
    expect(withDocs.status, JSON.stringify(withDocs.body)).toBe(200);
    expect(await text(withDocs.tokens)).toBe(
      `<doc Rome>Rome is in Italy.</doc>${await text((await tokenize({})).tokens)}`,
    );
    const viaKwargs = await tokenize({ chat_template_kwargs: { documents } });
    expect(viaKwargs.tokens).toEqual(withDocs.tokens);
    const clash = await tokenize({ documents, chat_template_kwargs: { documents: [] } });
    expect(clash.status).toBe(400);
    expect(clash.body.error?.param).toBe('documents');
    const body = { model: TINY_MODEL_NAME, messages: MESSAGES, max_tokens: 2, documents };
    const chat = await server().post('/v1/chat/completions', body);
    expect(chat.status, JSON.stringify(chat.body)).toBe(200);
    expect(chat.body.usage.prompt_tokens).toBe(withDocs.tokens.length);
    const refused = await plain().post('/v1/chat/completions', body);
    expect(refused.status).toBe(400);
    expect(refused.body.error.param).toBe('documents');
    expect(refused.body.error.message).toContain('does not read `documents`');
    const malformed = await server().post('/v1/chat/completions', { ...body, documents: [{ title: 3 }] });
    expect(malformed.status).toBe(400);
  });
});

describe("a request's own chat_template (vLLM's, --trust-request-chat-template)", () => {
  const own =
    '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if documents %}<{{ documents | length }} docs>{% endif %}';

  it('renders the request with it on a server that trusts them, in chat completions and /tokenize', async () => {
    const tokenized = await plain().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      chat_template: own,
    });
    expect(tokenized.status, JSON.stringify(tokenized.body)).toBe(200);
    const rendered = (
      await plain().post('/detokenize', { model: TINY_MODEL_NAME, tokens: tokenized.body.tokens })
    ).body.prompt;
    expect(rendered).toBe('[user]Name a colour.[assistant]The colour is');
    // chat_template_kwargs.chat_template is the same thing (HF's apply_chat_template argument).
    const viaKwargs = await plain().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      chat_template_kwargs: { chat_template: own },
    });
    expect(viaKwargs.body.tokens).toEqual(tokenized.body.tokens);
    const chat = await plain().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      max_tokens: 2,
      chat_template: own,
    });
    expect(chat.status, JSON.stringify(chat.body)).toBe(200);
    expect(chat.body.usage.prompt_tokens).toBe(tokenized.body.count);
    // Its own reads decide what it takes: it reads documents, which the model's template does not.
    const docs = await plain().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      chat_template: own,
      documents: [{ title: 'a', text: 'b' }],
    });
    expect(docs.status, JSON.stringify(docs.body)).toBe(200);
    expect(docs.body.count).toBeGreaterThan(tokenized.body.count);
  });

  it('is refused by a server that does not trust them, and where it does not parse or disagrees', async () => {
    const untrusted = await tokenize({ chat_template: own });
    expect(untrusted.status).toBe(400);
    expect(untrusted.body.error?.param).toBe('chat_template');
    expect(JSON.stringify(untrusted.body)).toContain('--trust-request-chat-template is not set');
    expect((await tokenize({ chat_template_kwargs: { chat_template: own } })).status).toBe(400);
    const broken = await plain().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      chat_template: '{% for m in messages %}',
    });
    expect(broken.status).toBe(400);
    expect(broken.body.error.message).toContain('chat template does not parse');
    const clash = await plain().post('/tokenize', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      chat_template: own,
      chat_template_kwargs: { chat_template: '{{ messages }}' },
    });
    expect(clash.status).toBe(400);
    expect(clash.body.error.param).toBe('chat_template');
  });
});

describe("content as a template reads it (vLLM's --chat-template-content-format)", () => {
  // A template written for OpenAI's message shape only: it loops over each message's parts.
  const parts =
    "{% for m in messages %}[{{ m.role }}]{% for p in m['content'] %}{{ p.text }}|{% endfor %}{% endfor %}";
  const forcedString = useTinyServer(
    'onnx',
    {},
    { trustRequestChatTemplate: true, chatTemplateContentFormat: 'string' },
  );
  const rendered = async (target: typeof plain, extra: object) => {
    const res = await target().post('/tokenize', { model: TINY_MODEL_NAME, chat_template: parts, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return (await target().post('/detokenize', { model: TINY_MODEL_NAME, tokens: res.body.tokens })).body
      .prompt as string;
  };
  const messages = [
    { role: 'user', content: 'Hi' },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'One' },
        { type: 'text', text: 'Two' },
      ],
    },
  ];

  it('auto gives a template that loops over content the parts, one per text part; string gives it a string', async () => {
    expect(await rendered(plain, { messages })).toBe('[user]Hi|[assistant]One|Two|');
    // Forced to a string, the loop meets a string (which this Jinja does not iterate): the
    // request's own template failed, a 400 naming it, not the server's 500.
    const forced = await forcedString().post('/tokenize', {
      model: TINY_MODEL_NAME,
      chat_template: parts,
      messages,
    });
    expect(forced.status).toBe(400);
    expect(forced.body.error.param).toBe('chat_template');
    expect(forced.body.error.message).toContain('failed to render');
    // continue_final_message cuts after the final message's last text part, as HF does with parts.
    const open = await rendered(plain, {
      messages,
      add_generation_prompt: false,
      continue_final_message: true,
    });
    expect(open).toBe('[user]Hi|[assistant]One|Two');
  });
});

describe('chat-template options', () => {
  it('add_generation_prompt: the assistant turn opens only when asked (default true)', async () => {
    const asked = await tokenize({});
    const not = await tokenize({ add_generation_prompt: false });
    expect(await text(asked.tokens)).toBe(`${await text(not.tokens)}<|assistant|>\n`);
  });

  it('continue_final_message: the rendering ends right after the last message, left open', async () => {
    const open = await tokenize({ continue_final_message: true, add_generation_prompt: false });
    expect(open.status).toBe(200);
    const closed = await text((await tokenize({ add_generation_prompt: false })).tokens);
    const rendered = await text(open.tokens);
    expect(rendered.endsWith('The colour is')).toBe(true);
    expect(closed.startsWith(rendered)).toBe(true);
    expect(closed.length).toBeGreaterThan(rendered.length);
    // add_generation_prompt left out defaults to false beside it, as vLLM's clients send it.
    expect((await tokenize({ continue_final_message: true })).tokens).toEqual(open.tokens);
    const both = await tokenize({ continue_final_message: true, add_generation_prompt: true });
    expect(both.status).toBe(400);
    expect(both.body.error?.param).toBe('continue_final_message');
  });

  it('chat_template_kwargs reach the template, and cannot replace the messages', async () => {
    const plain = await text((await tokenize({})).tokens);
    expect(plain.startsWith('[')).toBe(false);
    const styled = await text((await tokenize({ chat_template_kwargs: { persona: 'pirate' } })).tokens);
    expect(styled).toBe(`[pirate]${plain}`);
    const hijack = await text((await tokenize({ chat_template_kwargs: { messages: [] } })).tokens);
    expect(hijack).toBe(plain);
  });

  it('add_special_tokens adds the tokenizer BOS in front of the template’s own', async () => {
    const without = (await tokenize({})).tokens;
    const withBos = (await tokenize({ add_special_tokens: true })).tokens;
    expect(withBos.slice(1)).toEqual(without);
    expect(withBos[0]).toBe(without[0]);
  });

  it('chat completions take them: a continued message counts the open prompt', async () => {
    const open = await tokenize({ continue_final_message: true });
    const res = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      continue_final_message: true,
      add_generation_prompt: false,
      chat_template_kwargs: { persona: 'pirate' },
      max_tokens: 3,
      temperature: 0,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const styled = await tokenize({
      continue_final_message: true,
      chat_template_kwargs: { persona: 'pirate' },
    });
    expect(res.body.usage.prompt_tokens).toBe(styled.tokens.length);
    expect(styled.tokens.length).toBeGreaterThan(open.tokens.length);
    const both = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: MESSAGES,
      continue_final_message: true,
      max_tokens: 3,
      add_generation_prompt: true,
    });
    expect(both.status).toBe(400);
  });
});
