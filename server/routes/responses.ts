import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import {
  ApiError,
  echoed,
  internalError,
  invalidRequest,
  notSupported,
  type OpenAiErrorBody,
} from '../api-error.js';
import { prepareChatRun, startChatRun } from '../chat-generation.js';
import { chatOutputReader } from '../chat-output.js';
import { type EventStreamFormat, sendEventStream, shuttingDown, typedEventFrame } from '../generation.js';
import { ChoiceLogprobs, checkNumTop } from '../logprobs.js';
import { assistantMessage, choiceFeeder, type OutputBlock, OutputBlocks } from '../output-blocks.js';
import { randomHex } from '../request-id.js';
import { type ResponseEvent, ResponseEventLog } from '../response-events.js';
import { ResponseItems } from '../response-output.js';
import { chatRequestOf, listedInputItems } from '../responses-input.js';
import type { ChatMessage } from '../schemas/chat-request.js';
import { errorResponses } from '../schemas/responses.js';
import { type ResponsesRequest, ResponsesRequestSchema } from '../schemas/responses-request.js';
import type { ServerState } from '../server-state.js';
import { answeredModel } from '../serving-stack.js';

/** The Responses API's server-sent events: each names its type, and none follows the last. */
function responseEventFormat(): EventStreamFormat & {
  next(): number;
  errorEvent(body: OpenAiErrorBody): ResponseEvent;
} {
  let sequence = 0;
  const errorEvent = ({ error }: OpenAiErrorBody): ResponseEvent => ({
    type: 'error',
    code: error.code,
    message: error.message,
    param: error.param,
    sequence_number: sequence++,
  });
  return {
    next: () => sequence++,
    errorEvent,
    frame: typedEventFrame,
    error: (body) => typedEventFrame(errorEvent(body)),
    end: null,
  };
}

function responseNotFound(id: string, param: string | null): ApiError {
  return new ApiError(
    404,
    'invalid_request_error',
    'response_not_found',
    `Response with id '${echoed(id)}' not found.`,
    param,
  );
}

/**
 * POST /v1/responses: OpenAI's Responses API, served as vLLM serves it for models without a
 * reasoning format: the request is read as a chat completion (server/responses-input.ts), runs
 * through the same template, tool calling and sampling, and comes back as a response object, or
 * as its stream of typed events (response.created … response.completed).
 */
async function serveResponse(state: ServerState, reply: FastifyReply, body: ResponsesRequest) {
  const store = state.responses;
  if (body.store === true && !store)
    throw notSupported(
      'store',
      'store: true on a server that keeps no responses (start it with --max-stored-responses N; or send store: false and the conversation so far in `input`)',
    );
  let history: readonly ChatMessage[] = [];
  if (body.previous_response_id != null) {
    if (!store)
      throw notSupported(
        'previous_response_id',
        'previous_response_id on a server that keeps no responses (start it with --max-stored-responses N; or send the conversation so far in `input`)',
      );
    const previous = store.get(body.previous_response_id);
    if (!previous) throw responseNotFound(body.previous_response_id, 'previous_response_id');
    if (!previous.conversation)
      throw invalidRequest(
        `Previous response '${echoed(body.previous_response_id)}' is still in progress.`,
        'previous_response_id',
      );
    history = previous.conversation;
  }
  const background = body.background === true;
  if (background) {
    if (!store)
      throw notSupported(
        'background',
        'background: true on a server that keeps no responses (start it with --max-stored-responses N)',
      );
    if (body.store === false)
      throw invalidRequest('background can only be used when `store` is true.', 'background');
  }
  // OpenAI's default: stored unless the client says not to (where the server keeps any).
  const stored = store !== null && body.store !== false;
  const { chat, conversation } = chatRequestOf(body, history);
  const inputItems = listedInputItems(body.input);
  const run = await prepareChatRun(state, chat);
  const { stack, tools } = run;
  const reasoningParser = state.settings.reasoningParser;
  if ((tools.output || reasoningParser) && chat.logprobs)
    throw notSupported(
      'include',
      'include "message.output_text.logprobs" together with tools or a --reasoning-parser',
    );
  const numTop = chat.logprobs
    ? checkNumTop(chat.top_logprobs ?? 0, 'top_logprobs', state.settings.maxLogprobs)
    : null;
  const id = body.request_id ?? `resp_${randomHex()}`;
  const generation = await startChatRun(state, reply, chat, run, {
    requestId: id,
    numTop,
    detached: background,
  });
  const logprobs = numTop === null ? null : new ChoiceLogprobs(stack.tokenizer, numTop);
  const reader = chatOutputReader(tools.output, reasoningParser, body.stream === true);
  const createdAt = Math.floor(Date.now() / 1000);
  // The request's settings as the response object repeats them (OpenAI's fields, their defaults filled in).
  const response = (status: string, output: object[], finished: boolean) => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: null,
    metadata: body.metadata ?? {},
    model: answeredModel(stack, body.model),
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    prompt_cache_key: body.prompt_cache_key ?? null,
    reasoning: null,
    safety_identifier: body.safety_identifier ?? null,
    service_tier: body.service_tier ?? 'auto',
    store: stored,
    // What it samples with: the request's, else the model's default (--generation-config).
    temperature: generation.sampling.temperature,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? (body.tools?.length ? 'auto' : 'none'),
    tools: body.tools ?? [],
    top_logprobs: body.top_logprobs ?? 0,
    top_p: generation.sampling.topP,
    truncation: body.truncation ?? 'disabled',
    usage: finished
      ? {
          input_tokens: generation.usage.prompt_tokens,
          input_tokens_details: { cached_tokens: generation.cachedPromptTokens },
          output_tokens: generation.usage.completion_tokens,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: generation.usage.total_tokens,
        }
      : null,
    user: body.user ?? null,
  });
  const feed = choiceFeeder(reader, logprobs);
  // A background stream's events stay with the response, to be read again from any point.
  const log = background && body.stream === true ? new ResponseEventLog() : undefined;
  let cancelled = false;

  /** The finished response, stored with its conversation (its own answer last) when it is to be kept. */
  const kept = <T extends Record<string, unknown>>(finished: T, blocks: readonly OutputBlock[]): T => {
    if (store && stored)
      store.put(id, {
        response: finished,
        conversation: [...conversation, assistantMessage(blocks)],
        inputItems,
        events: log,
      });
    return finished;
  };

  /** A response's status once its output ended. */
  const endStatus = (incomplete: boolean) =>
    cancelled ? 'cancelled' : incomplete ? 'incomplete' : 'completed';

  /** The whole output as the finished response (kept when it is to be stored). */
  const finished = async () => {
    const [choice] = await generation.collect(1);
    const shape = new ResponseItems(logprobs !== null);
    const blocks = new OutputBlocks();
    feed(blocks, { text: choice.text, tokenIds: choice.tokenIds, scores: choice.logprobs, end: true });
    const incomplete = choice.finishReason === 'length';
    shape.incomplete = incomplete || cancelled;
    blocks.finish();
    return kept(response(endStatus(incomplete), shape.items(blocks.blocks), true), blocks.blocks);
  };
  const format = responseEventFormat();
  if (background && store) {
    // OpenAI's background mode: answered at once (or streamed), run on; GET polls it, or streams
    // its events again from any point, and cancel ends it.
    const running = (log ? streamInto(log) : finished()).catch((error: unknown) => {
      const { code, message } = (error instanceof ApiError ? error : internalError(id)).toBody().error;
      const failed = { ...response('failed', [], true), error: { code, message } };
      store.put(id, { response: failed, conversation: null, inputItems, events: log });
      log?.push({ type: 'response.failed', response: failed, sequence_number: format.next() });
    });
    if (log) void running.finally(() => log.end());
    const started = response('in_progress', [], false);
    store.put(id, {
      response: started,
      conversation: null,
      inputItems,
      events: log,
      cancel: async () => {
        cancelled = true;
        generation.controller.abort();
        await running;
      },
    });
    if (!log) return started;
    // The client that started it reads the log like any later one: leaving does not end the response.
    return sendEventStream(reply, { endedByShutdown: false }, log.follow(), format);
  }
  if (!body.stream) return finished();

  /** A background stream's events into its log, and the end of a generation shutdown cut short. */
  async function streamInto(into: ResponseEventLog): Promise<void> {
    for await (const event of events()) into.push(event);
    if (generation.endedByShutdown) into.push(format.errorEvent(shuttingDown().toBody()));
  }

  async function* events(): AsyncGenerator<ResponseEvent> {
    const queue: Record<string, unknown>[] = [];
    const shape = new ResponseItems(logprobs !== null, (event) => queue.push(event));
    const blocks = new OutputBlocks(shape);
    const drain = function* () {
      for (const event of queue.splice(0)) yield { ...event, sequence_number: format.next() };
    };
    yield {
      type: 'response.created',
      response: response('in_progress', [], false),
      sequence_number: format.next(),
    };
    yield {
      type: 'response.in_progress',
      response: response('in_progress', [], false),
      sequence_number: format.next(),
    };
    let incomplete = false;
    for await (const delta of generation.deltas()) {
      feed(blocks, {
        text: delta.text ?? '',
        tokenIds: delta.tokenIds,
        scores: delta.logprobs ?? [],
        end: Boolean(delta.finishReason),
      });
      if (delta.finishReason) incomplete = delta.finishReason === 'length';
      yield* drain();
    }
    shape.incomplete = incomplete || cancelled;
    blocks.finish();
    yield* drain();
    const status = endStatus(incomplete);
    const final = kept(response(status, shape.items(blocks.blocks), true), blocks.blocks);
    // OpenAI has no event for a cancelled response: its stream just ends (GET shows it cancelled).
    if (status !== 'cancelled')
      yield { type: `response.${status}`, response: final, sequence_number: format.next() };
  }
  return sendEventStream(reply, generation, events(), format);
}

export const responsesRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/responses',
    // The response object is built whole here (its fields follow OpenAI's Response); serialized as it is.
    { schema: { body: ResponsesRequestSchema, response: { 200: Type.Unknown(), ...errorResponses } } },
    (request, reply) => serveResponse(app.loom, reply, request.body),
  );
  const Params = Type.Object({ id: Type.String() });
  // A query string's values are text (the app does not coerce types).
  const RetrieveQuery = Type.Object(
    {
      stream: Type.Optional(
        Type.Union([Type.Literal('true'), Type.Literal('false')], { description: '"true" or "false"' }),
      ),
      starting_after: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'a sequence number' })),
    },
    { additionalProperties: false },
  );
  app.get(
    '/v1/responses/:id',
    { schema: { params: Params, querystring: RetrieveQuery } },
    async (request, reply) => {
      const stored = app.loom.responses?.get(request.params.id);
      if (!stored) throw responseNotFound(request.params.id, null);
      const { stream, starting_after } = request.query;
      if (stream !== 'true') {
        if (starting_after !== undefined)
          throw invalidRequest('starting_after is only allowed with stream=true.', 'starting_after');
        return stored.response;
      }
      if (!stored.events)
        throw invalidRequest(
          'Only a response created with background: true and stream: true can be streamed again; GET it without stream=true.',
          'stream',
        );
      const after = starting_after === undefined ? -1 : Number(starting_after);
      return sendEventStream(
        reply,
        { endedByShutdown: false },
        stored.events.follow(after),
        responseEventFormat(),
      );
    },
  );
  app.post('/v1/responses/:id/cancel', { schema: { params: Params } }, async (request) => {
    const { id } = request.params;
    const stored = app.loom.responses?.get(id);
    if (!stored) throw responseNotFound(id, null);
    if (stored.response.background !== true)
      throw invalidRequest('Only responses created with background: true can be cancelled.');
    await stored.cancel?.();
    return (app.loom.responses?.get(id) ?? stored).response;
  });
  // OpenAI's list of a stored response's input items: newest first unless order is asc, paged by item ids.
  const ListQuery = Type.Object(
    {
      // A query string's values are text (the app does not coerce types).
      limit: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'an integer from 1 to 100' })),
      order: Type.Optional(
        Type.Union([Type.Literal('asc'), Type.Literal('desc')], { description: '"asc" or "desc"' }),
      ),
      after: Type.Optional(Type.String({ description: 'an item id' })),
      before: Type.Optional(Type.String({ description: 'an item id' })),
    },
    { additionalProperties: false },
  );
  app.get(
    '/v1/responses/:id/input_items',
    { schema: { params: Params, querystring: ListQuery } },
    async (request) => {
      const stored = app.loom.responses?.get(request.params.id);
      if (!stored) throw responseNotFound(request.params.id, null);
      const { order = 'desc', after, before } = request.query;
      const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
      if (limit < 1 || limit > 100) throw invalidRequest('limit must be from 1 to 100.', 'limit');
      let items = order === 'asc' ? [...stored.inputItems] : [...stored.inputItems].reverse();
      const cut = (id: string, param: string) => {
        const at = items.findIndex((item) => item.id === id);
        if (at < 0) throw invalidRequest(`No input item with id '${echoed(id)}' in this response.`, param);
        return at;
      };
      if (after !== undefined) items = items.slice(cut(after, 'after') + 1);
      if (before !== undefined) items = items.slice(0, cut(before, 'before'));
      const data = items.slice(0, limit);
      return {
        object: 'list',
        data,
        first_id: data[0]?.id ?? null,
        last_id: data[data.length - 1]?.id ?? null,
        has_more: items.length > limit,
      };
    },
  );
  app.delete('/v1/responses/:id', { schema: { params: Params } }, async (request) => {
    const stored = app.loom.responses?.get(request.params.id);
    if (!stored) throw responseNotFound(request.params.id, null);
    // A background response still running ends first, or it would store itself again when done.
    await stored.cancel?.();
    app.loom.responses?.delete(request.params.id);
    return { id: request.params.id, object: 'response', deleted: true };
  });
};
