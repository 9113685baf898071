import { type Static, Type } from '@sinclair/typebox';
import { ChatMessageSchema, chatTemplateFields, toolFields } from './chat-request.js';
import { REQUEST_OBJECT } from './sampling-fields.js';

const Model = Type.Optional(Type.String({ description: 'a string' }));
const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' });

/** vLLM's TokenizeCompletionRequest: a prompt string; BOS is added unless add_special_tokens is false. */
const TokenizePromptSchema = Type.Object(
  {
    model: Model,
    prompt: Type.String(),
    add_special_tokens: Type.Optional(Type.Boolean({ description: 'a boolean' })),
  },
  REQUEST_OBJECT,
);

/** vLLM's TokenizeChatRequest: messages rendered by the chat template, as chat completions would. */
const TokenizeChatSchema = Type.Object(
  {
    model: Model,
    messages: Type.Array(ChatMessageSchema),
    ...chatTemplateFields,
    ...toolFields,
  },
  REQUEST_OBJECT,
);

/** POST /tokenize: either form (vLLM tells them apart by `messages`). */
export const TokenizeRequestSchema = Type.Union([TokenizePromptSchema, TokenizeChatSchema], {
  description: 'an object with either "prompt" or "messages"',
});
export type TokenizeRequest = Static<typeof TokenizeRequestSchema>;

export const TokenizeResponseSchema = Type.Object({
  count: Type.Integer(),
  max_model_len: Type.Integer(),
  tokens: Type.Array(Type.Integer()),
});

/** POST /detokenize. */
export const DetokenizeRequestSchema = Type.Object({ model: Model, tokens: TokenIds }, REQUEST_OBJECT);
export type DetokenizeRequest = Static<typeof DetokenizeRequestSchema>;

export const DetokenizeResponseSchema = Type.Object({ prompt: Type.String() });
