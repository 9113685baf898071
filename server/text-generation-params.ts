import { randomInt } from 'node:crypto';
import { NO_LOGIT_EDITS } from '../scheduler/logit-edits.js';
import type { SamplingParams } from '../scheduler/request.js';
import { DEFAULT_WATERMARK } from '../scheduler/watermark.js';
import { resolveAdapterSource } from './adapter-source.js';
import { echoed, invalidRequest, notSupported } from './api-error.js';
import { chatPromptTokens } from './chat-prompt.js';
import { checkNumTop } from './logprobs.js';
import { mergedAdapter } from './merged-adapters.js';
import { checkPromptChars } from './request-limits.js';
import { type SamplingBody, samplingParams } from './sampling-params.js';
import type { GenerateParameters, GenerateRequest } from './schemas/generate-request.js';
import type { ServerState } from './server-state.js';
import { namesBaseModel, type ServingStack } from './serving-stack.js';

/** LoRAX's adapter id for the base model (an empty or absent adapter_id means it too). */
export const BASE_MODEL_ADAPTER_ID = '__base_model__';

/**
 * The schema LoRAX constrains a json_object response to when it names none: an object whose
 * values are anything but arrays.
 */
const LORAX_DEFAULT_SCHEMA = {
  additionalProperties: { type: ['object', 'string', 'integer', 'number', 'boolean', 'null'] },
  title: 'ArbitraryJsonModel',
  type: 'object',
};

/** Seeds Loom draws for sampled requests that gave none, so details can report the one used (as LoRAX does). */
const MAX_DRAWN_SEED = 2 ** 48 - 1;

/** A LoRAX request read: what runs, and what its answer reports. */
export interface TextGenerationRun {
  /** The registered adapter it runs on, or null for the base model. */
  adapter: string | null;
  /** LoRAX's x-adapter-source header: where the adapter came from; null for the base model. */
  adapterSource: string | null;
  /** LoRAX's x-adapter-id header: the adapter id, or the merged ones joined by commas. */
  adapterLabel: string | null;
  tokens: number[];
  sampling: SamplingParams;
  /** best_of: choices generated, the one of highest mean token log-probability answered. */
  bestOf: number;
  /** The seed reported in details: the one sampling used, null when greedy (or best_of > 1). */
  seed: number | null;
  /** Top tokens listed beside each generated one: LoRAX's alternative_tokens, TGI's top_tokens. */
  alternatives: number;
  topTokens: number;
}

/**
 * LoRAX's adapter fields → the registered adapter (server/adapter-source.ts): none for an empty
 * id, __base_model__ or the served name; merged_adapters' merge (server/merged-adapters.ts);
 * api_token refused by name.
 */
async function resolveLoraxAdapter(
  stack: ServingStack,
  p: GenerateParameters,
): Promise<{ adapter: string | null; source: string | null; label: string | null }> {
  const source = p.adapter_source ?? 'hub';
  if (p.merged_adapters != null) {
    if (p.adapter_id)
      throw invalidRequest('Give at most one of adapter_id and merged_adapters.', 'merged_adapters');
    const adapter = await mergedAdapter(stack, p.merged_adapters, source);
    return { adapter, source, label: p.merged_adapters.ids.join(',') };
  }
  if (p.api_token != null)
    throw notSupported(
      'api_token',
      'api_token (Loom downloads no adapters, so there is nothing to authorize)',
    );
  const id = p.adapter_id ?? '';
  if (id === '' || id === BASE_MODEL_ADAPTER_ID || namesBaseModel(stack, id))
    return { adapter: null, source: null, label: null };
  const adapter = await resolveAdapterSource(stack, id, source, {
    id: 'adapter_id',
    source: 'adapter_source',
  });
  return { adapter, source, label: id };
}

/**
 * The prompt's tokens: `inputs` as text (the tokenizer's BOS added), or, with
 * apply_chat_template, as the one user message of a chat; then its last `truncate` tokens.
 */
function promptTokens(stack: ServingStack, body: GenerateRequest, p: GenerateParameters): number[] {
  if (body.inputs.length === 0) throw invalidRequest('`inputs` cannot be empty.', 'inputs');
  checkPromptChars(stack, body.inputs.length, 'inputs');
  const tokens = p.apply_chat_template
    ? chatPromptTokens(stack, stack.modelName, [{ role: 'user', content: body.inputs }])
    : stack.tokenizer.encode(body.inputs, true);
  const maxInput = stack.maxModelLen - 1;
  if (p.truncate != null) {
    if (p.truncate > maxInput)
      throw invalidRequest(
        `\`truncate\` must be strictly positive and less than ${stack.maxModelLen}. Given: ${p.truncate}.`,
        'truncate',
      );
    return tokens.length > p.truncate ? tokens.slice(tokens.length - p.truncate) : tokens;
  }
  return tokens;
}

/**
 * Whether the request samples, as LoRAX's server decides: do_sample, or any warper that changes
 * the distribution (a temperature other than 0 and 1, top_k, top_p below 1, typical_p); temperature 0 is
 * greedy even with do_sample.
 */
function samples(p: GenerateParameters): boolean {
  const warps =
    (p.temperature != null && p.temperature !== 1 && p.temperature !== 0) ||
    p.top_k != null ||
    (p.top_p != null && p.top_p < 1) ||
    p.typical_p != null;
  return (p.do_sample === true || warps) && p.temperature !== 0;
}

/** TGI's grammar or LoRAX's response_format as Loom's structured-output fields (one of them). */
function structuredOutput(p: GenerateParameters): Pick<SamplingBody, 'guided_json' | 'guided_regex'> {
  if (p.grammar != null && p.response_format != null)
    throw invalidRequest('Give grammar or response_format, not both.', 'grammar');
  const grammar = p.grammar;
  if (grammar) {
    if (grammar.type === 'json' || grammar.type === 'json_object') return { guided_json: grammar.value };
    if (grammar.type === 'regex') {
      if (typeof grammar.value !== 'string')
        throw invalidRequest('A regex grammar needs its expression as a string value.', 'grammar.value');
      return { guided_regex: grammar.value };
    }
    throw invalidRequest(
      `grammar.type must be json, json_object or regex; got ${echoed(grammar.type)}.`,
      'grammar.type',
    );
  }
  const format = p.response_format;
  if (!format || format.type === 'text') return {};
  if (format.type === 'json_object' || format.type === 'json_schema')
    return { guided_json: format.schema ?? LORAX_DEFAULT_SCHEMA };
  throw invalidRequest(
    `response_format.type must be json_object, json_schema or text; got ${echoed(format.type)}.`,
    'response_format.type',
  );
}

/**
 * Reads a LoRAX /generate request: its adapter, prompt and sampling, with LoRAX's rules and
 * words where it has them (lengths, best_of, seed). `streams`: the tokens go out one by one
 * (each with its log-probability, as LoRAX's stream sends them).
 */
export async function readTextGeneration(
  state: ServerState,
  stack: ServingStack,
  body: GenerateRequest,
  streams: boolean,
): Promise<TextGenerationRun> {
  const p: GenerateParameters = body.parameters ?? {};
  if (p.typical_p != null && !(p.typical_p > 0 && p.typical_p < 1))
    throw invalidRequest(`\`typical_p\` must be > 0.0 and < 1.0. Given: ${p.typical_p}.`, 'typical_p');
  const bestOf = p.best_of ?? 1;
  if (bestOf > 1) {
    if (streams) throw invalidRequest('`best_of` != 1 is not supported when streaming tokens.', 'best_of');
    const sampling =
      p.do_sample || p.temperature != null || p.top_k != null || p.top_p != null || p.typical_p != null;
    if (!sampling) throw invalidRequest('You must use sampling when `best_of` is > 1.', 'best_of');
    if (p.seed != null) throw invalidRequest('`seed` must not be set when `best_of` > 1.', 'seed');
    if (bestOf > state.maxN)
      throw invalidRequest(
        `\`best_of\` must be at most ${state.maxN} (--max-n). Given: ${bestOf}.`,
        'best_of',
      );
  }
  if (streams && p.decoder_input_details)
    throw invalidRequest(
      '`decoder_input_details` == true is not supported when streaming tokens.',
      'decoder_input_details',
    );
  const maxLogprobs = state.settings.maxLogprobs;
  const alternatives = checkNumTop(p.return_k_alternatives ?? 0, 'return_k_alternatives', maxLogprobs);
  const topTokens = checkNumTop(p.top_n_tokens ?? 0, 'top_n_tokens', maxLogprobs);
  const { adapter, source, label } = await resolveLoraxAdapter(stack, p);
  const tokens = promptTokens(stack, body, p);
  const maxTotal = stack.maxModelLen;
  if (tokens.length >= maxTotal)
    throw invalidRequest(
      `\`inputs\` must have less than ${maxTotal} tokens. Given: ${tokens.length}.`,
      'inputs',
      'context_length_exceeded',
    );
  if (p.max_new_tokens != null && tokens.length + p.max_new_tokens > maxTotal)
    throw invalidRequest(
      `\`inputs\` tokens + \`max_new_tokens\` must be <= ${maxTotal}. Given: ${tokens.length} \`inputs\` tokens and ${p.max_new_tokens} \`max_new_tokens\`.`,
      'max_new_tokens',
      'context_length_exceeded',
    );
  const sampled = samples(p);
  const seed = sampled && bestOf === 1 ? (p.seed ?? randomInt(MAX_DRAWN_SEED)) : null;
  const samplingBody: SamplingBody = {
    model: stack.modelName,
    // Every sampling field is set: LoRAX applies no generation_config.json defaults.
    temperature: sampled ? (p.temperature ?? 1) : 0,
    top_p: p.top_p ?? 1,
    top_k: p.top_k ?? 0,
    min_p: 0,
    repetition_penalty: p.repetition_penalty ?? 1,
    frequency_penalty: p.frequency_penalty ?? 0,
    presence_penalty: p.presence_penalty ?? 0,
    seed: p.seed ?? seed,
    stop: p.stop ?? [],
    // TGI's generated_text keeps the stop sequence that ended it.
    include_stop_str_in_output: true,
    ignore_eos: p.ignore_eos_token ?? false,
    n: bestOf,
    ...structuredOutput(p),
  };
  const wantsLogprobs = streams || p.details === true || bestOf > 1;
  const sampling: SamplingParams = {
    ...(p.typical_p != null ? { typicalP: p.typical_p } : {}),
    ...samplingParams(stack, samplingBody, {
      numPromptTokens: tokens.length,
      requestedMaxTokens: p.max_new_tokens ?? null,
      defaultMaxTokens: null,
      maxN: state.maxN,
    }),
    logprobs: wantsLogprobs || alternatives > 0 || topTokens > 0 ? Math.max(alternatives, topTokens) : null,
    promptLogprobs: p.decoder_input_details ? 0 : null,
  };
  if (p.watermark) {
    const { gamma, delta } = state.settings.watermark ?? DEFAULT_WATERMARK;
    const vocabSize = stack.modelVocabSize ?? stack.tokenizer.vocabSize;
    sampling.logitEdits = {
      ...(sampling.logitEdits ?? NO_LOGIT_EDITS),
      watermark: { gamma, delta, vocabSize },
    };
  }
  return {
    adapter,
    adapterSource: source,
    adapterLabel: label,
    tokens,
    sampling,
    bestOf,
    seed,
    alternatives,
    topTokens,
  };
}
