import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteTokenizerConfigJson, byteTokenizerJson } from '../../model/synthetic.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { servedTokenizerClass, tokenizerInfo } from '../../model/tokenizer-info.js';
import { tempDirForFile } from './temp-dir.js';

const root = tempDirForFile('loom-tokinfo-');

/** A Llama-style tokenizer_config.json as transformers saves it. */
const LLAMA_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  added_tokens_decoder: {
    '0': {
      content: '<unk>',
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    },
    '1': {
      content: '<s>',
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    },
  },
  bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false },
  eos_token: '</s>',
  clean_up_tokenization_spaces: false,
  legacy: false,
  model_max_length: 2048,
  pad_token: null,
  sp_model_kwargs: {},
  tokenizer_class: 'LlamaTokenizer',
  unk_token: { content: '<unk>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  vocab_file: '/somewhere/tokenizer.model',
  chat_template: '{{ messages[0].content }}',
};

describe('tokenizerInfo (vLLM GET /tokenizer_info)', () => {
  it("writes transformers' init arguments: AddedTokens as text, vocabulary paths dropped, the served class", () => {
    const info = tokenizerInfo({
      tokenizerConfig: LLAMA_CONFIG,
      specialTokensMap: {},
      nameOrPath: '/models/llama',
      tokenizerFile: '/models/llama/tokenizer.json',
    });
    expect(info).toEqual({
      add_bos_token: true,
      add_eos_token: false,
      added_tokens_decoder: { '0': '<unk>', '1': '<s>' },
      bos_token: '<s>',
      eos_token: '</s>',
      clean_up_tokenization_spaces: false,
      legacy: false,
      model_max_length: 2048,
      pad_token: null,
      sp_model_kwargs: {},
      tokenizer_class: 'CachedLlamaTokenizerFast',
      unk_token: '<unk>',
      chat_template: '{{ messages[0].content }}',
      name_or_path: '/models/llama',
      tokenizer_file: '/models/llama/tokenizer.json',
    });
  });

  it("lets special_tokens_map.json replace tokenizer_config.json's tokens, as from_pretrained merges them", () => {
    const info = tokenizerInfo({
      tokenizerConfig: { eos_token: '</s>', tokenizer_class: 'PreTrainedTokenizerFast' },
      specialTokensMap: {
        eos_token: { content: '<|eot_id|>', lstrip: false },
        additional_special_tokens: [{ content: '<tool>' }, '<end>'],
      },
      nameOrPath: 'm',
      tokenizerFile: 'm/tokenizer.json',
    });
    expect(info.eos_token).toBe('<|eot_id|>');
    expect(info.additional_special_tokens).toEqual(['<tool>', '<end>']);
    expect(info.tokenizer_class).toBe('CachedPreTrainedTokenizerFast');
  });

  it('names the fast class whatever the config names, PreTrainedTokenizerFast when it names none', () => {
    expect(servedTokenizerClass('LlamaTokenizer')).toBe('CachedLlamaTokenizerFast');
    expect(servedTokenizerClass('GPT2TokenizerFast')).toBe('CachedGPT2TokenizerFast');
    expect(servedTokenizerClass(undefined)).toBe('CachedPreTrainedTokenizerFast');
    expect(servedTokenizerClass('')).toBe('CachedPreTrainedTokenizerFast');
  });

  it('gives the chat template the server renders with: --chat-template over the config, the .jinja file too', async () => {
    const dir = join(root(), 'llama');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson(300)));
    const config = { ...byteTokenizerConfigJson(), chat_template: '{{ "from the config" }}' };
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: '</s>' }));

    const own = (await TextTokenizer.fromDir(dir)).tokenizerInfo();
    expect(own.chat_template).toBe('{{ "from the config" }}');
    expect(own.pad_token).toBe('</s>');
    expect(own.name_or_path).toBe(dir);
    expect(own.tokenizer_file).toBe(join(dir, 'tokenizer.json'));

    const file = join(dir, 'override.jinja');
    await writeFile(file, '{{ "from the flag" }}');
    expect((await TextTokenizer.fromDir(dir, file)).tokenizerInfo().chat_template).toBe(
      '{{ "from the flag" }}',
    );

    // A list of named templates is given as the config holds it (transformers keeps the list).
    const named = [
      { name: 'default', template: '{{ "default" }}' },
      { name: 'tool_use', template: '{{ "tools" }}' },
    ];
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: named }));
    expect((await TextTokenizer.fromDir(dir)).tokenizerInfo().chat_template).toEqual(named);

    const { chat_template: _, ...withoutTemplate } = config;
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(withoutTemplate));
    expect('chat_template' in (await TextTokenizer.fromDir(dir)).tokenizerInfo()).toBe(false);
    await writeFile(join(dir, 'chat_template.jinja'), '{{ "from the jinja file" }}');
    expect((await TextTokenizer.fromDir(dir)).tokenizerInfo().chat_template).toBe(
      '{{ "from the jinja file" }}',
    );
  });
});
