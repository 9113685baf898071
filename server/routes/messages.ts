import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { anthropicErrorBody } from '../anthropic-errors.js';
import { prepareChatRun, startChatRun } from '../chat-generation.js';
import { chatOutputReader } from '../chat-output.js';
import { type EventStreamFormat, sendEventStream, typedEventFrame } from '../generation.js';
import { chatRequestOfMessages } from '../messages-input.js';
import {
  type CallBlock,
  choiceFeeder,
  type OutputBlock,
  type OutputBlockListener,
  OutputBlocks,
  type ReasoningBlock,
  type TextBlock,
} from '../output-blocks.js';
import { randomHex } from '../request-id.js';
import {
  CountTokensRequestSchema,
  type MessagesRequest,
  MessagesRequestSchema,
} from '../schemas/messages-request.js';
import type { ServerState } from '../server-state.js';
import { answeredModel } from '../serving-stack.js';

/** Anthropic's server-sent events: each names its type; an error is an `error` event; none ends them. */
const ANTHROPIC_EVENTS: EventStreamFormat = {
  frame: typedEventFrame,
  error: (body) => `event: error\ndata: ${JSON.stringify(anthropicErrorBody(500, body.error))}\n\n`,
  end: null,
};

/**
 * A thinking block's signature. Anthropic signs its own reasoning so that a client cannot alter
 * it; Loom cannot sign (nor check) it, and gives a random one, as vLLM does, for clients that
 * expect the field.
 */
function signature(): string {
  return randomHex();
}

/** A content block of the answer: thinking, text, or a tool_use with its arguments as an object. */
function contentBlock(block: OutputBlock) {
  if (block.kind === 'reasoning') return { type: 'thinking', thinking: block.text, signature: signature() };
  if (block.kind === 'text') return { type: 'text', text: block.text };
  let input: unknown = {};
  try {
    input = JSON.parse(block.arguments);
  } catch {
    // Arguments cut at max_tokens are not JSON: the block says so by stop_reason max_tokens.
  }
  return { type: 'tool_use', id: block.id, name: block.name, input };
}

/** Anthropic's stream events for each block as it changes. */
function blockEvents(emit: (event: object) => void): OutputBlockListener {
  return {
    started: (block, index) =>
      emit({
        type: 'content_block_start',
        index,
        content_block:
          block.kind === 'reasoning'
            ? { type: 'thinking', thinking: '' }
            : block.kind === 'text'
              ? { type: 'text', text: '' }
              : { type: 'tool_use', id: block.id, name: block.name, input: {} },
      }),
    reasoning: (_block: ReasoningBlock, index, thinking) =>
      emit({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking } }),
    text: (_block: TextBlock, index, text) =>
      emit({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } }),
    arguments: (_block: CallBlock, index, partial) =>
      emit({
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: partial },
      }),
    ended: (block, index) => {
      // Anthropic ends a thinking block with its signature.
      if (block.kind === 'reasoning')
        emit({
          type: 'content_block_delta',
          index,
          delta: { type: 'signature_delta', signature: signature() },
        });
      emit({ type: 'content_block_stop', index });
    },
  };
}

/**
 * POST /v1/messages: Anthropic's Messages API, as vLLM serves it (Claude Code and Anthropic's
 * SDKs can talk to Loom): the request is read as a chat completion (server/messages-input.ts),
 * runs through the same template, tool calling and sampling, and comes back as a message with
 * text and tool_use content blocks, or as Anthropic's event stream (message_start …
 * message_stop). Errors come in Anthropic's shape (routes/anthropic-errors.ts).
 */
async function serveMessages(state: ServerState, reply: FastifyReply, body: MessagesRequest) {
  const chat = chatRequestOfMessages(body, state.settings.reasoningParser !== null);
  const run = await prepareChatRun(state, chat);
  const { tools } = run;
  const id = `msg_${randomHex()}`;
  const generation = await startChatRun(state, reply, chat, run, { requestId: id, numTop: null });
  const feed = choiceFeeder(
    chatOutputReader(tools.output, state.settings.reasoningParser, body.stream === true),
    null,
  );
  const stopOf = (
    finishReason: string | null,
    stopReason: string | number | undefined,
    blocks: OutputBlocks,
  ) => {
    if (finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
    if (blocks.blocks.some((b) => b.kind === 'call')) return { stop_reason: 'tool_use', stop_sequence: null };
    // A stop string that ended it is one of stop_sequences (the only stop strings this route sets).
    if (typeof stopReason === 'string') return { stop_reason: 'stop_sequence', stop_sequence: stopReason };
    return { stop_reason: 'end_turn', stop_sequence: null };
  };
  const message = (content: object[], stop: object, outputTokens: number) => ({
    id,
    type: 'message',
    role: 'assistant',
    model: answeredModel(run.stack, body.model),
    content,
    ...stop,
    usage: { input_tokens: generation.usage.prompt_tokens, output_tokens: outputTokens },
  });

  if (!body.stream) {
    const [choice] = await generation.collect(1);
    const blocks = new OutputBlocks();
    feed(blocks, { text: choice.text, tokenIds: choice.tokenIds, scores: [], end: true });
    blocks.finish();
    return message(
      blocks.blocks.map(contentBlock),
      stopOf(choice.finishReason, choice.stopReason, blocks),
      generation.usage.completion_tokens,
    );
  }
  async function* events() {
    const queue: object[] = [];
    const blocks = new OutputBlocks(blockEvents((event) => queue.push(event)));
    yield {
      type: 'message_start',
      message: message([], { stop_reason: null, stop_sequence: null }, 0),
    };
    let finishReason: string | null = null;
    let stopReason: string | number | undefined;
    for await (const delta of generation.deltas()) {
      feed(blocks, {
        text: delta.text ?? '',
        tokenIds: delta.tokenIds,
        scores: [],
        end: Boolean(delta.finishReason),
      });
      if (delta.finishReason) {
        finishReason = delta.finishReason;
        stopReason = delta.stopReason;
      }
      yield* queue.splice(0);
    }
    blocks.finish();
    yield* queue.splice(0);
    yield {
      type: 'message_delta',
      delta: stopOf(finishReason, stopReason, blocks),
      usage: { output_tokens: generation.usage.completion_tokens },
    };
    yield { type: 'message_stop' };
  }
  return sendEventStream(reply, generation, events(), ANTHROPIC_EVENTS);
}

export const messagesRoute: FastifyPluginAsyncTypebox = async (app) => {
  // Errors of these routes in Anthropic's shape: its SDKs read them (server/error-handler.ts).
  const config = { errorFormat: 'anthropic' as const };
  app.post(
    '/v1/messages',
    { config, schema: { body: MessagesRequestSchema, response: { 200: Type.Unknown() } } },
    (request, reply) => serveMessages(app.loom, reply, request.body),
  );
  app.post(
    '/v1/messages/count_tokens',
    { config, schema: { body: CountTokensRequestSchema } },
    async (request) => {
      const run = await prepareChatRun(
        app.loom,
        chatRequestOfMessages(request.body, app.loom.settings.reasoningParser !== null),
      );
      return { input_tokens: run.tokens.length };
    },
  );
};
