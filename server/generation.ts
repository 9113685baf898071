import { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { StreamStalledError } from '../scheduler/generation-error.js';
import {
  AdmissionError,
  type FinishReason,
  type GenerationDelta,
  type GenerationRequest,
  type GenerationStream,
  type TokenLogprobs,
} from '../scheduler/request.js';
import { ApiError, serviceUnavailable } from './api-error.js';
import { engineApiError, engineFailureOf } from './engine-error.js';
import type { RequestMetrics } from './request-metrics.js';
import type { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';

/**
 * What serveCompletion reads of one prompt's choices: a Generation (one request to the
 * scheduler), or a beam search (server/beam-search-generation.ts) run to its end.
 */
export interface ChoiceSource {
  readonly endedByShutdown: boolean;
  readonly usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  /** Prompt tokens the prefix cache held when the request was first scheduled (vLLM's num_cached_tokens). */
  readonly cachedPromptTokens: number;
  deltas(): AsyncGenerator<GenerationDelta>;
  collect(n: number): Promise<FinishedChoice[]>;
  /** Ends it before its response (another prompt of its batch was refused). */
  cancel(): Promise<void>;
}

/**
 * A request's life as the server tracks it, from submit until its response is done: counted in
 * flight (ServerState.track), so shutdown ends it (`shutdown.ended`, and an abort); aborted when
 * `cancel` fires or the client's connection closes before the response finished, which frees its
 * pages within a step. A detached one (a background response) outlives its reply: it is counted
 * until `release` and ended only by `cancel` or shutdown.
 */
export function requestLifetime(
  state: ServerState,
  reply: FastifyReply,
  cancel?: AbortSignal,
  detached = false,
): { controller: AbortController; shutdown: { ended: boolean }; release: () => void } {
  const controller = new AbortController();
  cancel?.addEventListener('abort', () => controller.abort(), { once: true });
  const shutdown = { ended: false };
  const untrack = state.track(() => {
    shutdown.ended = true;
    controller.abort();
  });
  if (detached) return { controller, shutdown, release: untrack };
  const response = reply.raw;
  response.once('finish', untrack);
  response.once('close', () => {
    untrack();
    if (!response.writableFinished) controller.abort();
  });
  return { controller, shutdown, release: untrack };
}

/**
 * One submitted request, seen from a route. Submitting and the first delta happen before the
 * response starts, so a refusal (AdmissionError → 503 with Retry-After) or a failure before
 * the first token is still an ordinary error response, even for `stream: true`. From submit
 * until its response is done it counts as in flight (ServerState.track): shutdown drains it,
 * or ends it with a 503 (before the response began) or a final error event (streams).
 */
export class Generation implements ChoiceSource {
  private firstTokenAt: number | null = null;
  private readonly finishReasons: (FinishReason | null)[];
  private isLogged = false;

  private constructor(
    readonly controller: AbortController,
    private readonly iterator: AsyncIterator<GenerationDelta>,
    private first: IteratorResult<GenerationDelta> | null,
    private readonly countTokens: () => { prompt: number; completion: number; cachedPrompt: number },
    private readonly shutdown: { ended: boolean },
    private readonly request: Omit<GenerationRequest, 'signal'>,
    private readonly startedAt: number,
    /** Where the line for the finished generation goes (the request's logger), or null for none. */
    private readonly log: FastifyBaseLogger | null,
    /** A detached generation's end of being in flight, called once its deltas end; null: its reply's. */
    private readonly release: (() => void) | null = null,
  ) {
    this.finishReasons = new Array(request.sampling.n).fill(null);
  }

  /** Submits and waits for the first delta (requestLifetime says when it is aborted). */
  static async start(
    stack: ServingStack,
    state: ServerState,
    request: Omit<GenerationRequest, 'signal'>,
    reply: FastifyReply,
    metrics: RequestMetrics | null = null,
    /** Aborts this generation from outside (another prompt of its batch was refused). */
    cancel?: AbortSignal,
    /** Runs on after its reply (a background response): in flight until its deltas end. */
    detached = false,
  ): Promise<Generation> {
    const startedAt = performance.now();
    const { controller, shutdown, release } = requestLifetime(state, reply, cancel, detached);
    let stream: GenerationStream;
    let iterator: AsyncIterator<GenerationDelta>;
    let first: IteratorResult<GenerationDelta>;
    try {
      try {
        stream = stack.scheduler.submit({ ...request, signal: controller.signal });
        iterator = stream[Symbol.asyncIterator]();
        first = await iterator.next();
      } catch (error) {
        // Early abort (--slo-ttft) ends a queued request before its first token: a refusal too.
        if (error instanceof AdmissionError) metrics?.countRefusal(error.reason);
        throw error;
      }
      if (shutdown.ended) {
        await iterator.return?.();
        throw shuttingDown();
      }
    } catch (error) {
      // An attached lifetime ends with its (error) reply; a detached one here.
      if (detached) release();
      throw error;
    }
    return new Generation(
      controller,
      iterator,
      first,
      () => ({
        prompt: stream.promptTokens,
        completion: stream.completionTokens,
        cachedPrompt: stream.cachedPromptTokens,
      }),
      shutdown,
      request,
      startedAt,
      state.settings.logRequests ? reply.log : null,
      detached ? release : null,
    );
  }

  /** How it samples: the request's fields, the model's defaults where it gave none. */
  get sampling(): GenerationRequest['sampling'] {
    return this.request.sampling;
  }

  /** Shutdown ended this generation before it finished. */
  get endedByShutdown(): boolean {
    return this.shutdown.ended;
  }

  get usage(): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
    const { prompt, completion } = this.countTokens();
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  /** Prompt tokens the prefix cache held when the request was first scheduled (vLLM's num_cached_tokens). */
  get cachedPromptTokens(): number {
    return this.countTokens().cachedPrompt;
  }

  async *deltas(): AsyncGenerator<GenerationDelta> {
    try {
      let next = this.first ?? (await this.iterator.next());
      this.first = null;
      while (!next.done) {
        this.observe(next.value);
        yield next.value;
        next = await this.iterator.next();
      }
    } finally {
      await this.iterator.return?.();
      this.logFinished();
      this.release?.();
    }
  }

  /** Ends the generation before its response (another prompt of its batch was refused). */
  async cancel(): Promise<void> {
    this.controller.abort();
    await this.iterator.return?.();
  }

  /**
   * Runs every choice to its end: the text, tokens (with their log-probabilities when asked),
   * finish reason and stop reason of each of the `n` choices.
   */
  async collect(n: number): Promise<FinishedChoice[]> {
    const choices = Array.from(
      { length: n },
      (): FinishedChoice => ({
        text: '',
        finishReason: null,
        tokenIds: [],
        logprobs: [],
        promptLogprobs: null,
      }),
    );
    for await (const delta of this.deltas()) {
      const choice = choices[delta.index];
      choice.text += delta.text;
      choice.tokenIds.push(...delta.tokenIds);
      if (delta.logprobs) choice.logprobs.push(...delta.logprobs);
      if (delta.promptLogprobs) choice.promptLogprobs = delta.promptLogprobs;
      if (delta.finishReason) choice.finishReason = delta.finishReason;
      if (delta.stopReason !== undefined) choice.stopReason = delta.stopReason;
    }
    if (this.shutdown.ended) throw shuttingDown();
    return choices;
  }

  private observe(delta: GenerationDelta): void {
    if (this.firstTokenAt === null && delta.tokenIds.length > 0) this.firstTokenAt = performance.now();
    if (delta.finishReason) this.finishReasons[delta.index] = delta.finishReason;
  }

  /** vLLM's per-request line, once the generation ended (finished, aborted, or failed: null reasons). */
  private logFinished(): void {
    if (this.isLogged || !this.log) return;
    this.isLogged = true;
    const { prompt, completion } = this.countTokens();
    const ms = (at: number | null) => (at === null ? null : Math.round(at - this.startedAt));
    this.log.info(
      {
        requestId: this.request.requestId,
        adapter: this.request.adapter,
        promptTokens: prompt,
        generatedTokens: completion,
        timeToFirstTokenMs: ms(this.firstTokenAt),
        totalMs: ms(performance.now()),
        finishReasons: this.finishReasons,
      },
      'generation finished',
    );
  }
}

/** One choice run to its end, as non-streaming responses list it. */
export interface FinishedChoice {
  text: string;
  finishReason: FinishReason | null;
  tokenIds: number[];
  /** One per token of tokenIds when the request asked for log-probabilities; else empty. */
  logprobs: TokenLogprobs[];
  /** The prompt's tokens 1.. scored (echo with logprobs); else null. */
  promptLogprobs: TokenLogprobs[] | null;
  /** The stop string or stop token id that ended it (finishReason 'stop'). */
  stopReason?: string | number;
}

/**
 * A stream whose client read nothing for --stream-stall-timeout while output waited: the last event
 * such a client finds when it reads again (OpenAI's 408 Request Timeout, as an event).
 */
function streamStalled(error: StreamStalledError): ApiError {
  return new ApiError(408, 'invalid_request_error', 'stream_stalled', error.message);
}

/** The error body an event stream ends with, once it has sent its 200. */
function streamErrorBody(error: unknown): ReturnType<ApiError['toBody']> {
  const failure = engineFailureOf(error);
  if (error instanceof ApiError) return error.toBody();
  if (error instanceof StreamStalledError) return streamStalled(error).toBody();
  if (failure) return engineApiError(failure).toBody();
  return {
    error: {
      message: 'The generation failed.',
      type: 'server_error',
      param: null,
      code: 'internal_error',
    },
  };
}

/** How a route writes its server-sent events: chat and completions' `data:` lines, or the Responses API's. */
export interface EventStreamFormat {
  frame(event: object): string;
  /** The frame of an error that ends the stream. */
  error(body: ReturnType<ApiError['toBody']>): string;
  /** The frame after the last event, if any. */
  end: string | null;
}

/** An event that names its type in an `event:` line too, as the Responses and Messages APIs stream them. */
export function typedEventFrame(event: object): string {
  return `event: ${(event as { type: string }).type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** One `data: {json}` per object, an error as its body, then `data: [DONE]` (OpenAI's completions streams). */
const DATA_LINES: EventStreamFormat = {
  frame: (event) => `data: ${JSON.stringify(event)}\n\n`,
  error: (body) => `data: ${JSON.stringify(body)}\n\n`,
  end: 'data: [DONE]\n\n',
};

export function shuttingDown(): ApiError {
  return serviceUnavailable('server_shutting_down', 'The server is shutting down.');
}

/**
 * Sends `events` as server-sent events, by default one `data: {json}` per object, then `data:
 * [DONE]`. A generation that shutdown ended gets a final shutdown error event; a failing one ends
 * with an error event instead of a torn connection.
 */
export function sendEventStream(
  reply: FastifyReply,
  generation: { readonly endedByShutdown: boolean },
  events: AsyncIterable<object>,
  format: EventStreamFormat = DATA_LINES,
): FastifyReply {
  async function* frames(): AsyncGenerator<string> {
    try {
      for await (const event of events) yield format.frame(event);
      if (generation.endedByShutdown) yield format.error(shuttingDown().toBody());
    } catch (error) {
      // A client that stopped reading is the client's doing: one line, no stack.
      if (error instanceof StreamStalledError) reply.log.warn(error.message);
      else reply.log.error({ err: error }, 'generation failed mid-stream');
      yield format.error(streamErrorBody(error));
    }
    if (format.end !== null) yield format.end;
  }
  reply.header('content-type', 'text/event-stream; charset=utf-8');
  reply.header('cache-control', 'no-cache');
  reply.header('x-accel-buffering', 'no');
  return reply.send(Readable.from(frames(), { objectMode: false }));
}
