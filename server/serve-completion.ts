import type { FastifyReply } from 'fastify';
import type { TokenLogprobs } from '../kernels/logprobs.js';
import type { GenerationDelta, SamplingParams } from '../scheduler/request.js';
import type { Grammar } from '../structured/grammar-nodes.js';
import { invalidRequest } from './api-error.js';
import { BeamSearchGeneration } from './beam-search-generation.js';
import { type ChoiceSource, type FinishedChoice, Generation, sendEventStream } from './generation.js';
import { ChoiceLogprobs, type LogprobsAsked, type PromptLogprobs, promptLogprobsJson } from './logprobs.js';
import { clientRequestId, completionIds } from './request-id.js';
import {
  beamSearchOptions,
  cacheSalt,
  requestPriority,
  resolveAdapter,
  type SamplingBody,
  samplingParams,
} from './sampling-params.js';
import type { ServerState } from './server-state.js';
import { answeredModel, type ServingStack, type ServingTokenizer } from './serving-stack.js';

/** A finished or streamed choice as the routes shape it: vLLM's `stop_reason` already resolved. */
export interface ChoiceOutcome extends FinishedChoice {
  /** vLLM's `stop_reason`: the stop string, or the id of a stop_token_ids token, that ended it; else null. */
  stop_reason: string | number | null;
}

/** What a route knows of one choice besides its tokens, while it shapes it. */
export interface ChoiceView {
  /** Which prompt of the batch the choice continues. */
  promptIndex: number;
  promptTokens: readonly number[];
  tokenizer: ServingTokenizer;
  /** The choice's log-probability formatter when the request asked for them, else null. */
  logprobs: ChoiceLogprobs | null;
  /** Streaming: this is the first chunk of the choice that carries output (echo goes with it). */
  isFirstDelta: boolean;
  /** vLLM's return_token_ids: the choice gives its token ids, and the prompt's, beside its text. */
  returnTokenIds: boolean;
  /** vLLM's `prompt_logprobs` of the scored prompt tokens; null when the request asked none. */
  promptLogprobs(scored: readonly TokenLogprobs[] | null | undefined): PromptLogprobs | null;
}

/** What /v1/completions and /v1/chat/completions differ in; the flow around it is shared. */
export interface CompletionRoute<
  B extends SamplingBody,
  O extends string,
  C extends object,
  R extends object,
> {
  idPrefix: 'cmpl' | 'chatcmpl';
  /** The response's `object`, and the one each streamed chunk carries. */
  object: O;
  chunkObject: string;
  /**
   * Refuses what the route does not support, then builds the token ids of each prompt: one for
   * chat, one or more for completions (OpenAI's batch of prompts).
   */
  promptTokens(stack: ServingStack, body: B): number[][];
  requestedMaxTokens(body: B): number | null;
  /** A grammar the route's own fields ask the output to follow (chat's tool_choice), after promptTokens. */
  guide?(body: B): { param: string; grammar: () => Grammar } | null;
  /** The text after which that grammar applies (a reasoning model's end of reasoning); null: from the start. */
  guideAfter?: string | null;
  /** The log-probabilities the body asks for, checked (400 naming the field past the limits, --max-logprobs's among them). */
  logprobsAsked(body: B, stack: ServingStack, maxLogprobs: number): LogprobsAsked;
  /** Fields of the response besides its choices, from its first choice (chat's prompt_logprobs). */
  responseFields(first: FinishedChoice, view: ChoiceView): R;
  /** Used when the client gave no max tokens; null means the rest of the context. */
  defaultMaxTokens: number | null;
  /** One finished choice, as the non-streaming response lists it (the index is added). */
  choice(outcome: ChoiceOutcome, view: ChoiceView): C;
  /** Choices streamed before any token, one per index (chat's assistant role). */
  openingChoice?(index: number): object;
  /** Fields of a streamed chunk besides its choice (chat's prompt_logprobs, with the first token). */
  chunkFields?(delta: GenerationDelta, view: ChoiceView): object;
  /**
   * One delta that carries text, tokens or a finish reason, as a streamed choice at `index`; or
   * null, no chunk, when it has nothing to say yet (chat's tool calls hold back whitespace): never
   * when it ends the choice or carries log-probabilities.
   */
  deltaChoice(
    index: number,
    delta: GenerationDelta,
    stopReason: string | number | null,
    view: ChoiceView,
  ): object | null;
}

/**
 * vLLM's `stop_reason`: the matched stop string, or the stop token id when it is one the request
 * listed; null for EOS, length, and abort.
 */
function stopReasonOf(
  finishReason: FinishedChoice['finishReason'],
  stopReason: string | number | undefined,
  sampling: SamplingParams,
): string | number | null {
  if (finishReason !== 'stop' || stopReason === undefined) return null;
  if (typeof stopReason === 'string') return stopReason;
  return sampling.stopTokenIds.includes(stopReason) ? stopReason : null;
}

/**
 * Submits every prompt at once (each is its own request to the scheduler, as vLLM fans a batch
 * out). One refused prompt fails the request: the others are aborted at once (they may be
 * waiting in the queue for their first token) and cancelled before any answer.
 */
async function startAll(starts: ((cancel: AbortSignal) => Promise<ChoiceSource>)[]): Promise<ChoiceSource[]> {
  const batch = new AbortController();
  const settled = await Promise.allSettled(
    starts.map((start) =>
      start(batch.signal).catch((error: unknown) => {
        batch.abort();
        throw error;
      }),
    ),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<ChoiceSource>).value);
  await Promise.all(settled.map((s) => (s.status === 'fulfilled' ? s.value.cancel() : Promise.resolve())));
  throw failed.reason;
}

/** Deltas of several generations as they come, each tagged with its generation's position. */
async function* merged(generations: ChoiceSource[]): AsyncGenerator<{ at: number; delta: GenerationDelta }> {
  const iterators = generations.map((g) => g.deltas());
  const pending = new Map(iterators.map((it, at) => [at, it.next().then((result) => ({ at, result }))]));
  try {
    while (pending.size > 0) {
      const { at, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(at);
        continue;
      }
      pending.set(
        at,
        iterators[at].next().then((next) => ({ at, result: next })),
      );
      yield { at, delta: result.value };
    }
  } finally {
    await Promise.all(iterators.map((it) => it.return(undefined)));
  }
}

/** `withDetails` (--enable-prompt-tokens-details): vLLM's {cached_tokens}; otherwise null, as vLLM answers. */
function usageOf(generations: ChoiceSource[], withDetails: boolean) {
  const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  let cachedTokens = 0;
  for (const g of generations) {
    usage.prompt_tokens += g.usage.prompt_tokens;
    usage.completion_tokens += g.usage.completion_tokens;
    usage.total_tokens += g.usage.total_tokens;
    cachedTokens += g.cachedPromptTokens;
  }
  return { ...usage, prompt_tokens_details: withDetails ? { cached_tokens: cachedTokens } : null };
}

/**
 * Request → generations → response for an OpenAI completions-style route: resolves the adapter,
 * checks and converts the body, submits each prompt, then either collects every choice or
 * streams chunks. Choices are indexed prompt-major as OpenAI does: promptIndex × n + choice.
 */
export async function serveCompletion<
  B extends SamplingBody,
  O extends string,
  C extends object,
  R extends object,
>(state: ServerState, reply: FastifyReply, body: B, route: CompletionRoute<B, O, C, R>) {
  const stack = state.requireStack();
  const adapter = await resolveAdapter(stack, body.model, body.adapter_source);
  const prompts = route.promptTokens(stack, body);
  const asked = route.logprobsAsked(body, stack, state.settings.maxLogprobs);
  const priority = requestPriority(stack, body);
  const salt = cacheSalt(body);
  const samplings = prompts.map((prompt) => ({
    ...samplingParams(stack, body, {
      numPromptTokens: prompt.length,
      requestedMaxTokens: route.requestedMaxTokens(body),
      defaultMaxTokens: route.defaultMaxTokens,
      maxN: state.maxN,
      guide: route.guide?.(body) ?? null,
      guideAfter: route.guideAfter ?? null,
    }),
    logprobs: asked.numTop,
    promptLogprobs: asked.numTopPrompt,
  }));
  const beamSearch = beamSearchOptions(body, samplings[0], state.settings.maxLogprobs);
  const n = samplings[0].n;
  const returnTokenIds = body.return_token_ids === true;
  // One view per choice, index prompt-major; each carries its own text offsets.
  const views: ChoiceView[] = Array.from({ length: prompts.length * n }, (_, index) => ({
    promptIndex: Math.floor(index / n),
    promptTokens: prompts[Math.floor(index / n)],
    tokenizer: stack.tokenizer,
    logprobs:
      asked.numTop === null
        ? null
        : new ChoiceLogprobs(
            stack.tokenizer,
            asked.numTop,
            body.return_tokens_as_token_ids ?? state.settings.returnTokensAsTokenIds ?? false,
          ),
    isFirstDelta: true,
    returnTokenIds,
    promptLogprobs: (scored) =>
      asked.numTopPrompt === null ? null : promptLogprobsJson(stack.tokenizer, scored ?? []),
  }));
  checkBatchSize(stack, state, prompts.length, n);
  const { responseId: id, requestId } = completionIds(
    route.idPrefix,
    clientRequestId(reply.request, body.request_id),
  );
  const created = Math.floor(Date.now() / 1000);
  const generations = await startAll(
    prompts.map((promptTokens, p) => (cancel: AbortSignal) => {
      const request = {
        requestId: prompts.length === 1 ? requestId : `${requestId}-${p}`,
        promptTokens,
        adapter,
        sampling: samplings[p],
        priority,
        ...(salt === undefined ? {} : { cacheSalt: salt }),
      };
      return beamSearch
        ? BeamSearchGeneration.start(
            stack,
            state,
            { ...request, ...beamSearch },
            reply,
            state.requestMetrics,
            cancel,
          )
        : Generation.start(stack, state, request, reply, state.requestMetrics, cancel);
    }),
  );
  // vLLM leaves the fingerprint null; the field is there for clients that read it.
  const head = {
    id,
    object: route.object,
    created,
    model: answeredModel(stack, body.model),
    system_fingerprint: null,
  };

  if (!body.stream) {
    const perPrompt = await Promise.all(generations.map((g, p) => g.collect(samplings[p].n)));
    return {
      ...head,
      choices: perPrompt.flatMap((choices, p) =>
        choices.map((c, i) => ({
          index: p * n + i,
          ...route.choice(
            { ...c, stop_reason: stopReasonOf(c.finishReason, c.stopReason, samplings[p]) },
            views[p * n + i],
          ),
        })),
      ),
      ...route.responseFields(perPrompt[0][0], views[0]),
      usage: usageOf(generations, state.settings.promptTokensDetails),
    };
  }
  // vLLM's --enable-force-include-usage turns it on whatever the request says.
  const includeUsage =
    body.stream_options?.include_usage === true || state.settings.forceIncludeUsage === true;
  // vLLM's continuous_usage_stats: each chunk carries the usage so far, not null.
  const usageEachChunk = includeUsage && body.stream_options?.continuous_usage_stats === true;
  const chunkHead = { ...head, object: route.chunkObject };
  const chunk = (choice: object, extra: object = {}) => ({
    ...chunkHead,
    choices: [choice],
    ...extra,
    ...(includeUsage
      ? { usage: usageEachChunk ? usageOf(generations, state.settings.promptTokensDetails) : null }
      : {}),
  });
  async function* events() {
    if (route.openingChoice) {
      for (let index = 0; index < prompts.length * n; index++) yield chunk(route.openingChoice(index));
    }
    for await (const { at, delta } of merged(generations)) {
      // Tokens whose text is held back (a possible stop string) still carry their log-probabilities and ids.
      const hasScores =
        ((asked.numTop !== null || returnTokenIds) && delta.tokenIds.length > 0) || delta.promptLogprobs;
      if (!delta.text && !delta.finishReason && !hasScores) continue;
      const stopReason = stopReasonOf(delta.finishReason, delta.stopReason, samplings[at]);
      const view = views[at * n + delta.index];
      const choice = route.deltaChoice(at * n + delta.index, delta, stopReason, view);
      if (choice === null) continue;
      yield chunk(choice, route.chunkFields?.(delta, view));
      view.isFirstDelta = false;
    }
    if (includeUsage)
      yield {
        ...chunkHead,
        choices: [],
        usage: usageOf(generations, state.settings.promptTokensDetails),
      };
  }
  return sendEventStream(
    reply,
    {
      get endedByShutdown() {
        return generations.some((g) => g.endedByShutdown);
      },
    },
    events(),
  );
}

/**
 * Every prompt of a batch brings its `n` sequences: together they are bounded as one request's
 * choices are (--max-n, and the waiting queue they could never all fit in), so a batch cannot
 * take every sequence slot that `n` alone could not.
 */
function checkBatchSize(stack: ServingStack, state: ServerState, numPrompts: number, n: number): void {
  if (numPrompts === 1) return;
  const total = numPrompts * n;
  for (const [limit, what] of [
    [state.maxN, '--max-n'],
    [stack.maxWaiting, 'waiting-queue limit'],
  ] as const) {
    if (total > limit)
      throw invalidRequest(
        `A request's choices over all its prompts must be at most ${limit} (the server's ${what}); ${numPrompts} prompts × n=${n} is ${total}.`,
        'prompt',
      );
  }
}
