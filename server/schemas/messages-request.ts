import { type Static, Type } from '@sinclair/typebox';
import { FUNCTION_NAME } from './chat-request.js';
import { Nullable, REQUEST_OBJECT, samplingFields } from './sampling-fields.js';

/**
 * POST /v1/messages (Anthropic's Messages API, as vLLM serves it) and /v1/messages/count_tokens.
 * A content block's `type` is a plain string, so that a kind Loom does not take is refused by
 * name (server/messages-input.ts) rather than called malformed.
 */

export const ContentBlockSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'a string' }),
    text: Type.Optional(Type.String({ description: 'a string' })),
    // tool_use
    id: Type.Optional(Type.String({ description: 'a string' })),
    name: Type.Optional(Type.String({ description: 'a string' })),
    input: Type.Optional(Type.Unknown()),
    // tool_result
    tool_use_id: Type.Optional(Type.String({ description: 'a string' })),
    content: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.Unknown())], { description: 'a string or content blocks' }),
    ),
    is_error: Type.Optional(Type.Boolean({ description: 'a boolean' })),
    // Anthropic's prompt-caching marker: Loom's prefix cache reuses whole blocks of any prompt by itself.
    cache_control: Type.Optional(Type.Unknown()),
    // Kinds refused by type (images, documents, thinking) carry these.
    source: Type.Optional(Type.Unknown()),
    citations: Type.Optional(Type.Unknown()),
    thinking: Type.Optional(Type.Unknown()),
    signature: Type.Optional(Type.Unknown()),
    data: Type.Optional(Type.Unknown()),
  },
  { description: 'a content block', ...REQUEST_OBJECT },
);
export type ContentBlock = Static<typeof ContentBlockSchema>;

const MessageSchema = Type.Object(
  {
    role: Type.String({ minLength: 1, maxLength: 32, description: 'a string' }),
    content: Type.Union([Type.String(), Type.Array(ContentBlockSchema)], {
      description: 'a string or an array of content blocks',
    }),
  },
  { description: 'a message', ...REQUEST_OBJECT },
);
export type AnthropicMessage = Static<typeof MessageSchema>;

export const AnthropicToolSchema = Type.Object(
  {
    name: Type.String({
      pattern: FUNCTION_NAME,
      description: 'a string of letters, digits, _ and -, at most 64',
    }),
    description: Type.Optional(Type.String({ description: 'a string' })),
    input_schema: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON Schema object' }),
    ),
    type: Type.Optional(Type.String({ description: 'a string' })),
    cache_control: Type.Optional(Type.Unknown()),
    strict: Type.Optional(Type.Boolean({ description: 'a boolean' })),
  },
  // Anthropic's server tools carry fields of their own; the route refuses them by type.
  { description: 'a tool', additionalProperties: true },
);
export type AnthropicTool = Static<typeof AnthropicToolSchema>;

const ToolChoiceSchema = Type.Object(
  {
    type: Type.String({ description: 'a string' }),
    name: Type.Optional(Type.String({ description: 'a string' })),
    disable_parallel_tool_use: Type.Optional(Type.Boolean({ description: 'a boolean' })),
  },
  { description: 'a tool choice', ...REQUEST_OBJECT },
);

/** What a Messages request and a count_tokens request share: the conversation and its tools. */
const conversationFields = {
  model: Type.String({ minLength: 1 }),
  messages: Type.Array(MessageSchema),
  system: Type.Optional(
    Type.Union([Type.String(), Type.Array(ContentBlockSchema)], { description: 'a string or text blocks' }),
  ),
  tools: Type.Optional(Type.Array(AnthropicToolSchema, { description: 'an array of tools' })),
  tool_choice: Type.Optional(ToolChoiceSchema),
  thinking: Type.Optional(Type.Unknown()),
  mcp_servers: Type.Optional(Type.Unknown()),
};

export const MessagesRequestSchema = Type.Object(
  {
    ...conversationFields,
    max_tokens: Type.Integer({ minimum: 1, description: 'an integer' }),
    stop_sequences: Type.Optional(
      Type.Array(Type.String(), { description: 'an array of strings', maxItems: 16 }),
    ),
    stream: Type.Optional(Type.Boolean({ description: 'a boolean' })),
    temperature: samplingFields.temperature,
    top_p: samplingFields.top_p,
    top_k: samplingFields.top_k,
    metadata: Type.Optional(
      Type.Object(
        { user_id: Nullable(Type.String({ description: 'a string' })) },
        { description: 'an object', ...REQUEST_OBJECT },
      ),
    ),
    service_tier: Type.Optional(Type.String({ description: 'a string' })),
    container: Type.Optional(Type.Unknown()),
    /** Anthropic's structured outputs: the answer's text is a document of this JSON Schema. */
    output_format: Type.Optional(
      Type.Object(
        {
          type: Type.String({ description: 'a string' }),
          schema: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON Schema' })),
        },
        { description: 'an object with a type and a schema', ...REQUEST_OBJECT },
      ),
    ),
  },
  REQUEST_OBJECT,
);
export type MessagesRequest = Static<typeof MessagesRequestSchema>;

export const CountTokensRequestSchema = Type.Object(conversationFields, REQUEST_OBJECT);
export type CountTokensRequest = Static<typeof CountTokensRequestSchema>;
