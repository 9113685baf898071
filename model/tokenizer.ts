import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { fileExists } from './file-exists.js';
import { ModelFormatError } from './model-format-error.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** A chat request the template refuses (its `raise_exception`, or a render error): a client error. */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

async function readJson(file: string, optional: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ModelFormatError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelFormatError(file, 'is not a JSON object');
  }
  return value as Record<string, unknown>;
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** `chat_template` is a string, or a list of named templates of which "default" is the chat one. */
function pickTemplate(file: string, raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    const named = raw.find((t) => t && typeof t === 'object' && t.name === 'default');
    if (named && typeof named.template === 'string') return named.template;
    throw new ModelFormatError(file, 'chat_template is a list without a "default" template');
  }
  throw new ModelFormatError(file, 'chat_template is neither a string nor a list of {name, template}');
}

/** Where a chat template comes from, in priority order: --chat-template, tokenizer_config, .jinja file. */
async function loadTemplateSource(
  dir: string,
  config: Record<string, unknown>,
  chatTemplateFile?: string,
): Promise<{ file: string; source: string } | null> {
  if (chatTemplateFile) {
    try {
      return { file: chatTemplateFile, source: await readFile(chatTemplateFile, 'utf8') };
    } catch (err) {
      throw new ModelFormatError(chatTemplateFile, `cannot read: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  const configFile = join(dir, 'tokenizer_config.json');
  const fromConfig = pickTemplate(configFile, config.chat_template);
  if (fromConfig !== null) return { file: configFile, source: fromConfig };
  // Recent transformers versions save the template beside the config instead of inside it.
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (await fileExists(jinjaFile)) return { file: jinjaFile, source: await readFile(jinjaFile, 'utf8') };
  return null;
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) with its chat template.
 * Encoding follows the tokenizer's own post-processor, so BOS/EOS come out exactly as HF's would.
 */
export class TextTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template | null;
  private readonly specialTokens: Record<string, string>;
  readonly vocabSize: number;
  /**
   * UTF-16 units of the longest vocabulary entry. An entry is never shorter than the text it
   * stands for (byte-level BPE spells each byte as one character, SentencePiece each space as
   * "▁", byte-fallback entries "<0xE2>" stand for one byte), so a prompt of more characters
   * than maxModelLen × this is too long before it is tokenized. Infinite where no bound holds.
   */
  readonly longestTokenChars: number;

  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown> = {},
    chatTemplate: string | null = null,
  ) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.template = chatTemplate === null ? null : new Template(chatTemplate);
    this.specialTokens = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const text = tokenText(tokenizerConfig[key]);
      if (text !== undefined) this.specialTokens[key] = text;
    }
    let maxId = -1;
    let longest = 1;
    for (const [piece, id] of this.tokenizer.get_vocab(true)) {
      maxId = Math.max(maxId, id);
      longest = Math.max(longest, piece.length);
    }
    this.vocabSize = maxId + 1;
    // A BPE that fuses unknown characters without byte fallback turns any run of them into one
    // token: no bound on characters per token holds then.
    const model = (tokenizerJson.model ?? {}) as { fuse_unk?: boolean; byte_fallback?: boolean };
    this.longestTokenChars = model.fuse_unk && !model.byte_fallback ? Number.POSITIVE_INFINITY : longest;
  }

  /** Loads tokenizer.json (required), tokenizer_config.json (optional) and the chat template. */
  static async fromDir(dir: string, chatTemplateFile?: string): Promise<TextTokenizer> {
    const tokenizerFile = join(dir, 'tokenizer.json');
    const tokenizerJson = (await readJson(tokenizerFile, false))!;
    const config = (await readJson(join(dir, 'tokenizer_config.json'), true)) ?? {};
    const template = await loadTemplateSource(dir, config, chatTemplateFile);
    if (template) {
      try {
        new Template(template.source);
      } catch (err) {
        throw new ModelFormatError(template.file, `chat template does not parse (${(err as Error).message})`);
      }
    }
    try {
      return new TextTokenizer(tokenizerJson, config, template?.source ?? null);
    } catch (err) {
      throw new ModelFormatError(tokenizerFile, `cannot build the tokenizer (${(err as Error).message})`);
    }
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    // The library throws on an empty list; an empty list is simply no text.
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  /** Renders messages with the chat template, with HF's variables (messages, specials, add_generation_prompt). */
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (!this.template) throw new ChatTemplateError('this model has no chat template');
    try {
      return this.template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        ...this.specialTokens,
      });
    } catch (err) {
      throw new ChatTemplateError((err as Error).message);
    }
  }

  /**
   * Token ids of a chat prompt, as HF's apply_chat_template(tokenize=True) makes them: the
   * rendered text encoded without added specials, since templates write BOS text themselves.
   */
  encodeChat(messages: ChatMessage[], addGenerationPrompt = true): number[] {
    return this.encode(this.applyChatTemplate(messages, addGenerationPrompt), false);
  }
}
