import { ModelFormatError } from './model-format-error.js';

export const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];
export type SpecialTokens = Partial<Record<SpecialTokenKey, string>>;

/**
 * transformers' Llama tokenizer classes: their constructors default bos/eos/unk to `<s>`, `</s>`,
 * `<unk>` and rebuild tokenizer.json's post-processor from `add_bos_token` (default true) and
 * `add_eos_token` (default false). Other classes (Llama 3's PreTrainedTokenizerFast) keep
 * tokenizer.json's post-processor and have no default special tokens.
 */
const LLAMA_TOKENIZER_CLASSES = new Set([
  'LlamaTokenizer',
  'LlamaTokenizerFast',
  'CodeLlamaTokenizer',
  'CodeLlamaTokenizerFast',
]);
const LLAMA_CLASS_DEFAULTS: SpecialTokens = { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' };

export function isLlamaTokenizerClass(tokenizerConfig: Record<string, unknown>): boolean {
  return (
    typeof tokenizerConfig.tokenizer_class === 'string' &&
    LLAMA_TOKENIZER_CLASSES.has(tokenizerConfig.tokenizer_class)
  );
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** The id tokenizer.json gives a token's text (added tokens first, then the model's vocabulary). */
export function tokenIdIn(tokenizerJson: Record<string, unknown>, content: string): number | undefined {
  const added = tokenizerJson.added_tokens;
  if (Array.isArray(added)) {
    const hit = added.find((t) => t && typeof t === 'object' && t.content === content);
    if (hit && typeof hit.id === 'number') return hit.id;
  }
  const vocab = (tokenizerJson.model as { vocab?: unknown } | null | undefined)?.vocab;
  if (Array.isArray(vocab)) {
    const index = vocab.findIndex((entry) => Array.isArray(entry) && entry[0] === content);
    return index < 0 ? undefined : index;
  }
  if (vocab && typeof vocab === 'object') {
    const id = (vocab as Record<string, unknown>)[content];
    return typeof id === 'number' ? id : undefined;
  }
  return undefined;
}

/**
 * BOS and EOS as tokenizer.json's own TemplateProcessing post-processor adds them: the special
 * token it puts before a text, and the one it puts after.
 */
function postProcessorSpecials(tokenizerJson: Record<string, unknown>): SpecialTokens {
  const processor = tokenizerJson.post_processor as { type?: unknown; single?: unknown } | null | undefined;
  if (processor?.type !== 'TemplateProcessing' || !Array.isArray(processor.single)) return {};
  const single = processor.single as Array<{ SpecialToken?: { id?: unknown } }>;
  const special = (item: { SpecialToken?: { id?: unknown } } | undefined) =>
    typeof item?.SpecialToken?.id === 'string' ? item.SpecialToken.id : undefined;
  const out: SpecialTokens = {};
  const bos = special(single[0]);
  const eos = single.length > 1 ? special(single[single.length - 1]) : undefined;
  if (bos !== undefined) out.bos_token = bos;
  if (eos !== undefined) out.eos_token = eos;
  return out;
}

/**
 * The special tokens a chat template sees: tokenizer_config.json, then special_tokens_map.json
 * (many Mistral repositories name them only there), then the Llama tokenizer classes' defaults
 * where tokenizer.json holds that token, then what tokenizer.json's post-processor adds.
 */
export function resolveSpecialTokens(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  specialTokensMap: Record<string, unknown>,
): SpecialTokens {
  const out: SpecialTokens = {};
  const classDefaults = isLlamaTokenizerClass(tokenizerConfig) ? LLAMA_CLASS_DEFAULTS : {};
  const added = postProcessorSpecials(tokenizerJson);
  for (const key of SPECIAL_TOKEN_KEYS) {
    const fromFiles = tokenText(tokenizerConfig[key]) ?? tokenText(specialTokensMap[key]);
    const classDefault = classDefaults[key];
    const text =
      fromFiles ??
      (classDefault !== undefined && tokenIdIn(tokenizerJson, classDefault) !== undefined
        ? classDefault
        : added[key]);
    if (text !== undefined) out[key] = text;
  }
  return out;
}

function optionalFlag(
  config: Record<string, unknown>,
  key: string,
  fallback: boolean,
  file: string,
): boolean {
  const value = config[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') {
    throw new ModelFormatError(file, `"${key}" must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * For the Llama tokenizer classes, the post-processor transformers' LlamaTokenizerFast builds
 * (`update_post_processor`): `[bos] $A [eos]` for one text, `[bos] $A [eos] [bos] $B [eos]` for a
 * pair, each special only where its add_*_token flag is on. Null for other classes.
 */
export function llamaPostProcessor(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  specials: SpecialTokens,
  configFile: string,
): Record<string, unknown> | null {
  if (!isLlamaTokenizerClass(tokenizerConfig)) {
    checkFlagsMatchPostProcessor(tokenizerJson, tokenizerConfig, configFile);
    return null;
  }
  const addBos = optionalFlag(tokenizerConfig, 'add_bos_token', true, configFile);
  const addEos = optionalFlag(tokenizerConfig, 'add_eos_token', false, configFile);
  const specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  const piece = (key: 'bos_token' | 'eos_token', flag: string, typeId: number) => {
    const text = specials[key];
    if (text === undefined) throw new ModelFormatError(configFile, `${flag} is true but no ${key} is set`);
    const id = tokenIdIn(tokenizerJson, text);
    if (id === undefined) {
      throw new ModelFormatError(configFile, `${flag} is true but ${key} "${text}" is not in tokenizer.json`);
    }
    specialTokens[text] = { id: text, ids: [id], tokens: [text] };
    return { SpecialToken: { id: text, type_id: typeId } };
  };
  const sequence = (id: 'A' | 'B', typeId: number) => {
    const out: Record<string, unknown>[] = [];
    if (addBos) out.push(piece('bos_token', 'add_bos_token', typeId));
    out.push({ Sequence: { id, type_id: typeId } });
    if (addEos) out.push(piece('eos_token', 'add_eos_token', typeId));
    return out;
  };
  const single = sequence('A', 0);
  return {
    type: 'TemplateProcessing',
    single,
    pair: [...single, ...sequence('B', 1)],
    special_tokens: specialTokens,
  };
}

/**
 * Other tokenizer classes keep tokenizer.json's post-processor in transformers 4 but rebuild it
 * from explicit add_bos_token/add_eos_token in transformers 5. Where the two would differ, the
 * files are ambiguous: refuse rather than pick one silently.
 */
function checkFlagsMatchPostProcessor(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  configFile: string,
): void {
  const processor = tokenizerJson.post_processor as { type?: unknown; single?: unknown } | null | undefined;
  if (processor?.type !== 'TemplateProcessing' || !Array.isArray(processor.single)) return;
  const single = processor.single as Array<Record<string, unknown>>;
  const observed = {
    add_bos_token: single.length > 0 && 'SpecialToken' in single[0],
    add_eos_token: single.length > 1 && 'SpecialToken' in single[single.length - 1],
  };
  for (const key of ['add_bos_token', 'add_eos_token'] as const) {
    const value = tokenizerConfig[key];
    if (value === undefined || value === null) continue;
    const wanted = optionalFlag(tokenizerConfig, key, false, configFile);
    if (wanted !== observed[key]) {
      throw new ModelFormatError(
        configFile,
        `"${key}" is ${wanted} but tokenizer.json's post-processor ${observed[key] ? 'adds' : 'does not add'} that token (transformers versions disagree on which wins; make them agree)`,
      );
    }
  }
}
