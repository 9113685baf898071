import { type Static, Type } from '@sinclair/typebox';
import { MAX_STOP_STRINGS, Nullable, REQUEST_OBJECT } from './sampling-fields.js';

/**
 * POST /generate, /generate_stream and / : LoRAX's REST API (text-generation-inference's, with
 * LoRAX's adapter fields), so LoRAX's and TGI's clients can talk to Loom. Every parameter either
 * does what LoRAX does with it or is refused by name (server/text-generation-params.ts). Nulls
 * are accepted everywhere: LoRAX's Python client sends every parameter, unset ones as null.
 */

/** TGI's `grammar`: a JSON Schema (type json, or its alias json_object) or a regular expression. */
const GrammarSchema = Type.Object(
  {
    type: Type.String({ description: 'a string' }),
    value: Type.Unknown({ description: 'a JSON Schema or a regular expression' }),
  },
  { description: 'an object with a type and a value', ...REQUEST_OBJECT },
);

/** LoRAX's response_format: json_object (its schema, or any JSON object), json_schema, or text. */
const LoraxResponseFormatSchema = Type.Object(
  {
    type: Type.String({ description: 'a string' }),
    schema: Nullable(Type.Unknown({ description: 'a JSON Schema' })),
  },
  { description: 'an object with a type and a schema', ...REQUEST_OBJECT },
);

/** LoRAX's merged_adapters: adapters merged per request with their weights. */
const MergedAdaptersSchema = Type.Object(
  {
    ids: Type.Array(Type.String({ minLength: 1 }), { maxItems: 16, description: 'an array of adapter ids' }),
    weights: Type.Array(Type.Number(), { maxItems: 16, description: 'an array of numbers' }),
    merge_strategy: Nullable(Type.String({ description: 'a string' })),
    density: Nullable(Type.Number({ description: 'a number' })),
    majority_sign_method: Nullable(Type.String({ description: 'a string' })),
  },
  { description: 'an object with ids and weights', ...REQUEST_OBJECT },
);

export const GenerateParametersSchema = Type.Object(
  {
    adapter_id: Nullable(Type.String({ description: 'a string' })),
    adapter_source: Nullable(Type.String({ description: 'a string' })),
    // LoRAX's per-request adapter merging (server/merged-adapters.ts).
    merged_adapters: Nullable(MergedAdaptersSchema),
    api_token: Nullable(Type.String({ description: 'a string' })),
    best_of: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    temperature: Nullable(Type.Number({ minimum: 0, description: 'a number' })),
    repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, description: 'a number' })),
    frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2, description: 'a number' })),
    presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2, description: 'a number' })),
    top_k: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'a number' })),
    typical_p: Nullable(Type.Number({ description: 'a number' })),
    do_sample: Nullable(Type.Boolean({ description: 'a boolean' })),
    max_new_tokens: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    ignore_eos_token: Nullable(Type.Boolean({ description: 'a boolean' })),
    return_full_text: Nullable(Type.Boolean({ description: 'a boolean' })),
    stop: Nullable(
      Type.Array(Type.String({ minLength: 1 }), {
        maxItems: MAX_STOP_STRINGS,
        description: `an array of at most ${MAX_STOP_STRINGS} non-empty strings`,
      }),
    ),
    truncate: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    watermark: Nullable(Type.Boolean({ description: 'a boolean' })),
    details: Nullable(Type.Boolean({ description: 'a boolean' })),
    decoder_input_details: Nullable(Type.Boolean({ description: 'a boolean' })),
    return_k_alternatives: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    /** TGI's: the most likely tokens of each step, as details.top_tokens. */
    top_n_tokens: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
    apply_chat_template: Nullable(Type.Boolean({ description: 'a boolean' })),
    seed: Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'an integer' })),
    response_format: Nullable(LoraxResponseFormatSchema),
    grammar: Nullable(GrammarSchema),
  },
  { description: 'an object', ...REQUEST_OBJECT },
);
export type GenerateParameters = Static<typeof GenerateParametersSchema>;

export const GenerateRequestSchema = Type.Object(
  {
    inputs: Type.String({ description: 'a string' }),
    parameters: Nullable(GenerateParametersSchema),
    /** Only the compat route (/) streams by it; /generate refuses true and /generate_stream false. */
    stream: Nullable(Type.Boolean({ description: 'a boolean' })),
  },
  REQUEST_OBJECT,
);
export type GenerateRequest = Static<typeof GenerateRequestSchema>;
