import type { SamplingParams } from '../scheduler/request.js';
import type { Grammar } from '../structured/grammar-nodes.js';
import { ReasoningGatedGuide } from '../structured/reasoning-gate.js';
import type { Guide, TokenGuide } from '../structured/token-guide.js';
import { resolveAdapterSource } from './adapter-source.js';
import { echoed, invalidRequest, modelNotFound, notSupported } from './api-error.js';
import { UNSUPPORTED_FIELDS } from './schemas/sampling-fields.js';
import { namesBaseModel, type ServingStack, type ServingTokenizer } from './serving-stack.js';
import { type StructuredOutputFields, structuredOutputGuide } from './structured-output.js';

/** The sampling fields both OpenAI routes accept (server/schemas/sampling-fields.ts). */
export interface SamplingBody extends StructuredOutputFields {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null;
  return_tokens_as_token_ids?: boolean | null;
  return_token_ids?: boolean | null;
  ignore_eos?: boolean | null;
  stop_token_ids?: number[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  min_tokens?: number | null;
  min_p?: number | null;
  allowed_token_ids?: number[] | null;
  bad_words?: string[] | null;
  truncate_prompt_tokens?: number | null;
  include_stop_str_in_output?: boolean | null;
  skip_special_tokens?: boolean | null;
  /** Changes nothing with tokenizer.json tokenizers, as in vLLM (schemas/sampling-fields.ts). */
  spaces_between_special_tokens?: boolean | null;
  prompt_logprobs?: number | null;
  priority?: number | null;
  cache_salt?: string | null;
  use_beam_search?: boolean | null;
  length_penalty?: number | null;
  thinking_token_budget?: number | null;
  /** vLLM's: the response's id is made from it (X-Request-Id overrides it, server/request-id.ts). */
  request_id?: string | null;
  /** LoRAX's OpenAI extensions: where `model` (an adapter) comes from, LoRAX's ignore_eos, a hub token (refused). */
  adapter_source?: string | null;
  ignore_eos_token?: boolean | null;
  api_token?: string | null;
}

/**
 * The request's `model`: null for the base model, else a registered adapter's name (one found in
 * --lora-dir is registered now); unknown → 404.
 */
export async function resolveAdapter(
  stack: ServingStack,
  model: string,
  /** LoRAX's adapter_source for `model` (server/adapter-source.ts); absent: a registered name. */
  source?: string | null,
): Promise<string | null> {
  if (namesBaseModel(stack, model)) return null;
  if (source != null)
    return resolveAdapterSource(stack, model, source, { id: 'model', source: 'adapter_source' });
  if (await stack.scheduler.adapters.resolve(model)) return model;
  throw modelNotFound(model);
}

/** vLLM's request priority: any integer under --scheduling-policy priority, else only 0 (vLLM's check). */
export function requestPriority(stack: ServingStack, body: SamplingBody): number {
  const priority = body.priority ?? 0;
  if (priority !== 0 && stack.schedulingPolicy !== 'priority')
    throw invalidRequest(`Got priority ${priority} but Priority scheduling is not enabled.`, 'priority');
  return priority;
}

/** vLLM's cache_salt: a non-empty string (vLLM's check and words), or none. */
export function cacheSalt(body: SamplingBody): string | undefined {
  const salt = body.cache_salt;
  if (salt === undefined || salt === null) return undefined;
  if (salt === '')
    throw invalidRequest("Parameter 'cache_salt' must be a non-empty string if provided.", 'cache_salt');
  return salt;
}

/**
 * vLLM's truncate_prompt_tokens: the prompt's last k tokens (all of them when it has no more), k
 * = max_model_len for -1; 0 and a k past max_model_len are a 400 as in vLLM.
 */
export function truncatePrompt(
  tokens: number[],
  k: number | null | undefined,
  maxModelLen: number,
): number[] {
  if (k == null) return tokens;
  const keep = k === -1 ? maxModelLen : k;
  if (keep < 1)
    throw invalidRequest('truncate_prompt_tokens must be -1 or at least 1.', 'truncate_prompt_tokens');
  if (keep > maxModelLen)
    throw invalidRequest(
      `truncate_prompt_tokens value (${keep}) is greater than max_model_len (${maxModelLen}). Please, select a smaller truncation size.`,
      'truncate_prompt_tokens',
    );
  return tokens.length > keep ? tokens.slice(tokens.length - keep) : tokens;
}

/** Token ids a client sent must exist in the vocabulary, or the engine would read past the embeddings. */
export function checkTokenIds(ids: readonly number[], vocabSize: number, param: string): void {
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined)
    throw invalidRequest(`Token id ${bad} is out of vocabulary (vocab size ${vocabSize}).`, param);
}

export interface SamplingContext {
  numPromptTokens: number;
  /** max_tokens, or chat's max_completion_tokens; null when the client left it out. */
  requestedMaxTokens: number | null;
  /** Used when the client gave no max_tokens; null means the rest of the context. */
  defaultMaxTokens: number | null;
  /** --max-n: the most choices one request may ask for. */
  maxN: number;
  /** A grammar the route's own fields ask for (chat's tool_choice), beside structured output's. */
  guide?: { param: string; grammar: () => Grammar } | null;
  /** --reasoning-parser: the text that ends the reasoning, after which the grammar applies. */
  guideAfter?: string | null;
}

/**
 * Checks the parts of a request that depend on the served model (lengths, n) and on each
 * other, and turns the OpenAI fields into the scheduler's SamplingParams. Messages follow
 * vLLM's so clients that parse them keep working.
 */
export function samplingParams(
  stack: ServingStack,
  body: SamplingBody,
  ctx: SamplingContext,
): SamplingParams {
  const { maxModelLen } = stack;
  const promptLen = ctx.numPromptTokens;
  if (promptLen === 0) throw invalidRequest('The prompt is empty.', 'prompt');
  if (promptLen >= maxModelLen) {
    throw invalidRequest(
      `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptLen} input tokens. Please reduce the length of the input.`,
      'prompt',
      'context_length_exceeded',
    );
  }
  const room = maxModelLen - promptLen;
  const defaults = stack.samplingDefaults ?? {};
  const asked = ctx.requestedMaxTokens ?? Math.min(ctx.defaultMaxTokens ?? room, room);
  if (promptLen + asked > maxModelLen) {
    throw invalidRequest(
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${promptLen + asked} tokens (${promptLen} in the prompt, ${asked} in the completion). Please reduce the length of the prompt or completion.`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  // The model's max_new_tokens caps what a request asks too, as vLLM's get_max_tokens does.
  const maxTokens = Math.min(asked, defaults.maxTokens ?? asked);
  const n = body.n ?? 1;
  // Each bound is one the request could never get past by waiting, so 400, not 503.
  const nLimits: Array<[number, string]> = [
    [ctx.maxN, '--max-n'],
    [stack.maxNumSeqs, '--max-num-seqs'],
    [stack.maxWaiting, 'waiting-queue limit'],
  ];
  for (const [limit, what] of nLimits)
    if (n > limit) throw invalidRequest(`n must be at most ${limit} (the server's ${what}), got ${n}.`, 'n');
  if (body.stream_options && !body.stream)
    throw invalidRequest('stream_options is only allowed when stream is true.', 'stream_options');
  for (const [name, field] of Object.entries(UNSUPPORTED_FIELDS)) {
    const value = (body as unknown as Record<string, unknown>)[name];
    if (value != null && !field.isDefault(value)) throw notSupported(name, field.what);
  }
  if (body.api_token != null)
    throw notSupported(
      'api_token',
      'api_token (Loom downloads no adapters, so there is nothing to authorize)',
    );
  if (body.ignore_eos != null && body.ignore_eos_token != null && body.ignore_eos !== body.ignore_eos_token)
    throw invalidRequest(
      'ignore_eos and ignore_eos_token (LoRAX’s name for it) disagree.',
      'ignore_eos_token',
    );
  const stopTokenIds = body.stop_token_ids ?? [];
  checkTokenIds(stopTokenIds, stack.tokenizer.vocabSize, 'stop_token_ids');
  const stop = body.stop ?? [];
  const topK = body.top_k ?? defaults.topK ?? 0;
  const allowed = body.allowed_token_ids ?? null;
  if (allowed?.length === 0)
    throw invalidRequest('allowed_token_ids must not be empty.', 'allowed_token_ids');
  if (allowed) checkTokenIds(allowed, stack.tokenizer.vocabSize, 'allowed_token_ids');
  const minTokens = body.min_tokens ?? 0;
  if (minTokens > maxTokens)
    throw invalidRequest(
      `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`,
      'min_tokens',
    );
  return {
    maxTokens,
    temperature: body.temperature ?? defaults.temperature ?? 1,
    topP: body.top_p ?? defaults.topP ?? 1,
    topK: Math.max(topK, 0),
    seed: body.seed ?? null,
    stop: typeof stop === 'string' ? [stop] : stop,
    includeStopStrInOutput: body.include_stop_str_in_output ?? false,
    skipSpecialTokens: body.skip_special_tokens ?? true,
    stopTokenIds,
    ignoreEos: body.ignore_eos ?? body.ignore_eos_token ?? false,
    n,
    minP: body.min_p ?? defaults.minP ?? 0,
    logitEdits: {
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      repetitionPenalty: body.repetition_penalty ?? defaults.repetitionPenalty ?? 1,
      logitBias: logitBias(body.logit_bias ?? {}, stack.tokenizer.vocabSize),
      minTokens,
      allowedTokenIds: allowed,
      badWords: badWordTokens(stack, body.bad_words ?? []),
      guide: gatedGuide(
        structuredOutputGuide(body, stack.tokenizer, ctx.guide ?? null),
        ctx.guideAfter ?? null,
        body.thinking_token_budget ?? -1,
        stack.tokenizer,
      ),
    },
  };
}

/**
 * The guide, applying only after `after` when a reasoning model writes its reasoning first, and
 * the reasoning ended after `budget` tokens (vLLM's thinking_token_budget; -1: none).
 */
function gatedGuide(
  guide: TokenGuide | null,
  after: string | null,
  budget: number,
  tokenizer: ServingTokenizer,
): Guide | null {
  if (after === null) {
    if (budget !== -1)
      throw invalidRequest(
        'thinking_token_budget needs a reasoning model: the server has no --reasoning-parser (and completions are not read as reasoning).',
        'thinking_token_budget',
      );
    return guide;
  }
  if (!guide && budget === -1) return null;
  const bytes = tokenizer.tokenBytes();
  return new ReasoningGatedGuide({
    marker: new TextEncoder().encode(after),
    bytesOf: (id) => bytes[id] ?? null,
    inner: guide,
    budget: budget === -1 ? null : budget,
    markerTokens: tokenizer.encode(after, false),
  });
}

/**
 * bad_words as token sequences, as vLLM's SamplingParams makes them: each word (leading spaces
 * dropped) encoded without special tokens, and again after one space where that spells it with
 * other tokens of the same count (the word in the middle of a text).
 */
function badWordTokens(stack: ServingStack, words: readonly string[]): number[][] {
  const sequences: number[][] = [];
  for (const word of words) {
    const bare = stack.tokenizer.encode(word.trimStart(), false);
    if (bare.length === 0)
      throw invalidRequest(`bad_words entry "${echoed(word)}" has no tokens.`, 'bad_words');
    sequences.push(bare);
    const spaced = stack.tokenizer.encode(` ${word.trimStart()}`, false);
    if (spaced.length === bare.length && spaced[0] !== bare[0]) sequences.push(spaced);
  }
  return sequences;
}

/** Largest |bias|: OpenAI's documented range, to which vLLM clamps what is sent. */
const MAX_LOGIT_BIAS = 100;

/** logit_bias's keys as token ids (JSON keys are strings), its values clamped to ±100 as vLLM does. */
function logitBias(body: Record<string, number>, vocabSize: number): Map<number, number> {
  const bias = new Map<number, number>();
  for (const [key, value] of Object.entries(body)) {
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(Number(key)))
      throw invalidRequest(
        `Found token_id \`${key}\` in logit_bias but token_id must be an integer or string representing an integer.`,
        'logit_bias',
      );
    bias.set(Number(key), Math.min(MAX_LOGIT_BIAS, Math.max(-MAX_LOGIT_BIAS, value)));
  }
  const outside = [...bias.keys()].filter((id) => id >= vocabSize);
  if (outside.length > 0)
    throw invalidRequest(
      `token_id(s) ${outside.join(', ')} in logit_bias are out of vocabulary (vocab size ${vocabSize}).`,
      'logit_bias',
    );
  return bias;
}

/**
 * Fields beam search has no place for, each with its values that ask for nothing. vLLM's beam
 * search ranks beams by raw logprobs and drops these silently; Loom refuses them by name.
 */
const NOT_WITH_BEAM_SEARCH: Array<[keyof SamplingBody, (value: unknown) => boolean]> = [
  ['top_p', (v) => v === 1],
  ['top_k', (v) => v === 0 || v === -1],
  ['min_p', (v) => v === 0],
  ['presence_penalty', (v) => v === 0],
  ['frequency_penalty', (v) => v === 0],
  ['repetition_penalty', (v) => v === 1],
  ['logit_bias', (v) => Object.keys(v as object).length === 0],
  ['allowed_token_ids', () => false],
  ['bad_words', (v) => (v as unknown[]).length === 0],
  ['stop', (v) => Array.isArray(v) && v.length === 0],
];

/** The fields that can ask for structured output, to name the one a refusal is about. */
const STRUCTURED_OUTPUT_FIELDS = [
  'response_format',
  'structured_outputs',
  'guided_json',
  'guided_regex',
  'guided_grammar',
  'guided_choice',
] as const;

/**
 * vLLM's `use_beam_search` (server/beam-search.ts): null without it, where a length_penalty other
 * than 1 is refused (it would change nothing); with it, the n beams' options, refusing what the
 * search cannot honour: an n past half of --max-logprobs (each round asks 2·n top tokens, as
 * vLLM does; -1: no cap) and the sampling fields in NOT_WITH_BEAM_SEARCH or asking for
 * structured output.
 */
export function beamSearchOptions(
  body: SamplingBody,
  sampling: SamplingParams,
  maxLogprobs: number,
): { lengthPenalty: number } | null {
  const lengthPenalty = body.length_penalty ?? 1;
  if (body.use_beam_search && (body.thinking_token_budget ?? -1) !== -1)
    throw notSupported('thinking_token_budget', 'thinking_token_budget with use_beam_search');
  if (!body.use_beam_search) {
    if (lengthPenalty !== 1)
      throw notSupported('length_penalty', 'A length_penalty other than 1 without use_beam_search');
    return null;
  }
  const maxWidth = Math.floor(maxLogprobs / 2);
  if (maxLogprobs !== -1 && sampling.n > maxWidth)
    throw invalidRequest(
      `With use_beam_search, n (the beam width) must be at most ${maxWidth}: each round asks for 2·n top log-probabilities, at most ${maxLogprobs} (--max-logprobs); got ${sampling.n}.`,
      'n',
    );
  for (const [field, asksNothing] of NOT_WITH_BEAM_SEARCH) {
    const value = body[field];
    if (value != null && !asksNothing(value)) throw notSupported(field, `${field} with use_beam_search`);
  }
  if (sampling.logitEdits?.guide) {
    const field = STRUCTURED_OUTPUT_FIELDS.find((f) =>
      f === 'response_format'
        ? body.response_format?.type !== undefined && body.response_format.type !== 'text'
        : body[f] != null,
    );
    if (!field) throw notSupported('tool_choice', 'Tool calls with use_beam_search');
    throw notSupported(field, 'Structured output with use_beam_search');
  }
  return { lengthPenalty };
}
