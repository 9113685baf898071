import { type TSchema, Type } from '@sinclair/typebox';

/** OpenAI accepts `null` wherever a parameter may be left out. */
export function Nullable<T extends TSchema>(schema: T) {
  return Type.Optional(Type.Union([schema, Type.Null()], { description: schema.description }));
}

export const MAX_STOP_STRINGS = 16;

interface UnsupportedField {
  schema: TSchema;
  /** The value that asks for what Loom does anyway (vLLM's default): accepted. */
  isDefault(value: unknown): boolean;
  /** What the refusal names, completing "… is not supported." */
  what: string;
}

/**
 * Fields of OpenAI's and vLLM's sampling parameters that Loom does not implement. Each is in the
 * schema, so its type is checked and its default value accepted, and any other value is refused
 * by name (server/sampling-params.ts). With the request schemas closed (REQUEST_OBJECT: unknown
 * fields are a 400), no field can be silently ignored: a new one must be implemented, or listed
 * here.
 */
export const UNSUPPORTED_FIELDS: Record<string, UnsupportedField> = {};

/** A JSON Schema as an object, or as its JSON text. */
function jsonSchemaField() {
  return Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())], {
    description: 'a JSON Schema (an object, or its JSON text)',
  });
}

function unsupportedFieldSchemas(): Record<string, ReturnType<typeof Nullable>> {
  return Object.fromEntries(
    Object.entries(UNSUPPORTED_FIELDS).map(([name, f]) => [name, Nullable(f.schema)]),
  );
}

/** Options of every request object: a field the schema does not name is refused, never ignored. */
export const REQUEST_OBJECT = { additionalProperties: false } as const;

/**
 * Parameters /v1/completions and /v1/chat/completions share. Ranges whose limits are fixed sit
 * here; limits that depend on the model (max_model_len, n vs max-num-seqs) are checked in
 * server/sampling-params.ts.
 */
export const samplingFields = {
  model: Type.String({ minLength: 1 }),
  max_tokens: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
  temperature: Nullable(Type.Number({ minimum: 0, description: 'a number' })),
  top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'a number' })),
  /** vLLM extension: -1 or 0 turn it off. */
  top_k: Nullable(Type.Integer({ minimum: -1, description: 'an integer' })),
  seed: Nullable(
    Type.Integer({
      minimum: Number.MIN_SAFE_INTEGER,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'an integer',
    }),
  ),
  stop: Nullable(
    Type.Union(
      [
        Type.String({ minLength: 1 }),
        Type.Array(Type.String({ minLength: 1 }), { maxItems: MAX_STOP_STRINGS }),
      ],
      { description: `a non-empty string or an array of at most ${MAX_STOP_STRINGS} non-empty strings` },
    ),
  ),
  n: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
  stream: Nullable(Type.Boolean({ description: 'a boolean' })),
  stream_options: Nullable(
    Type.Object(
      {
        include_usage: Nullable(Type.Boolean({ description: 'a boolean' })),
        /** vLLM extension: with include_usage, every chunk carries the usage so far. */
        continuous_usage_stats: Nullable(Type.Boolean({ description: 'a boolean' })),
      },
      { description: 'an object', ...REQUEST_OBJECT },
    ),
  ),
  ignore_eos: Nullable(Type.Boolean({ description: 'a boolean' })),
  /**
   * vLLM extension: each choice's generated token ids (`token_ids`) and the prompt's
   * (`prompt_token_ids`) beside the text; streamed, each chunk's tokens, the prompt's with the first.
   */
  return_token_ids: Nullable(Type.Boolean({ description: 'a boolean' })),
  stop_token_ids: Nullable(
    Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' }),
  ),
  user: Nullable(Type.String({ description: 'a string' })),
  // Logit edits (scheduler/logit-edits.ts), with vLLM's ranges.
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2, description: 'a number' })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2, description: 'a number' })),
  /** vLLM extension: 1 is off. */
  repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, description: 'a number' })),
  /** Token id (a string of digits, as JSON keys are) → bias, clamped to ±100 as vLLM does. */
  logit_bias: Nullable(
    Type.Record(Type.String(), Type.Number(), { description: 'an object of token ids to numbers' }),
  ),
  /** vLLM extension: tokens generated before a stop token or stop string may end the choice. */
  min_tokens: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
  /** vLLM extension: words the output may not contain (each as the tokenizer spells it, with and without a leading space). */
  bad_words: Nullable(
    Type.Array(Type.String({ minLength: 1 }), { description: 'an array of non-empty strings' }),
  ),
  /** vLLM extension: the only token ids that may be sampled. */
  allowed_token_ids: Nullable(
    Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' }),
  ),
  /** vLLM extension: lower runs first under --scheduling-policy priority (checked by server/sampling-params.ts). */
  priority: Nullable(Type.Integer({ description: 'an integer' })),
  /** LoRAX's extensions (server/adapter-source.ts): where the `model` adapter comes from, its ignore_eos, a hub token. */
  adapter_source: Nullable(Type.String({ description: 'a string' })),
  ignore_eos_token: Nullable(Type.Boolean({ description: 'a boolean' })),
  api_token: Nullable(Type.String({ description: 'a string' })),
  /** vLLM extension: the response's id is `cmpl-`/`chatcmpl-` and this (X-Request-Id overrides it). */
  request_id: Nullable(
    Type.String({ minLength: 1, maxLength: 256, description: 'a string of 1 to 256 characters' }),
  ),
  /** vLLM extension: with prefix caching, only requests of the same salt share cached blocks (server/sampling-params.ts). */
  cache_salt: Nullable(Type.String({ description: 'a string' })),
  /**
   * vLLM extension: score the prompt with this many top tokens per position (-1: the whole
   * vocabulary; range checked by server/logprobs.ts, as vLLM words it).
   */
  prompt_logprobs: Nullable(Type.Integer({ description: 'an integer' })),
  /** vLLM extension: 0 is off. */
  min_p: Nullable(Type.Number({ minimum: 0, maximum: 1, description: 'a number' })),
  // Structured output (server/structured-output.ts).
  response_format: Nullable(
    Type.Object(
      {
        type: Type.String({ description: 'a string' }),
        json_schema: Nullable(
          Type.Object(
            {
              name: Type.String({ description: 'a string' }),
              description: Nullable(Type.String({ description: 'a string' })),
              schema: Nullable(Type.Unknown({ description: 'a JSON Schema' })),
              strict: Nullable(Type.Boolean({ description: 'a boolean' })),
            },
            { description: 'an object with a name and a schema', ...REQUEST_OBJECT },
          ),
        ),
        /** type "structural_tag" (structured/structural-tag.ts): its format, or its structures and triggers. */
        format: Nullable(Type.Unknown({ description: 'a structural tag format' })),
        structures: Nullable(Type.Unknown({ description: 'an array of structures' })),
        triggers: Nullable(Type.Unknown({ description: 'an array of strings' })),
      },
      { description: 'an object with a type', ...REQUEST_OBJECT },
    ),
  ),
  /** vLLM extension: a JSON Schema (or its text) the output follows. */
  guided_json: Nullable(jsonSchemaField()),
  /** vLLM extension: the output fully matches this regular expression (Python's `re` syntax). */
  guided_regex: Nullable(Type.String({ description: 'a string' })),
  /** vLLM extension: the output is derived by this GBNF grammar from its `root` rule. */
  guided_grammar: Nullable(Type.String({ description: 'a string' })),
  /** vLLM extension: the output is exactly one of these. */
  guided_choice: Nullable(Type.Array(Type.String(), { description: 'an array of strings' })),
  /** vLLM extension (StructuredOutputsParams): one of json, json_object, choice, regex, grammar, structural_tag. */
  structured_outputs: Nullable(
    Type.Object(
      {
        json: Nullable(jsonSchemaField()),
        json_object: Nullable(Type.Boolean({ description: 'a boolean' })),
        choice: Nullable(Type.Array(Type.String(), { description: 'an array of strings' })),
        regex: Nullable(Type.String({ description: 'a string' })),
        grammar: Nullable(Type.String({ description: 'a string' })),
        structural_tag: Nullable(Type.String({ description: 'a string' })),
        whitespace_pattern: Nullable(Type.String({ description: 'a string' })),
        disable_any_whitespace: Nullable(Type.Boolean({ description: 'a boolean' })),
        disable_additional_properties: Nullable(Type.Boolean({ description: 'a boolean' })),
        /** Loom has one structured-output backend: there is nothing to fall back to. */
        disable_fallback: Nullable(Type.Boolean({ description: 'a boolean' })),
      },
      { description: 'an object', ...REQUEST_OBJECT },
    ),
  ),
  /** vLLM extension: log-probabilities name tokens as "token_id:<id>" instead of their text. */
  return_tokens_as_token_ids: Nullable(Type.Boolean({ description: 'a boolean' })),
  /** vLLM extension: keep only the prompt's last k tokens (left truncation); -1: max_model_len. */
  truncate_prompt_tokens: Nullable(Type.Integer({ minimum: -1, description: 'an integer' })),
  /** vLLM extension: the n choices are the n best beams of a beam search (server/beam-search.ts). */
  use_beam_search: Nullable(Type.Boolean({ description: 'a boolean' })),
  /**
   * vLLM extension, for use_beam_search: a beam's score is its cumulative logprob over its length
   * to this power (server/sampling-params.ts refuses any but 1 without beam search).
   */
  length_penalty: Nullable(Type.Number({ description: 'a number' })),
  /**
   * vLLM extension: with a --reasoning-parser, reasoning that reaches this many tokens is ended
   * (its end marker forced); -1: no budget.
   */
  thinking_token_budget: Nullable(Type.Integer({ minimum: -1, description: 'an integer ≥ -1' })),
  /** vLLM extensions: what the text holds of stop strings and special tokens. */
  include_stop_str_in_output: Nullable(Type.Boolean({ description: 'a boolean' })),
  skip_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  /**
   * vLLM extension: spaces between added tokens in the text. Only a slow (Python) tokenizer's
   * decode puts them there; vLLM's detokenizer for tokenizer.json tokenizers and Hugging Face's
   * fast decode take no such flag, and Loom's tokenizers are all tokenizer.json ones, so either
   * value gives the fast decode's text, as vLLM's does.
   */
  spaces_between_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  ...unsupportedFieldSchemas(),
};
