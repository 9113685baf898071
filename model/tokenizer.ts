import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { type ChatMessage, type ChatTemplate, ChatTemplateError, loadChatTemplate } from './chat-template.js';
import { cleanUpTokenization } from './clean-up-tokenization.js';
import { MAX_TOKENIZER_BYTES, readJsonObject } from './config-file.js';
import { ModelFormatError } from './model-format-error.js';
import { llamaPostProcessor, resolveSpecialTokens, type SpecialTokens } from './special-tokens.js';
import { tokenByteStrings, UnsupportedTokenizerError } from './token-bytes.js';
import { tokenCharOffsets } from './token-offsets.js';
import { type TokenizerInfo, tokenizerInfo } from './tokenizer-info.js';

export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json ({} when absent) */
  tokenizerConfig?: Record<string, unknown>;
  /** special_tokens_map.json ({} when absent) */
  specialTokensMap?: Record<string, unknown>;
  chatTemplate?: ChatTemplate | null;
  /** Named in errors about tokenizer_config.json's fields. */
  configFile?: string;
  /** The folder the files were read from (GET /tokenizer_info's name_or_path). */
  dir?: string;
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json + special_tokens_map.json)
 * with its chat template. Encoding follows the post-processor transformers would use, so BOS/EOS
 * come out exactly as HF's would; decoding applies HF's clean-up of spaces where
 * tokenizer_config.json asks for it (`clean_up_tokenization_spaces`, default false as in
 * transformers).
 */
export class TextTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: ChatTemplate | null;
  readonly specialTokens: SpecialTokens;
  /** Whether decode applies cleanUpTokenization (incremental decoders must do the same). */
  readonly cleansUpSpaces: boolean;
  readonly vocabSize: number;
  /**
   * UTF-16 units of the longest vocabulary entry. An entry is never shorter than the text it
   * stands for (byte-level BPE spells each byte as one character, SentencePiece each space as
   * "▁", byte-fallback entries "<0xE2>" stand for one byte), so a prompt of more characters
   * than maxModelLen × this is too long before it is tokenized. Infinite where no bound holds.
   */
  readonly longestTokenChars: number;
  /** The files it was built from: tokenizer.json's pieces for tokenBytes, the configs for tokenizerInfo. */
  private readonly files: TokenizerFiles;
  private byteStrings: ReadonlyArray<Uint8Array | null> | null = null;

  constructor(files: TokenizerFiles) {
    this.files = files;
    const tokenizerConfig = files.tokenizerConfig ?? {};
    const configFile = files.configFile ?? 'tokenizer_config.json';
    this.specialTokens = resolveSpecialTokens(
      files.tokenizerJson,
      tokenizerConfig,
      files.specialTokensMap ?? {},
    );
    const postProcessor = llamaPostProcessor(
      files.tokenizerJson,
      tokenizerConfig,
      this.specialTokens,
      configFile,
    );
    const cleanUp = tokenizerConfig.clean_up_tokenization_spaces ?? false;
    if (typeof cleanUp !== 'boolean') {
      throw new ModelFormatError(
        configFile,
        `"clean_up_tokenization_spaces" must be true or false, got ${JSON.stringify(cleanUp)}`,
      );
    }
    this.cleansUpSpaces = cleanUp;
    const tokenizerJson = postProcessor
      ? { ...files.tokenizerJson, post_processor: postProcessor }
      : files.tokenizerJson;
    // The library's own clean-up defaults to on; Loom applies HF's (default off) itself.
    this.tokenizer = new Tokenizer(tokenizerJson, {
      ...tokenizerConfig,
      clean_up_tokenization_spaces: false,
    });
    this.template = files.chatTemplate ?? null;
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

  /**
   * Loads tokenizer.json (required), tokenizer_config.json and special_tokens_map.json (optional)
   * and the chat template.
   */
  static async fromDir(dir: string, chatTemplateFile?: string): Promise<TextTokenizer> {
    const tokenizerFile = join(dir, 'tokenizer.json');
    const configFile = join(dir, 'tokenizer_config.json');
    const tokenizerJson = (await readJsonObject(tokenizerFile, {
      optional: false,
      maxBytes: MAX_TOKENIZER_BYTES,
    }))!;
    const tokenizerConfig = (await readJsonObject(configFile, { optional: true })) ?? {};
    const specialTokensMap =
      (await readJsonObject(join(dir, 'special_tokens_map.json'), { optional: true })) ?? {};
    const chatTemplate = await loadChatTemplate(dir, tokenizerConfig, chatTemplateFile);
    try {
      return new TextTokenizer({
        tokenizerJson,
        tokenizerConfig,
        specialTokensMap,
        chatTemplate,
        configFile,
        dir,
      });
    } catch (err) {
      if (err instanceof ModelFormatError) throw err;
      throw new ModelFormatError(tokenizerFile, `cannot build the tokenizer (${(err as Error).message})`);
    }
  }

  /**
   * The bytes each token adds to the text (null: a special token), for structured output
   * (model/token-bytes.ts); made on first use. Throws UnsupportedTokenizerError for a decoder
   * whose pieces are not bytes.
   */
  tokenBytes(): ReadonlyArray<Uint8Array | null> {
    this.byteStrings ??= tokenByteStrings(
      this.files.tokenizerJson,
      new Map(this.tokenizer.get_vocab(true)),
      this.vocabSize,
    );
    return this.byteStrings;
  }

  /**
   * This tokenizer with `template` as its chat template (a request's own, vLLM's trusted
   * chat_template): a view that shares everything else, the vocabulary most of all.
   */
  withChatTemplate(template: ChatTemplate): TextTokenizer {
    return Object.create(this, { template: { value: template } }) as TextTokenizer;
  }

  /** The configuration vLLM's GET /tokenizer_info answers with (model/tokenizer-info.ts). */
  tokenizerInfo(): TokenizerInfo {
    const dir = this.files.dir ?? '.';
    const configFile = this.files.configFile ?? 'tokenizer_config.json';
    // The chat template this tokenizer renders with, where tokenizer_config.json is not its source.
    const template = this.template && this.template.file !== configFile ? this.template.source : undefined;
    return tokenizerInfo({
      tokenizerConfig: this.files.tokenizerConfig ?? {},
      specialTokensMap: this.files.specialTokensMap ?? {},
      nameOrPath: dir,
      tokenizerFile: join(dir, 'tokenizer.json'),
      chatTemplateSource: template,
    });
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  chatTemplateContentFormat(withTools = false): 'string' | 'openai' {
    return this.template?.forTools(withTools).contentFormat ?? 'string';
  }

  chatTemplateReads(name: string, withTools = false): boolean {
    return this.template?.forTools(withTools).reads(name) ?? false;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /** Each id's vocabulary entry, as HF's convert_ids_to_tokens gives them ("▁Hello", "Ġworld", "<s>"). */
  idsToTokens(ids: readonly number[]): string[] {
    return ids.map((id) => this.tokenizer.id_to_token(id) ?? '');
  }

  /**
   * Each token's span of `text` in characters, as HF's encode_char_offsets gives it, for `ids`
   * encoded from `text` (model/token-offsets.ts); null where the normalizer rewrote the text or
   * the decoder's pieces are not bytes.
   */
  charOffsets(text: string, ids: readonly number[]): Array<[number, number]> | null {
    let bytes: ReadonlyArray<Uint8Array | null>;
    try {
      bytes = this.tokenBytes();
    } catch (error) {
      // A decoder whose pieces are not bytes: no token can be placed in the text.
      if (error instanceof UnsupportedTokenizerError) return null;
      throw error;
    }
    return tokenCharOffsets(text, ids, bytes, (id) => this.tokenizer.id_to_token(id));
  }

  /** Text of `ids` as HF's `decode` gives it, clean-up of spaces included. */
  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const raw = this.decodeRaw(ids, skipSpecialTokens);
    return this.cleansUpSpaces ? cleanUpTokenization(raw) : raw;
  }

  /** Text of `ids` before the clean-up of spaces: what incremental decoders difference. */
  decodeRaw(ids: readonly number[], skipSpecialTokens = true): string {
    // The library throws on an empty list; an empty list is simply no text.
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: false,
    });
  }

  /**
   * Renders messages with the chat template, with HF's variables (messages, specials,
   * add_generation_prompt, tools) and `extra` ones (a request's chat_template_kwargs), which cannot
   * replace the first three.
   */
  applyChatTemplate(
    messages: ChatMessage[],
    addGenerationPrompt = true,
    extra: Readonly<Record<string, unknown>> = {},
    tools: readonly unknown[] | null = null,
  ): string {
    if (!this.template) throw new ChatTemplateError('this model has no chat template');
    return this.template.forTools(tools !== null).render({
      // HF passes tools=None when there are none; chat_template_kwargs may set it, as in vLLM.
      tools,
      ...extra,
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...this.specialTokens,
    });
  }

  /**
   * Token ids of a chat prompt, as HF's apply_chat_template(tokenize=True) makes them: the
   * rendered text encoded without added specials, since templates write BOS text themselves.
   */
  encodeChat(messages: ChatMessage[], addGenerationPrompt = true): number[] {
    return this.encode(this.applyChatTemplate(messages, addGenerationPrompt), false);
  }
}
