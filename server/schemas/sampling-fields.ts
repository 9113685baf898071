import { type TSchema, Type } from '@sinclair/typebox';

/** OpenAI accepts `null` wherever a parameter may be left out. */
export function Nullable<T extends TSchema>(schema: T) {
  return Type.Optional(Type.Union([schema, Type.Null()], { description: schema.description }));
}

export const MAX_STOP_STRINGS = 16;

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
      { include_usage: Nullable(Type.Boolean({ description: 'a boolean' })) },
      { description: 'an object' },
    ),
  ),
  ignore_eos: Nullable(Type.Boolean({ description: 'a boolean' })),
  stop_token_ids: Nullable(
    Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' }),
  ),
  user: Nullable(Type.String({ description: 'a string' })),
  presence_penalty: Nullable(Type.Number({ description: 'a number' })),
  frequency_penalty: Nullable(Type.Number({ description: 'a number' })),
};
