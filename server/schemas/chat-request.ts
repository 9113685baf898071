import { type Static, Type } from '@sinclair/typebox';
import { Nullable, REQUEST_OBJECT, samplingFields } from './sampling-fields.js';

/** Any content part parses; the route accepts type "text" and names the others as unsupported. */
const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

export const ChatMessageSchema = Type.Object({
  role: Type.String(),
  content: Type.Union([Type.String(), Type.Array(ContentPart), Type.Null()], {
    description: 'a string or an array of content parts',
  }),
  name: Type.Optional(Type.String()),
});

/** POST /v1/chat/completions. */
export const ChatCompletionRequestSchema = Type.Object(
  {
    ...samplingFields,
    messages: Type.Array(ChatMessageSchema),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    /** Score each sampled token; top_logprobs (0..20, only with logprobs) lists the most likely beside it. */
    logprobs: Nullable(Type.Boolean({ description: 'a boolean' })),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, description: 'an integer' })),
    /** Not supported; declared so the route can say so instead of silently ignoring them. */
    tools: Type.Optional(Type.Unknown()),
    functions: Type.Optional(Type.Unknown()),
    tool_choice: Type.Optional(Type.Unknown()),
  },
  REQUEST_OBJECT,
);

export type ChatMessage = Static<typeof ChatMessageSchema>;
export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;
