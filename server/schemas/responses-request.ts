import { type Static, Type } from '@sinclair/typebox';
import { FUNCTION_NAME } from './chat-request.js';
import { Nullable, REQUEST_OBJECT, samplingFields } from './sampling-fields.js';

/**
 * POST /v1/responses: OpenAI's Responses API as vLLM serves it for models without a reasoning
 * format. Fields are typed loosely where the route refuses by value (an input item's or a tool's
 * `type`, `include` entries), so that the refusal names what is not supported instead of calling
 * the request malformed. server/responses-input.ts reads the body.
 */

const LooseObject = (description: string) => Type.Record(Type.String(), Type.Unknown(), { description });

/** One part of an input message: input_text (output_text in an assistant's), or a kind Loom refuses by type. */
const InputPart = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'a string' }),
    text: Type.Optional(Type.String({ description: 'a string' })),
    annotations: Type.Optional(Type.Array(Type.Unknown())),
    logprobs: Type.Optional(Type.Array(Type.Unknown())),
    image_url: Type.Optional(Type.Unknown()),
    file_id: Type.Optional(Type.Unknown()),
    file_data: Type.Optional(Type.Unknown()),
    file_url: Type.Optional(Type.Unknown()),
    filename: Type.Optional(Type.Unknown()),
    detail: Type.Optional(Type.Unknown()),
    input_audio: Type.Optional(Type.Unknown()),
  },
  { description: 'a content part', ...REQUEST_OBJECT },
);

/**
 * One item of `input`: a message (`type` "message", or left out), a function call of an earlier
 * turn, a function call's output; other types parse so they can be refused by name.
 */
export const InputItemSchema = Type.Object(
  {
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a string' })),
    id: Nullable(Type.String({ description: 'a string' })),
    status: Nullable(Type.String({ description: 'a string' })),
    role: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'a string' })),
    content: Type.Optional(
      Type.Union([Type.String(), Type.Array(InputPart)], {
        description: 'a string or an array of content parts',
      }),
    ),
    call_id: Type.Optional(Type.String({ description: 'a string' })),
    name: Type.Optional(Type.String({ description: 'a string' })),
    arguments: Type.Optional(Type.String({ description: 'a string of JSON' })),
    output: Type.Optional(
      Type.Union([Type.String(), Type.Array(InputPart)], { description: 'a string or content parts' }),
    ),
    summary: Type.Optional(Type.Unknown()),
    encrypted_content: Type.Optional(Type.Unknown()),
  },
  { description: 'an input item', ...REQUEST_OBJECT },
);
export type InputItem = Static<typeof InputItemSchema>;

/** A tool: a function (flat, as the Responses API writes it), or a hosted tool Loom refuses by type. */
export const ResponsesToolSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'a string' }),
    name: Type.Optional(
      Type.String({
        pattern: FUNCTION_NAME,
        description: 'a string of letters, digits, _ and -, at most 64',
      }),
    ),
    description: Nullable(Type.String({ description: 'a string' })),
    parameters: Nullable(LooseObject('a JSON Schema object')),
    strict: Nullable(Type.Boolean({ description: 'a boolean' })),
  },
  // Hosted tools carry fields of their own; the route refuses them by type before reading any.
  { description: 'a tool', additionalProperties: true },
);
export type ResponsesTool = Static<typeof ResponsesToolSchema>;

/** `text.format`: text, a JSON Schema, or JSON (json_object). */
const TextFormatSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64, description: 'a string' }),
    name: Type.Optional(Type.String({ description: 'a string' })),
    schema: Type.Optional(LooseObject('a JSON Schema object')),
    description: Nullable(Type.String({ description: 'a string' })),
    strict: Nullable(Type.Boolean({ description: 'a boolean' })),
  },
  { description: 'a text format', ...REQUEST_OBJECT },
);

export const ResponsesRequestSchema = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    input: Type.Union([Type.String(), Type.Array(InputItemSchema)], {
      description: 'a string or an array of input items',
    }),
    instructions: Nullable(Type.String({ description: 'a string' })),
    max_output_tokens: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2, description: 'a number' })),
    top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'a number' })),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20, description: 'an integer' })),
    include: Nullable(
      Type.Array(Type.String({ description: 'a string' }), { description: 'an array of strings' }),
    ),
    stream: Nullable(Type.Boolean({ description: 'a boolean' })),
    stream_options: Nullable(
      Type.Object(
        { include_obfuscation: Nullable(Type.Boolean({ description: 'a boolean' })) },
        { description: 'an object', ...REQUEST_OBJECT },
      ),
    ),
    tools: Nullable(Type.Array(ResponsesToolSchema, { description: 'an array of tools' })),
    tool_choice: Nullable(
      Type.Union([Type.String({ description: 'a string' }), LooseObject('a tool choice object')], {
        description: '"none", "auto", "required" or {"type": "function", "name": ...}',
      }),
    ),
    parallel_tool_calls: Nullable(Type.Boolean({ description: 'a boolean' })),
    max_tool_calls: Nullable(Type.Integer({ minimum: 1, description: 'an integer' })),
    text: Nullable(
      Type.Object(
        {
          format: Nullable(TextFormatSchema),
          verbosity: Nullable(Type.String({ description: 'a string' })),
        },
        { description: 'an object', ...REQUEST_OBJECT },
      ),
    ),
    metadata: Nullable(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), {
        description: 'an object of strings',
        maxProperties: 16,
      }),
    ),
    user: samplingFields.user,
    safety_identifier: Nullable(Type.String({ description: 'a string' })),
    prompt_cache_key: Nullable(Type.String({ description: 'a string' })),
    store: Nullable(Type.Boolean({ description: 'a boolean' })),
    background: Nullable(Type.Boolean({ description: 'a boolean' })),
    previous_response_id: Nullable(Type.String({ description: 'a string' })),
    conversation: Type.Optional(Type.Unknown()),
    prompt: Type.Optional(Type.Unknown()),
    reasoning: Type.Optional(Type.Unknown()),
    service_tier: Nullable(Type.String({ description: 'a string' })),
    truncation: Nullable(Type.String({ description: 'a string' })),
    // vLLM's extra parameters of the Responses API.
    top_k: samplingFields.top_k,
    seed: samplingFields.seed,
    stop: samplingFields.stop,
    repetition_penalty: samplingFields.repetition_penalty,
    logit_bias: samplingFields.logit_bias,
    ignore_eos: samplingFields.ignore_eos,
    skip_special_tokens: samplingFields.skip_special_tokens,
    include_stop_str_in_output: samplingFields.include_stop_str_in_output,
    priority: samplingFields.priority,
    cache_salt: samplingFields.cache_salt,
    structured_outputs: samplingFields.structured_outputs,
    request_id: Nullable(Type.String({ minLength: 1, maxLength: 256, description: 'a string' })),
  },
  REQUEST_OBJECT,
);
export type ResponsesRequest = Static<typeof ResponsesRequestSchema>;
