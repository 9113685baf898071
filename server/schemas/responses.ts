import { Type } from '@sinclair/typebox';

/**
 * Response shapes, per status code: they document the API next to the request schemas and
 * let Fastify serialize with a compiled stringifier. Event streams bypass them (one JSON
 * chunk per `data:` line, shaped like these with `delta`/`text` per choice).
 */
export const ErrorResponseSchema = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String(),
    param: Type.Union([Type.String(), Type.Null()]),
    code: Type.Union([Type.String(), Type.Null()]),
  }),
});

export const errorResponses = { '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema };

/** LoRAX's (text-generation-inference's) error body (server/text-generation-errors.ts). */
const TextGenerationErrorSchema = Type.Object({ error: Type.String(), error_type: Type.String() });
const EitherErrorSchema = Type.Union([ErrorResponseSchema, TextGenerationErrorSchema]);

/** Errors of a route that answers OpenAI's requests and LoRAX's (/tokenize), each in its shape. */
export const eitherErrorResponses = { '4xx': EitherErrorSchema, '5xx': EitherErrorSchema };

const Usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  /** vLLM's `{cached_tokens}` with --enable-prompt-tokens-details; null otherwise. */
  prompt_tokens_details: Type.Union([Type.Object({ cached_tokens: Type.Integer() }), Type.Null()]),
});

const FinishReason = Type.Union([Type.String(), Type.Null()]);

/** /v1/completions' `logprobs` (server/logprobs.ts): null entries are echo's first prompt token. */
export const CompletionLogprobsSchema = Type.Object({
  tokens: Type.Array(Type.String()),
  token_logprobs: Type.Array(Type.Union([Type.Number(), Type.Null()])),
  top_logprobs: Type.Array(Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()])),
  text_offset: Type.Array(Type.Integer()),
});

const ChatTokenLogprob = {
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Type.Union([Type.Array(Type.Integer()), Type.Null()]),
};

/** /v1/chat/completions' `logprobs`. */
export const ChatLogprobsSchema = Type.Object({
  content: Type.Array(
    Type.Object({ ...ChatTokenLogprob, top_logprobs: Type.Array(Type.Object(ChatTokenLogprob)) }),
  ),
});
/**
 * vLLM's `prompt_logprobs` (server/logprobs.ts): null unless asked; else one entry per prompt
 * token, null for the first, each mapping token ids to {logprob, rank, decoded_token}.
 */
const PromptLogprobsSchema = Type.Union([
  Type.Array(
    Type.Union([
      Type.Record(
        Type.String(),
        Type.Object({ logprob: Type.Number(), rank: Type.Integer(), decoded_token: Type.String() }),
      ),
      Type.Null(),
    ]),
  ),
  Type.Null(),
]);

/** vLLM's: the stop string or stop token id that ended the choice, else null. */
const StopReason = Type.Union([Type.String(), Type.Integer(), Type.Null()]);
/** OpenAI's backend fingerprint; null as vLLM leaves it. */
const SystemFingerprint = Type.Union([Type.String(), Type.Null()]);

export const CompletionResponseSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: SystemFingerprint,
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      text: Type.String(),
      logprobs: Type.Union([CompletionLogprobsSchema, Type.Null()]),
      finish_reason: FinishReason,
      stop_reason: StopReason,
      prompt_logprobs: PromptLogprobsSchema,
      /** vLLM's return_token_ids. */
      prompt_token_ids: Type.Optional(Type.Array(Type.Integer())),
      token_ids: Type.Optional(Type.Array(Type.Integer())),
    }),
  ),
  usage: Usage,
});

export const ChatCompletionResponseSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: SystemFingerprint,
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({
        // 'assistant' unless --response-role, or a continuation (add_generation_prompt false), says otherwise.
        role: Type.String(),
        /** null only beside tool calls read out of an answer that has no other text ("auto", as vLLM). */
        content: Type.Union([Type.String(), Type.Null()]),
        /** --reasoning-parser: the reasoning before the answer, under vLLM's name and its earlier one. */
        reasoning: Type.Optional(Type.String()),
        reasoning_content: Type.Optional(Type.String()),
        /** With tool_choice "required", a named function, or calls read by "auto" (server/tool-calls.ts). */
        tool_calls: Type.Optional(
          Type.Array(
            Type.Object({
              id: Type.String(),
              type: Type.Literal('function'),
              function: Type.Object({ name: Type.String(), arguments: Type.String() }),
            }),
          ),
        ),
      }),
      logprobs: Type.Union([ChatLogprobsSchema, Type.Null()]),
      finish_reason: FinishReason,
      stop_reason: StopReason,
      /** vLLM's return_token_ids. */
      token_ids: Type.Optional(Type.Array(Type.Integer())),
    }),
  ),
  prompt_logprobs: PromptLogprobsSchema,
  prompt_token_ids: Type.Optional(Type.Array(Type.Integer())),
  usage: Usage,
});

export const ModelCardSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
  root: Type.String(),
  parent: Type.Union([Type.String(), Type.Null()]),
  max_model_len: Type.Integer(),
  permission: Type.Array(Type.Unknown()),
});

export const ModelListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(ModelCardSchema),
});

export const HealthSchema = Type.Object({
  status: Type.String(),
  /** Why the engine can serve no more (status engine_failed). */
  reason: Type.Optional(Type.String()),
});
