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

/** OpenAI's rule for a function's name (letters, digits, underscores, dashes; at most 64). */
export const FUNCTION_NAME = '^[a-zA-Z0-9_-]{1,64}$';

/**
 * A tool call of an earlier assistant turn, as OpenAI's API returned it: the arguments are the
 * JSON text the model wrote (server/chat-prompt.ts gives the template the parsed object, as vLLM does).
 */
const ToolCallSchema = Type.Object(
  {
    id: Type.String({ description: 'a string' }),
    type: Type.Literal('function', { description: '"function"' }),
    function: Type.Object(
      {
        name: Type.String({ minLength: 1, description: 'a string' }),
        arguments: Type.String({ description: 'a string of JSON' }),
      },
      { description: 'an object with name and arguments', ...REQUEST_OBJECT },
    ),
  },
  { description: 'a tool call', ...REQUEST_OBJECT },
);

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
    /** An assistant turn's calls (server/chat-prompt.ts). */
    tool_calls: Nullable(Type.Array(ToolCallSchema, { description: 'an array of tool calls' })),
    /** The call a `tool` message answers. */
    tool_call_id: Nullable(Type.String({ description: 'a string' })),
    /** An assistant turn's reasoning, as vLLM returned it (and under its earlier name), for the template. */
    reasoning: Nullable(Type.String({ description: 'a string' })),
    reasoning_content: Nullable(Type.String({ description: 'a string' })),
    /** OpenAI's deprecated single function call: refused by name (server/chat-prompt.ts). */
    function_call: Type.Optional(Type.Unknown()),
  },
  REQUEST_OBJECT,
);

/** A function the model may call (OpenAI's `tools` entry; server/tool-calls.ts checks the rest). */
export const FunctionToolSchema = Type.Object(
  {
    type: Type.Literal('function', { description: '"function"' }),
    function: Type.Object(
      {
        name: Type.String({
          pattern: FUNCTION_NAME,
          description: 'a string of letters, digits, _ and -, at most 64',
        }),
        description: Nullable(Type.String({ description: 'a string' })),
        /** A JSON Schema of the arguments object; absent: no arguments. */
        parameters: Nullable(
          Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON Schema object' }),
        ),
        /** OpenAI's strict mode: Loom always follows the schema where it constrains decoding. */
        strict: Nullable(Type.Boolean({ description: 'a boolean' })),
      },
      { description: 'a function definition', ...REQUEST_OBJECT },
    ),
  },
  { description: 'a tool', ...REQUEST_OBJECT },
);
export type FunctionTool = Static<typeof FunctionToolSchema>;

/** `tools` and what they need; shared by chat completions and /tokenize's chat form. */
export const toolFields = {
  tools: Nullable(Type.Array(FunctionToolSchema, { description: 'an array of tools' })),
};

/** vLLM's chat-template options, shared by chat completions and /tokenize's chat form (server/chat-prompt.ts). */
export const chatTemplateFields = {
  add_generation_prompt: Nullable(Type.Boolean({ description: 'a boolean' })),
  continue_final_message: Nullable(Type.Boolean({ description: 'a boolean' })),
  add_special_tokens: Nullable(Type.Boolean({ description: 'a boolean' })),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'an object' })),
  /** vLLM's: this request's own Jinja chat template (with --trust-request-chat-template). */
  chat_template: Nullable(Type.String({ description: 'a string' })),
  /** vLLM's documents (HF apply_chat_template's): retrieved texts, for a template that reads `documents`. */
  documents: Nullable(
    Type.Array(Type.Record(Type.String(), Type.String()), { description: 'an array of objects of strings' }),
  ),
  /** OpenAI's reasoning_effort, given to the template as `reasoning_effort` (vLLM's). */
  reasoning_effort: Nullable(
    Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high')], {
      description: '"low", "medium" or "high"',
    }),
  ),
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
    /** vLLM's include_reasoning: false leaves a --reasoning-parser's reasoning out of the answer. */
    include_reasoning: Nullable(Type.Boolean({ description: 'a boolean' })),
    ...toolFields,
    /** "none", "auto", "required", or {type: "function", function: {name}} (server/tool-calls.ts). */
    tool_choice: Nullable(
      Type.Union(
        [
          Type.String({ description: 'a string' }),
          Type.Object(
            {
              type: Type.Literal('function', { description: '"function"' }),
              function: Type.Object(
                { name: Type.String({ description: 'a string' }) },
                { description: 'an object with name', ...REQUEST_OBJECT },
              ),
            },
            { description: 'a named tool choice', ...REQUEST_OBJECT },
          ),
        ],
        { description: '"none", "auto", "required" or a named tool choice' },
      ),
    ),
    parallel_tool_calls: Nullable(Type.Boolean({ description: 'a boolean' })),
    /** vLLM extension: the answer starts with the final message's text when that is the assistant's. */
    echo: Nullable(Type.Boolean({ description: 'a boolean' })),
    /** OpenAI's deprecated function calling: refused by name (use tools). */
    functions: Type.Optional(Type.Unknown()),
    function_call: Type.Optional(Type.Unknown()),
  },
  REQUEST_OBJECT,
);

export type ChatMessage = Static<typeof ChatMessageSchema>;
export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;
