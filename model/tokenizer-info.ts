/**
 * The tokenizer's configuration as vLLM's GET /tokenizer_info gives it: the keyword arguments
 * transformers built the tokenizer from (tokenizer_config.json, overridden by
 * special_tokens_map.json as `from_pretrained` merges them, plus the paths it resolved), with the
 * vocabulary file paths dropped, AddedToken objects written as their text, the tokenizer's class
 * and the chat template the server renders with. Clients use it to build the same tokenizer on
 * their side (grammar compilers, routers).
 */

/** The special-token arguments whose dict values transformers turns into AddedToken objects. */
const SPECIAL_TOKEN_KEYS = new Set([
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
  'additional_special_tokens',
]);

export interface TokenizerInfoSource {
  tokenizerConfig: Readonly<Record<string, unknown>>;
  specialTokensMap: Readonly<Record<string, unknown>>;
  /** The tokenizer folder as the server was given it (transformers' name_or_path). */
  nameOrPath: string;
  /** tokenizer.json's path (transformers' tokenizer_file). */
  tokenizerFile: string;
  /**
   * The chat template's text when it came from elsewhere than tokenizer_config.json
   * (--chat-template, chat_template.jinja); undefined keeps tokenizer_config.json's own value.
   */
  chatTemplateSource?: string;
}

/** The tokenizer's class, and every other argument it was built with. */
export type TokenizerInfo = { tokenizer_class: string } & Record<string, unknown>;

export function tokenizerInfo(source: TokenizerInfoSource): TokenizerInfo {
  // from_pretrained: special_tokens_map.json's values replace tokenizer_config.json's.
  const merged: Record<string, unknown> = {
    ...source.tokenizerConfig,
    ...source.specialTokensMap,
  };
  const info: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(merged)) {
    if (key === 'added_tokens_decoder' && isRecord(value)) {
      info[key] = Object.fromEntries(Object.entries(value).map(([id, token]) => [id, addedTokenText(token)]));
    } else if (SPECIAL_TOKEN_KEYS.has(key)) {
      info[key] = Array.isArray(value) ? value.map(addedTokenText) : addedTokenText(value);
    } else {
      info[key] = serializedAddedTokens(value);
    }
  }
  // vLLM drops the vocabulary files' paths; transformers' other resolved arguments stay.
  delete info.vocab_file;
  delete info.merges_file;
  info.name_or_path = source.nameOrPath;
  info.tokenizer_file = source.tokenizerFile;
  if (source.chatTemplateSource !== undefined) info.chat_template = source.chatTemplateSource;
  return { ...info, tokenizer_class: servedTokenizerClass(source.tokenizerConfig.tokenizer_class) };
}

/**
 * The Python class name vLLM reports: transformers loads the fast class of what
 * tokenizer_config.json names (Loom reads tokenizer.json, the fast tokenizer's file), and vLLM
 * wraps it in a subclass named `Cached<class>` (its get_cached_tokenizer).
 */
export function servedTokenizerClass(configured: unknown): string {
  // Without a tokenizer_class, what Loom reads (tokenizer.json alone) is a PreTrainedTokenizerFast.
  const base = typeof configured === 'string' && configured !== '' ? configured : 'PreTrainedTokenizerFast';
  return `Cached${base.endsWith('Fast') ? base : `${base}Fast`}`;
}

/** An AddedToken as JSON ({content, lstrip, …}) is its text. */
function addedTokenText(token: unknown): unknown {
  return isRecord(token) && typeof token.content === 'string' ? token.content : token;
}

/** Values saved with `"__type": "AddedToken"` were AddedToken objects: their text, at any depth. */
function serializedAddedTokens(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(serializedAddedTokens);
  if (!isRecord(value)) return value;
  if (value.__type === 'AddedToken' && typeof value.content === 'string') return value.content;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, serializedAddedTokens(v)]));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
