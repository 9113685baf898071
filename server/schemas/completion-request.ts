import { type Static, Type } from '@sinclair/typebox';
import { Nullable, REQUEST_OBJECT, samplingFields } from './sampling-fields.js';

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }));

/** POST /v1/completions. A prompt (a string or token ids), or a batch of them (a list of either). */
export const CompletionRequestSchema = Type.Object(
  {
    ...samplingFields,
    /** 0 only with echo: the prompt scored, nothing generated (vLLM's echo without generation; checked by the route). */
    max_tokens: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
    prompt: Type.Union([Type.String(), TokenIds, Type.Array(Type.String()), Type.Array(TokenIds)], {
      description: 'a string, an array of token ids, or a list of either',
    }),
    /** Top tokens listed beside each sampled one (0..--max-logprobs, default 20 as vLLM's; checked by the route). */
    logprobs: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
    echo: Nullable(Type.Boolean({ description: 'a boolean' })),
    suffix: Nullable(Type.String({ description: 'a string' })),
    best_of: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    /** vLLM extension: a string prompt gets the tokenizer's special tokens (BOS); default true. */
    add_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  },
  REQUEST_OBJECT,
);

export type CompletionRequest = Static<typeof CompletionRequestSchema>;
