import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import {
  AdmissionError,
  type GenerationDelta,
  type GenerationRequest,
  greedySampling,
  type TokenLogprobs,
} from '../scheduler/request.js';
import { type BeamSearchParams, beamSearch, type FinishedBeam } from './beam-search.js';
import { type ChoiceSource, type FinishedChoice, requestLifetime, shuttingDown } from './generation.js';
import type { RequestMetrics } from './request-metrics.js';
import type { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';

/** A `use_beam_search` request: its sampling's `n` is the beam width. */
export interface BeamSearchRequest extends Omit<GenerationRequest, 'signal' | 'onScheduled'> {
  /** vLLM's length_penalty (beam-search.ts's score). */
  lengthPenalty: number;
}

/** The search stopped because its request was aborted (the client left, or a sibling prompt was refused). */
class BeamSearchAborted extends Error {}

/**
 * One prompt's beam search (beam-search.ts), run to its end before the response starts, as vLLM
 * answers it: a stream gets each choice whole, in one chunk. Every round is one request per live
 * beam to the scheduler (one token, 2·n top logprobs, the request's adapter, priority and
 * cache_salt), so the rounds batch with other traffic and reuse its cached prefix blocks; the
 * first round also scores the prompt when prompt logprobs are asked.
 */
export class BeamSearchGeneration implements ChoiceSource {
  private constructor(
    private readonly choices: FinishedChoice[],
    readonly cachedPromptTokens: number,
    private readonly numPromptTokens: number,
    private readonly shutdown: { ended: boolean },
  ) {}

  static async start(
    stack: ServingStack,
    state: ServerState,
    request: BeamSearchRequest,
    reply: FastifyReply,
    metrics: RequestMetrics | null = null,
    cancel?: AbortSignal,
  ): Promise<BeamSearchGeneration> {
    const startedAt = performance.now();
    const { controller, shutdown } = requestLifetime(state, reply, cancel);
    const { sampling, promptTokens } = request;
    const width = sampling.n;
    const params: BeamSearchParams = {
      width,
      maxTokens: sampling.maxTokens,
      lengthPenalty: request.lengthPenalty,
      endTokenIds: new Set([...sampling.stopTokenIds, ...(sampling.ignoreEos ? [] : stack.eosTokenIds)]),
      minTokens: sampling.logitEdits?.minTokens ?? 0,
      keepEndToken: sampling.includeStopStrInOutput ?? false,
    };
    let rounds = 0;
    let numStepRequests = 0;
    let cachedPromptTokens = 0;
    let promptLogprobs: TokenLogprobs[] | null = null;
    const scoreBeam = async (generated: readonly number[], round: number, beam: number) => {
      numStepRequests++;
      const stream = stack.scheduler.submit({
        requestId: `${request.requestId}-beam-${round}-${beam}`,
        promptTokens: [...promptTokens, ...generated],
        adapter: request.adapter,
        sampling: greedySampling(1, {
          temperature: sampling.temperature,
          seed: sampling.seed,
          // The row is all a round needs: whatever is sampled, the beam search decides what ends.
          ignoreEos: true,
          logprobs: Math.max(2 * width, sampling.logprobs ?? 0),
          promptLogprobs: round === 0 ? (sampling.promptLogprobs ?? null) : null,
        }),
        ...(request.priority === undefined ? {} : { priority: request.priority }),
        ...(request.cacheSalt === undefined ? {} : { cacheSalt: request.cacheSalt }),
        signal: controller.signal,
      });
      let row: TokenLogprobs | undefined;
      for await (const delta of stream) {
        if (delta.logprobs?.length) row = delta.logprobs[0];
        if (delta.promptLogprobs) promptLogprobs = delta.promptLogprobs;
      }
      if (round === 0) cachedPromptTokens = stream.cachedPromptTokens;
      if (!row) {
        if (shutdown.ended) throw shuttingDown();
        if (controller.signal.aborted) throw new BeamSearchAborted();
        throw new Error(`beam search round ${round}: the scheduler ended beam ${beam} without a token`);
      }
      return row;
    };
    let beams: FinishedBeam[] | null;
    try {
      beams = await beamSearch(promptTokens.length, params, (live) => {
        const round = rounds++;
        return Promise.all(live.map((generated, beam) => scoreBeam(generated, round, beam)));
      });
    } catch (error) {
      // One beam's request failed: the round's others stop at once, their pages freed.
      controller.abort();
      if (error instanceof AdmissionError) metrics?.countRefusal(error.reason);
      if (!(error instanceof BeamSearchAborted)) throw error;
      beams = null;
    }
    const skipSpecialTokens = sampling.skipSpecialTokens ?? true;
    const choices: FinishedChoice[] = beams
      ? beams.map((beam) => ({
          text: stack.tokenizer.decode(beam.tokenIds, skipSpecialTokens),
          finishReason: beam.finishReason,
          tokenIds: beam.tokenIds,
          logprobs: sampling.logprobs == null ? [] : beam.logprobs,
          promptLogprobs,
          ...(beam.stopTokenId === undefined ? {} : { stopReason: beam.stopTokenId }),
        }))
      : Array.from({ length: width }, () => ({
          text: '',
          finishReason: 'abort' as const,
          tokenIds: [],
          logprobs: [],
          promptLogprobs: null,
        }));
    if (state.settings.logRequests)
      logFinished(reply.log, request, choices, {
        rounds,
        numStepRequests,
        totalMs: Math.round(performance.now() - startedAt),
      });
    return new BeamSearchGeneration(choices, cachedPromptTokens, promptTokens.length, shutdown);
  }

  get endedByShutdown(): boolean {
    return this.shutdown.ended;
  }

  /** vLLM's usage of a beam search: the prompt once, and every returned beam's tokens. */
  get usage(): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
    const completion = this.choices.reduce((sum, c) => sum + c.tokenIds.length, 0);
    return {
      prompt_tokens: this.numPromptTokens,
      completion_tokens: completion,
      total_tokens: this.numPromptTokens + completion,
    };
  }

  /** Each choice whole, in one delta, best first. */
  async *deltas(): AsyncGenerator<GenerationDelta> {
    for (const [index, c] of this.choices.entries()) {
      yield {
        index,
        text: c.text,
        tokenIds: c.tokenIds,
        finishReason: c.finishReason,
        ...(c.stopReason === undefined ? {} : { stopReason: c.stopReason }),
        ...(c.logprobs.length > 0 ? { logprobs: c.logprobs } : {}),
        ...(c.promptLogprobs ? { promptLogprobs: c.promptLogprobs } : {}),
      };
    }
  }

  async collect(): Promise<FinishedChoice[]> {
    if (this.shutdown.ended) throw shuttingDown();
    return this.choices;
  }

  /** Nothing runs once started: the search ended before. */
  async cancel(): Promise<void> {}
}

function logFinished(
  log: FastifyBaseLogger,
  request: BeamSearchRequest,
  choices: FinishedChoice[],
  run: { rounds: number; numStepRequests: number; totalMs: number },
): void {
  log.info(
    {
      requestId: request.requestId,
      adapter: request.adapter,
      promptTokens: request.promptTokens.length,
      beamWidth: request.sampling.n,
      ...run,
      generatedTokens: choices.map((c) => c.tokenIds.length),
      finishReasons: choices.map((c) => c.finishReason),
    },
    'beam search finished',
  );
}
