import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplateError, ChatTemplateRenderError } from '../../model/chat-template.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { tempDirForFile } from './temp-dir.js';
import { llama2StyleTokenizerJson } from './tokenizer-fixtures.js';

/** Mistral-7B-Instruct's template: BOS once, then [INST] turns, each answer closed by EOS. */
const MISTRAL_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

const root = tempDirForFile('loom-special-');

async function tokenizerDir(
  name: string,
  files: { config: Record<string, unknown>; specialTokensMap?: Record<string, unknown> },
): Promise<string> {
  const dir = join(root(), name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(llama2StyleTokenizerJson()));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config));
  if (files.specialTokensMap) {
    await writeFile(join(dir, 'special_tokens_map.json'), JSON.stringify(files.specialTokensMap));
  }
  return dir;
}

const MULTI_TURN = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello' },
  { role: 'user', content: 'More' },
];

describe('special tokens', () => {
  it('reads bos/eos from special_tokens_map.json when tokenizer_config.json lacks them (Mistral repositories)', async () => {
    const added = (content: string) => ({
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
    });
    const dir = await tokenizerDir('map-only', {
      config: { tokenizer_class: 'PreTrainedTokenizerFast', chat_template: MISTRAL_TEMPLATE },
      specialTokensMap: { bos_token: added('<s>'), eos_token: added('</s>'), unk_token: added('<unk>') },
    });
    const tokenizer = await TextTokenizer.fromDir(dir);
    expect(tokenizer.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    expect(tokenizer.applyChatTemplate(MULTI_TURN)).toBe('<s>[INST] Hi [/INST]Hello</s>[INST] More [/INST]');
    expect(tokenizer.encodeChat(MULTI_TURN)[0]).toBe(1);
  });

  it('prefers tokenizer_config.json, and falls back to the Llama classes’ own defaults', async () => {
    const both = await TextTokenizer.fromDir(
      await tokenizerDir('both', {
        config: { bos_token: '<s>', eos_token: '<unk>' },
        specialTokensMap: { bos_token: '</s>', eos_token: '</s>' },
      }),
    );
    expect(both.specialTokens).toMatchObject({ bos_token: '<s>', eos_token: '<unk>' });
    const llama = await TextTokenizer.fromDir(
      await tokenizerDir('class-defaults', { config: { tokenizer_class: 'LlamaTokenizer' } }),
    );
    expect(llama.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    // Last, tokenizer.json's post-processor: the fixture's adds <s> before a text.
    const plain = await TextTokenizer.fromDir(
      await tokenizerDir('no-class', { config: { tokenizer_class: 'PreTrainedTokenizerFast' } }),
    );
    expect(plain.specialTokens).toEqual({ bos_token: '<s>' });
  });
});

describe('chat template errors', () => {
  async function withoutSpecials(): Promise<TextTokenizer> {
    return TextTokenizer.fromDir(
      await tokenizerDir('no-specials', {
        config: { tokenizer_class: 'PreTrainedTokenizerFast', chat_template: MISTRAL_TEMPLATE },
      }),
    );
  }

  it("the template's raise_exception is a ChatTemplateError, naming its message", async () => {
    const tokenizer = await withoutSpecials();
    expect(() => tokenizer.applyChatTemplate([{ role: 'assistant', content: 'x' }])).toThrow(
      ChatTemplateError,
    );
    expect(() => tokenizer.applyChatTemplate([{ role: 'assistant', content: 'x' }])).toThrow(
      /Conversation roles must alternate/,
    );
  });

  it('a render failure (arithmetic on an undefined eos_token) is a ChatTemplateRenderError', async () => {
    const tokenizer = await withoutSpecials();
    expect(() => tokenizer.applyChatTemplate(MULTI_TURN)).toThrow(ChatTemplateRenderError);
  });
});

describe('add_bos_token / add_eos_token', () => {
  const tokenizer = (config: Record<string, unknown>) =>
    new TextTokenizer({ tokenizerJson: llama2StyleTokenizerJson(), tokenizerConfig: config });

  it('rebuild the post-processor for Llama tokenizer classes, as LlamaTokenizerFast does', () => {
    const helloId = tokenizer({}).encode('Hello', false);
    expect(helloId).toHaveLength(1);
    const [id] = helloId;
    expect(tokenizer({ tokenizer_class: 'LlamaTokenizer' }).encode('Hello')).toEqual([1, id]);
    expect(tokenizer({ tokenizer_class: 'LlamaTokenizerFast', add_eos_token: true }).encode('Hello')).toEqual(
      [1, id, 2],
    );
    expect(tokenizer({ tokenizer_class: 'LlamaTokenizer', add_bos_token: false }).encode('Hello')).toEqual([
      id,
    ]);
    expect(
      tokenizer({ tokenizer_class: 'LlamaTokenizer', add_bos_token: false }).encode('Hello', false),
    ).toEqual([id]);
  });

  it('refuses flags that contradict the post-processor of other classes, and a missing bos', () => {
    expect(() => tokenizer({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: false })).toThrow(
      /"add_bos_token" is false but tokenizer.json's post-processor adds that token/,
    );
    expect(() =>
      tokenizer({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: true }),
    ).not.toThrow();
    const json = llama2StyleTokenizerJson();
    delete (json.model as { vocab: Record<string, number> }).vocab['<s>'];
    const withoutBos = { ...json, added_tokens: (json.added_tokens as object[]).slice(0, 1) };
    expect(
      () =>
        new TextTokenizer({
          tokenizerJson: withoutBos,
          tokenizerConfig: { tokenizer_class: 'LlamaTokenizer' },
        }),
    ).toThrow(ModelFormatError);
  });
});
