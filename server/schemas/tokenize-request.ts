import { type Static, Type } from '@sinclair/typebox';
import { ChatMessageSchema, chatTemplateFields, toolFields } from './chat-request.js';
import { Nullable, REQUEST_OBJECT } from './sampling-fields.js';

const Model = Type.Optional(Type.String({ description: 'a string' }));
const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' });
/** vLLM's: the ids' vocabulary entries too, as `token_strs`. */
const ReturnTokenStrs = Nullable(Type.Boolean({ description: 'a boolean' }));

/** vLLM's TokenizeCompletionRequest: a prompt string; BOS is added unless add_special_tokens is false. */
export const TokenizePromptSchema = Type.Object(
  {
    model: Model,
    prompt: Type.String(),
    add_special_tokens: Type.Optional(Type.Boolean({ description: 'a boolean' })),
    return_token_strs: ReturnTokenStrs,
  },
  REQUEST_OBJECT,
);

/** vLLM's TokenizeChatRequest: messages rendered by the chat template, as chat completions would. */
export const TokenizeChatSchema = Type.Object(
  {
    model: Model,
    messages: Type.Array(ChatMessageSchema),
    ...chatTemplateFields,
    ...toolFields,
    return_token_strs: ReturnTokenStrs,
  },
  REQUEST_OBJECT,
);

/** LoRAX's TokenizeRequest: `inputs` text; BOS is added unless add_special_tokens is false. */
export const TokenizeInputsSchema = Type.Object(
  {
    inputs: Type.String(),
    add_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  },
  REQUEST_OBJECT,
);

/**
 * POST /tokenize: vLLM's two forms (told apart by `messages`) or LoRAX's (by `inputs`), each
 * answered in its own shape.
 */
export const TokenizeRequestSchema = Type.Union(
  [TokenizePromptSchema, TokenizeChatSchema, TokenizeInputsSchema],
  {
    description: 'an object with "prompt", "messages" or "inputs"',
  },
);
export type TokenizeRequest = Static<typeof TokenizeRequestSchema>;

const VllmTokenizeResponseSchema = Type.Object({
  count: Type.Integer(),
  max_model_len: Type.Integer(),
  tokens: Type.Array(Type.Integer()),
  token_strs: Type.Union([Type.Array(Type.String()), Type.Null()]),
});

/** LoRAX's: one SimpleToken per token, its vocabulary entry and its span of the text in characters. */
const LoraxTokenizeResponseSchema = Type.Array(
  Type.Object({ id: Type.Integer(), text: Type.String(), start: Type.Integer(), stop: Type.Integer() }),
);

export const TokenizeResponseSchema = Type.Union([VllmTokenizeResponseSchema, LoraxTokenizeResponseSchema]);

/** POST /detokenize. */
export const DetokenizeRequestSchema = Type.Object({ model: Model, tokens: TokenIds }, REQUEST_OBJECT);
export type DetokenizeRequest = Static<typeof DetokenizeRequestSchema>;

export const DetokenizeResponseSchema = Type.Object({ prompt: Type.String() });

/** vLLM's TokenizerInfoResponse: the tokenizer's class and whatever its configuration holds. */
export const TokenizerInfoResponseSchema = Type.Object(
  { tokenizer_class: Type.String() },
  { additionalProperties: true },
);
