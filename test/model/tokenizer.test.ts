import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError } from '../../model/chat-template.js';
import { IncrementalDecoder } from '../../model/incremental-decoder.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import {
  BOS_ID,
  byteTokenizerConfigJson,
  byteTokenizerJson,
  EOS_ID,
  FIRST_BYTE_ID,
  SYNTHETIC_CHAT_TEMPLATE,
} from '../../model/synthetic.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { tempDirForFile } from './temp-dir.js';

const tokenizer = new TextTokenizer({
  tokenizerJson: byteTokenizerJson(400),
  tokenizerConfig: byteTokenizerConfigJson(),
  chatTemplate: new ChatTemplate(SYNTHETIC_CHAT_TEMPLATE, 'synthetic'),
});
const SAMPLES = [
  'Hello, world!',
  'café déjà vu',
  'emoji 🎉👩‍👩‍👧 flags 🇫🇷',
  '日本語のテキスト',
  ' leading\tand\ntrailing  ',
  '',
];

const root = tempDirForFile('loom-tok-');

async function tokenizerDir(name: string, config: Record<string, unknown>): Promise<string> {
  const dir = join(root(), name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson(300)));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

describe('TextTokenizer', () => {
  it('adds BOS through the post-processor, and not when asked not to', () => {
    expect(tokenizer.encode('hi')).toEqual([BOS_ID, FIRST_BYTE_ID + 0x68, FIRST_BYTE_ID + 0x69]);
    expect(tokenizer.encode('hi', false)).toEqual([FIRST_BYTE_ID + 0x68, FIRST_BYTE_ID + 0x69]);
    expect(tokenizer.vocabSize).toBe(400);
  });

  it('round-trips arbitrary UTF-8 byte for byte', () => {
    for (const text of SAMPLES) {
      const ids = tokenizer.encode(text, false);
      expect(ids).toHaveLength(Buffer.byteLength(text));
      expect(tokenizer.decode(ids)).toBe(text);
    }
  });

  it('skips special tokens when decoding unless asked to keep them', () => {
    const ids = [BOS_ID, ...tokenizer.encode('ok', false), EOS_ID];
    expect(tokenizer.decode(ids)).toBe('ok');
    expect(tokenizer.decode(ids, false)).toBe('<s>ok</s>');
  });

  it('renders the chat template with bos/eos and the generation prompt', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    const text = tokenizer.applyChatTemplate(messages);
    expect(text).toBe('<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n');
    expect(tokenizer.applyChatTemplate(messages, false).endsWith('<|user|>\nHi</s>\n')).toBe(true);
    const ids = tokenizer.encodeChat(messages);
    expect(ids[0]).toBe(BOS_ID);
    expect(ids.filter((id) => id === BOS_ID)).toHaveLength(1);
    expect(ids).toContain(EOS_ID);
  });

  it("turns the template's raise_exception into a ChatTemplateError", () => {
    expect(() => tokenizer.applyChatTemplate([{ role: 'function', content: 'x' }])).toThrow(
      ChatTemplateError,
    );
    expect(() => tokenizer.applyChatTemplate([{ role: 'function', content: 'x' }])).toThrow(
      /Unknown role: function/,
    );
  });

  it('has no chat template when neither the config nor a file gives one', async () => {
    const { chat_template: _, ...config } = byteTokenizerConfigJson();
    const tok = await TextTokenizer.fromDir(await tokenizerDir('no-template', config));
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(ChatTemplateError);
  });

  it('picks "default" from a list of named templates ("tool_use" with tools), and a --chat-template file over both', async () => {
    const config = {
      ...byteTokenizerConfigJson(),
      chat_template: [
        { name: 'tool_use', template: 'TOOLS' },
        { name: 'default', template: '{% for m in messages %}[{{ m.content }}]{% endfor %}' },
      ],
    };
    const dir = await tokenizerDir('list-template', config);
    const tok = await TextTokenizer.fromDir(dir);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('[a]');
    // HF's choice: the "tool_use" template whenever the request has tools.
    expect(tok.applyChatTemplate([{ role: 'user', content: 'a' }], true, {}, [{ type: 'function' }])).toBe(
      'TOOLS',
    );
    expect(tok.chatTemplateReads('content')).toBe(true);
    expect(tok.chatTemplateReads('content', true)).toBe(false);
    const file = join(root(), 'override.jinja');
    await writeFile(file, '{{ eos_token }}{{ messages[0].role }}');
    const overridden = await TextTokenizer.fromDir(dir, file);
    expect(overridden.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('</s>user');
    expect(
      overridden.applyChatTemplate([{ role: 'user', content: 'a' }], true, {}, [{ type: 'function' }]),
    ).toBe('</s>user');
  });

  it("reads --chat-template as vLLM does: a file, else the template itself when it has Jinja's characters", async () => {
    const dir = await tokenizerDir('inline-template', byteTokenizerConfigJson());
    const inline = await TextTokenizer.fromDir(dir, '{{ messages[0].role }}:{{ messages[0].content }}');
    expect(inline.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('user:a');
    expect(inline.tokenizerInfo().chat_template).toBe('{{ messages[0].role }}:{{ messages[0].content }}');
    // A newline alone makes it a template; taken as written (no escapes decoded, as vLLM now).
    const multiline = await TextTokenizer.fromDir(dir, 'A\\n\nB');
    expect(multiline.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('A\\n\nB');
    // A file of that name wins over reading the text as a template.
    const named = join(root(), '{odd}.jinja');
    await writeFile(named, 'from the file');
    expect((await TextTokenizer.fromDir(dir, named)).applyChatTemplate([])).toBe('from the file');
    // Path-like text that names no file is refused, as vLLM refuses it; so is an empty one.
    for (const missing of [join(root(), 'no-such.jinja'), '']) {
      const err = (await TextTokenizer.fromDir(dir, missing).catch((e: unknown) => e)) as ModelFormatError;
      expect(err).toBeInstanceOf(ModelFormatError);
      expect(err.message).toMatch(/looks like a file path, but no such file opens/);
    }
    // A template that does not parse names the flag.
    const broken = (await TextTokenizer.fromDir(dir, '{% for %}').catch(
      (e: unknown) => e,
    )) as ModelFormatError;
    expect(broken.message).toMatch(/^--chat-template: chat template does not parse/);
  });

  it('names the file when the tokenizer or template is broken', async () => {
    const dir = await tokenizerDir('broken', { ...byteTokenizerConfigJson(), chat_template: '{% for %}' });
    const err: unknown = await TextTokenizer.fromDir(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as ModelFormatError).message).toMatch(
      new RegExp(`^${join(dir, 'tokenizer_config.json')}: chat template does not parse`),
    );
    await writeFile(join(dir, 'tokenizer.json'), '{not json');
    expect(String(await TextTokenizer.fromDir(dir).catch((e: unknown) => e))).toMatch(
      /tokenizer.json: is not valid JSON/,
    );
    const missing = join(root(), 'missing-tokenizer');
    expect(String(await TextTokenizer.fromDir(missing).catch((e: unknown) => e))).toMatch(
      /tokenizer.json: is missing/,
    );
    expect(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')).toContain('{% for %}');
  });
});

describe('IncrementalDecoder', () => {
  it('holds back split multi-byte characters and emits each once complete', () => {
    const decoder = new IncrementalDecoder(tokenizer);
    const ids = tokenizer.encode('a€🎉', false); // 1 + 3 + 4 bytes
    const pieces = ids.map((id) => decoder.push(id));
    expect(pieces).toEqual(['a', '', '', '€', '', '', '', '🎉']);
    expect(decoder.flush()).toBe('');
  });

  it('joins to the full text for every sample, skipping specials', () => {
    for (const text of SAMPLES) {
      const decoder = new IncrementalDecoder(tokenizer);
      let out = '';
      for (const id of [BOS_ID, ...tokenizer.encode(text, false), EOS_ID]) out += decoder.push(id);
      out += decoder.flush();
      expect(out).toBe(text);
    }
  });

  it('flushes an incomplete character as U+FFFD', () => {
    const decoder = new IncrementalDecoder(tokenizer);
    const euro = tokenizer.encode('€', false);
    expect(decoder.push(euro[0])).toBe('');
    expect(decoder.push(euro[1])).toBe('');
    expect(decoder.flush()).toBe('\uFFFD');
  });
});

describe("ChatTemplate.contentFormat (vLLM's --chat-template-content-format auto)", () => {
  const format = (source: string) => new ChatTemplate(source, 'test').contentFormat;

  it("is openai where the template loops over a message's content, through aliases, slices and filters", () => {
    expect(format(SYNTHETIC_CHAT_TEMPLATE)).toBe('string');
    expect(
      format("{% for m in messages %}{% for c in m['content'] %}{{ c.text }}{% endfor %}{% endfor %}"),
    ).toBe('openai');
    expect(
      format(
        "{% set loop_messages = messages[1:] %}{% for m in loop_messages %}{% for p in m.content | selectattr('type', 'equalto', 'text') %}{{ p.text }}{% endfor %}{% endfor %}",
      ),
    ).toBe('openai');
    // Both shapes handled, the string one tested first: vLLM still picks openai (a loop exists).
    expect(
      format(
        '{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}{% endfor %}',
      ),
    ).toBe('openai');
    expect(format('{% for m in messages %}{{ m.content }}{% endfor %}')).toBe('string');
    // A loop over another variable's content is not a message's.
    expect(format('{% for t in tools %}{% for c in t.content %}{{ c }}{% endfor %}{% endfor %}')).toBe(
      'string',
    );
    expect(format('{% for c in messages[0].content %}{{ c }}{% endfor %}')).toBe('string');
  });
});
