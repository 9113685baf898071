import type { FastifyReply } from 'fastify';
import type { FinishReason, GenerationDelta } from '../scheduler/request.js';
import { Generation, sendEventStream } from './generation.js';
import { newRequestId } from './request-id.js';
import { resolveAdapter, type SamplingBody, samplingParams } from './sampling-params.js';
import type { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';

/** What /v1/completions and /v1/chat/completions differ in; the flow around it is shared. */
export interface CompletionRoute<B extends SamplingBody, O extends string, C extends object> {
  idPrefix: 'cmpl' | 'chatcmpl';
  /** The response's `object`, and the one each streamed chunk carries. */
  object: O;
  chunkObject: string;
  /** Refuses what the route does not support, then builds the prompt's token ids. */
  promptTokens(stack: ServingStack, body: B): number[];
  requestedMaxTokens(body: B): number | null;
  /** Used when the client gave no max tokens; null means the rest of the context. */
  defaultMaxTokens: number | null;
  /** One finished choice, as the non-streaming response lists it (the index is added). */
  choice(text: string, finishReason: FinishReason | null): C;
  /** Choices streamed before any token, one per index (chat's assistant role). */
  openingChoice?(index: number): object;
  /** One delta that carries text or a finish reason, as a streamed choice. */
  deltaChoice(delta: GenerationDelta): object;
}

/**
 * Request → generation → response for an OpenAI completions-style route: resolves the adapter,
 * checks and converts the body, submits, then either collects every choice or streams chunks.
 */
export async function serveCompletion<B extends SamplingBody, O extends string, C extends object>(
  state: ServerState,
  reply: FastifyReply,
  body: B,
  route: CompletionRoute<B, O, C>,
) {
  const stack = state.requireStack();
  const adapter = await resolveAdapter(stack, body.model);
  const prompt = route.promptTokens(stack, body);
  const sampling = samplingParams(stack, body, {
    numPromptTokens: prompt.length,
    requestedMaxTokens: route.requestedMaxTokens(body),
    defaultMaxTokens: route.defaultMaxTokens,
    maxN: state.maxN,
  });
  const id = newRequestId(route.idPrefix);
  const created = Math.floor(Date.now() / 1000);
  const generation = await Generation.start(
    stack,
    state,
    { requestId: id, promptTokens: prompt, adapter, sampling },
    reply,
    state.requestMetrics,
  );
  const head = { id, object: route.object, created, model: body.model };

  if (!body.stream) {
    const choices = await generation.collect(sampling.n);
    return {
      ...head,
      choices: choices.map((c, index) => ({ index, ...route.choice(c.text, c.finishReason) })),
      usage: generation.usage,
    };
  }
  const includeUsage =
    (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true;
  const chunkHead = { ...head, object: route.chunkObject };
  const chunk = (choice: object) => ({
    ...chunkHead,
    choices: [choice],
    ...(includeUsage ? { usage: null } : {}),
  });
  async function* events() {
    if (route.openingChoice) {
      for (let index = 0; index < sampling.n; index++) yield chunk(route.openingChoice(index));
    }
    for await (const delta of generation.deltas()) {
      if (delta.text || delta.finishReason) yield chunk(route.deltaChoice(delta));
    }
    if (includeUsage) yield { ...chunkHead, choices: [], usage: generation.usage };
  }
  return sendEventStream(reply, generation, events());
}
