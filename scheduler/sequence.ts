import type { LogitAdjustments } from '../kernels/logit-adjustments.js';
import type { TokenLogprobs } from '../kernels/logprobs.js';
import type { TokenSampling } from '../kernels/sample.js';
import type { BlockKeys } from '../memory/prefix-cache.js';
import { NO_LOGIT_EDITS, SequenceLogitEdits } from './logit-edits.js';
import { mulberry32, sequenceSeed, type Uniform } from './prng.js';
import type { FinishReason, GenerationRequest } from './request.js';
import { type DecoderOptions, StopChecker, type TokenDecoder } from './stop-checker.js';

export type SequenceStatus = 'waiting' | 'running' | 'finished';

/**
 * One choice of a request: its tokens, where it stands in the KV cache and its own sampling
 * state. Preemption by recompute only resets `numCachedTokens`; tokens, text and the random
 * stream carry on, so a preempted choice continues exactly where it was.
 */
export class Sequence {
  status: SequenceStatus = 'waiting';
  /** Tokens whose K/V are already in the cache; the rest run at the next step that schedules it. */
  numCachedTokens = 0;
  finishReason: FinishReason | null = null;
  /** Holds a pin on its adapter (from admission until preemption or retirement). */
  holdsAdapterPin = false;
  /** Has been scheduled at least once (prefetch and prefix-cache hits are counted at the first time). */
  wasScheduled = false;
  /** Its blocks' prefix-cache keys (the scheduler's, kept while their root holds); null before the first probe. */
  blockKeys: BlockKeys | null = null;
  /** The prefix-cache root its K/V were computed under since its last admission; null before one. */
  kvRoot: string | null = null;
  /** Planned steps this sequence waited with its adapter not yet resident (see STARVATION_STEPS). */
  numStepsNotReady = 0;
  /** Prompt tokens followed by generated ones. */
  readonly tokenIds: number[];
  readonly numPromptTokens: number;
  /** Top tokens per sampled token's log-probabilities; null: none asked. */
  readonly numTopLogprobs: number | null;
  /** Top tokens per prompt position's log-probabilities (vLLM's prompt_logprobs); null: none asked. */
  readonly numTopPromptLogprobs: number | null;
  /** Prompt tokens 1.. scored so far (kept through preemption; a recompute does not score again). */
  readonly promptLogprobs: TokenLogprobs[] = [];
  /** The prompt's log-probabilities went out with the choice's first token. */
  hasSentPromptLogprobs = false;
  /**
   * Why this step's edits of its row could not be made (a structured-output guide that failed):
   * its request fails alone after the step, instead of the whole step with it.
   */
  editsFailure: Error | null = null;

  constructor(
    readonly seqId: number,
    readonly requestId: string,
    readonly choiceIndex: number,
    promptTokens: readonly number[],
    /** Adapter name, or null for the base model. */
    readonly adapter: string | null,
    readonly sampling: TokenSampling,
    /** This choice's seeded random stream, one draw per sampled token. */
    readonly uniform: Uniform,
    readonly stopChecker: StopChecker,
    logprobs: { numTop: number | null; numTopPrompt: number | null } = { numTop: null, numTopPrompt: null },
    /** Penalties, logit_bias and min_tokens' mask; null when the request asks none. */
    private readonly logitEdits: SequenceLogitEdits | null = null,
    /** vLLM's request priority: lower runs first under the priority policy. */
    readonly priority = 0,
    /** vLLM's cache_salt: part of its prefix-cache keys; null: none. */
    readonly cacheSalt: string | null = null,
  ) {
    this.tokenIds = [...promptTokens];
    this.numPromptTokens = promptTokens.length;
    this.numTopLogprobs = logprobs.numTop;
    this.numTopPromptLogprobs = logprobs.numTopPrompt;
  }

  get scoresPrompt(): boolean {
    return this.numTopPromptLogprobs !== null;
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }

  get numCompletionTokens(): number {
    return this.tokenIds.length - this.numPromptTokens;
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }

  /** A generated token. */
  appendToken(tokenId: number): void {
    this.tokenIds.push(tokenId);
    try {
      this.logitEdits?.recordOutput(tokenId);
    } catch (error) {
      this.editsFailure = error instanceof Error ? error : new Error(String(error));
    }
  }

  /** The edits of the row that samples this choice's next token (scheduler/logit-edits.ts). */
  logitAdjustments(): LogitAdjustments | null {
    try {
      return this.logitEdits?.adjustments(this.tokenIds, this.numPromptTokens) ?? null;
    } catch (error) {
      // The row is sampled without them and its token dropped: the scheduler fails the request.
      this.editsFailure = error instanceof Error ? error : new Error(String(error));
      return null;
    }
  }

  finish(reason: FinishReason): void {
    this.status = 'finished';
    this.finishReason = reason;
  }
}

export interface SequenceFactoryOptions {
  /** The model's EOS ids; dropped from the stop set when the request ignores EOS. */
  eosTokenIds: readonly number[];
  maxModelLen: number;
  newDecoder: (options: DecoderOptions) => TokenDecoder;
  /** Seed for requests that bring none. */
  drawSeed: () => number;
}

/** The request's n choices, numbered from `firstSeqId`. */
export function sequencesFor(
  req: GenerationRequest,
  firstSeqId: number,
  options: SequenceFactoryOptions,
): Sequence[] {
  const s = req.sampling;
  const seed = s.seed ?? options.drawSeed();
  const stopTokenIds = new Set(s.stopTokenIds);
  if (!s.ignoreEos) for (const id of options.eosTokenIds) stopTokenIds.add(id);
  const sampling: TokenSampling = {
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    minP: s.minP ?? 0,
    ...(s.typicalP !== undefined && s.typicalP < 1 ? { typicalP: s.typicalP } : {}),
  };
  const edits = s.logitEdits ?? NO_LOGIT_EDITS;
  const sequences: Sequence[] = [];
  for (let i = 0; i < s.n; i++) {
    const stopChecker = new StopChecker(
      {
        stop: s.stop,
        stopTokenIds,
        minTokens: edits.minTokens,
        includeStopStr: s.includeStopStrInOutput ?? false,
        maxTokens: s.maxTokens,
        promptLength: req.promptTokens.length,
        maxModelLen: options.maxModelLen,
      },
      options.newDecoder({ skipSpecialTokens: s.skipSpecialTokens ?? true }),
    );
    sequences.push(
      new Sequence(
        firstSeqId + i,
        req.requestId,
        i,
        req.promptTokens,
        req.adapter,
        sampling,
        mulberry32(sequenceSeed(seed, i)),
        stopChecker,
        { numTop: s.logprobs ?? null, numTopPrompt: s.promptLogprobs ?? null },
        SequenceLogitEdits.for(edits, req.promptTokens, stopTokenIds, options.eosTokenIds),
        req.priority ?? 0,
        req.cacheSalt ?? null,
      ),
    );
  }
  return sequences;
}
