import { type Static, Type } from '@sinclair/typebox';
import { Nullable, REQUEST_OBJECT, samplingFields } from './sampling-fields.js';

/** OpenAI's limit on a message's `name` (letters, digits, underscores; at most 64 characters). */
export const MAX_MESSAGE_NAME_CHARS = 64;

/**
 * Content parts of OpenAI's other types carry these fields: they parse, so that the route can
 * refuse the part by its type ("Content of type image_url is not supported") rather than call a
 * well-formed request malformed.
 */
export const NON_TEXT_PART_FIELDS = ['image_url', 'input_audio', 'file', 'refusal'] as const;

const ContentPart = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'a string' }),
    text: Type.Optional(Type.String({ description: 'a string' })),
    image_url: Type.Optional(Type.Unknown()),
    input_audio: Type.Optional(Type.Unknown()),
    file: Type.Optional(Type.Unknown()),
    refusal: Type.Optional(Type.Unknown()),
  },
  { description: 'a content part', ...REQUEST_OBJECT },
);

/**
 * Message fields of OpenAI's tool calling, which Loom does not implement: declared so that a
 * message carrying them is refused by name, unless they hold nothing (null, an empty list).
 */
export const UNSUPPORTED_MESSAGE_FIELDS = ['tool_calls', 'tool_call_id', 'function_call'] as const;

/**
 * One chat message. Bounds that follow from the model (messages and content parts against
 * max_model_len, characters against the longest prompt) are checked in server/chat-prompt.ts,
 * before the template runs; the body limit bounds everything else.
 */
export const ChatMessageSchema = Type.Object(
  {
    role: Type.String({ minLength: 1, maxLength: 32, description: 'a string' }),
    content: Type.Union([Type.String(), Type.Array(ContentPart), Type.Null()], {
      description: 'a string or an array of content parts',
    }),
    /** Given to the chat template with the message, as vLLM and HF's apply_chat_template do. */
    name: Type.Optional(
      Type.String({ minLength: 1, maxLength: MAX_MESSAGE_NAME_CHARS, description: 'a string' }),
    ),
    tool_calls: Type.Optional(Type.Unknown()),
    tool_call_id: Type.Optional(Type.Unknown()),
    function_call: Type.Optional(Type.Unknown()),
  },
  REQUEST_OBJECT,
);

/** vLLM's chat-template options, shared by chat completions and /tokenize's chat form (server/chat-prompt.ts). */
export const chatTemplateFields = {
  add_generation_prompt: Nullable(Type.Boolean({ description: 'a boolean' })),
  continue_final_message: Nullable(Type.Boolean({ description: 'a boolean' })),
  add_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'an object' })),
};

/** POST /v1/chat/completions. */
export const ChatCompletionRequestSchema = Type.Object(
  {
    ...samplingFields,
    messages: Type.Array(ChatMessageSchema),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    /** Score each sampled token; top_logprobs (0..--max-logprobs, only with logprobs) lists the most likely beside it. */
    logprobs: Nullable(Type.Boolean({ description: 'a boolean' })),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
    ...chatTemplateFields,
    /** Not supported; declared so the route can say so instead of silently ignoring them. */
    tools: Type.Optional(Type.Unknown()),
    functions: Type.Optional(Type.Unknown()),
    tool_choice: Type.Optional(Type.Unknown()),
  },
  REQUEST_OBJECT,
);

export type ChatMessage = Static<typeof ChatMessageSchema>;
export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;
