/** What the server hands the scheduler, and what flows back: the scheduler's public contract. */
import type { TokenLogprobs } from '../kernels/logprobs.js';
import type { LogitEditParams } from './logit-edits.js';

export type { TokenLogprobs } from '../kernels/logprobs.js';

export interface SamplingParams {
  maxTokens: number;
  /** 0 means greedy. */
  temperature: number;
  /** 1 means off. */
  topP: number;
  /** 0 means off. */
  topK: number;
  /** 0 or absent means off (kernels/sample.ts). */
  minP?: number;
  /** 1 or absent means off: typical decoding (TGI's and LoRAX's typical_p; kernels/sample.ts). */
  typicalP?: number;
  /** Penalties, logit_bias, min_tokens (scheduler/logit-edits.ts); absent: none. */
  logitEdits?: LogitEditParams;
  /** Per-request seed; null draws one. */
  seed: number | null;
  /** Text that ends a choice; the match is not included in the output unless includeStopStrInOutput. */
  stop: string[];
  /** vLLM's include_stop_str_in_output: the stop string (or stop token's text) ends the output; absent: false. */
  includeStopStrInOutput?: boolean;
  /** vLLM's skip_special_tokens: special tokens are left out of the text; absent: true. */
  skipSpecialTokens?: boolean;
  /** Token ids that end a choice besides the model's EOS. */
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** Number of choices (independent sequences sharing the prompt). */
  n: number;
  /**
   * Log-probability of each sampled token plus this many most likely tokens (0..--max-logprobs),
   * as --logprobs-mode says (by default of the raw logits, vLLM's raw_logprobs); null or absent: none.
   */
  logprobs?: number | null;
  /**
   * vLLM's prompt_logprobs: score each prompt token after the first by the logits before it, with
   * this many most likely tokens (0..--max-logprobs) per position; null or absent: none.
   */
  promptLogprobs?: number | null;
}

/** Greedy sampling of `maxTokens` tokens, one choice, no stops; `overrides` change the rest. */
export function greedySampling(maxTokens: number, overrides: Partial<SamplingParams> = {}): SamplingParams {
  return {
    maxTokens,
    temperature: 0,
    topP: 1,
    topK: 0,
    seed: null,
    stop: [],
    stopTokenIds: [],
    ignoreEos: false,
    n: 1,
    ...overrides,
  };
}

export interface GenerationRequest {
  requestId: string;
  promptTokens: number[];
  /** Adapter name, or null for the base model. */
  adapter: string | null;
  sampling: SamplingParams;
  /** Aborting frees the request's sequences and pages within a step. */
  signal?: AbortSignal;
  /** Called once, when a step first schedules one of its choices (the end of its queue time). */
  onScheduled?: () => void;
  /**
   * vLLM's priority: under --scheduling-policy priority, lower runs first (ties by arrival) and
   * the highest is preempted first; absent: 0. Other policies refuse any but 0 (server/).
   */
  priority?: number;
  /**
   * vLLM's cache_salt: with prefix caching, only requests of the same salt share cached KV blocks
   * (a tenant's prompts cannot be probed by another's timing); absent: the unsalted cache.
   */
  cacheSalt?: string;
}

export type FinishReason = 'stop' | 'length' | 'abort';

/** New output of one choice. */
export interface GenerationDelta {
  index: number;
  text: string;
  tokenIds: number[];
  finishReason: FinishReason | null;
  /**
   * With finishReason 'stop': the stop string that matched, or the stop token id (EOS or one of
   * stopTokenIds) that ended the choice; vLLM's `stop_reason` is made from it.
   */
  stopReason?: string | number;
  /** With SamplingParams.logprobs: one entry per token of tokenIds. */
  logprobs?: TokenLogprobs[];
  /**
   * With SamplingParams.promptLogprobs, on the choice's first delta that carries a token: the
   * prompt's tokens 1.. scored by the logits before them (the first prompt token has none).
   */
  promptLogprobs?: TokenLogprobs[];
}

export interface GenerationStream extends AsyncIterable<GenerationDelta> {
  readonly promptTokens: number;
  /** Prompt tokens found in the prefix cache when the first choice was first admitted (vLLM's num_cached_tokens). */
  readonly cachedPromptTokens: number;
  /** Tokens generated so far over all choices. */
  readonly completionTokens: number;
}

/** Why admission refused a request: metrics count refusals by it. */
/** slo_unattainable: the first token would come past --slo-ttft (refused at submit, or aborted in the queue). */
export type AdmissionRefusal = 'queue_full' | 'shutting_down' | 'cannot_fit' | 'slo_unattainable';

/** A request the scheduler refuses at admission (queue full, cannot fit): the server answers 503/429. */
export class AdmissionError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    readonly reason: AdmissionRefusal = 'queue_full',
  ) {
    super(message);
    this.name = 'AdmissionError';
  }
}
