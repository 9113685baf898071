import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvLayout } from '../memory/kv-layout.js';
import type { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import type { StoredLoraAdapter } from '../model/stored-adapter.js';
import type { LogitAdjustments } from './logit-adjustments.js';
import type { TokenLogprobs } from './logprobs.js';

export type EngineKind = 'reference' | 'onnx' | 'webgpu';

/** One sequence's share of an engine step. */
export interface SequenceStep {
  seqId: number;
  /** Tokens to run this step: the prompt (or a chunk of it) at prefill, one token at decode. */
  tokens: ArrayLike<number>;
  /** Tokens already in this sequence's KV cache; tokens[i] sits at position startPos + i. */
  startPos: number;
  /** The sequence's KV page table (see memory/kv-layout.ts), already big enough for startPos + tokens.length. */
  pageTable: Int32Array;
  /** The adapter every token of this sequence uses; null for the base model. */
  adapter: AdapterLayout | null;
  /** Which tokens need logits: the last one (generation), all (scoring), or none (a prefill chunk). */
  logits: 'last' | 'all' | 'none';
  /** Log-probabilities this sequence asks of the step (kernels/logprobs.ts's meaning); absent: none. */
  logprobs?: LogprobRequest;
}

/** What one sequence asks: its sampled token's log-probability and/or its prompt's (vLLM's prompt_logprobs). */
export interface LogprobRequest {
  /** Most likely tokens to list on the sampled row, 0..--max-logprobs. */
  topK: number;
  /** Whether the row sampled from (logits 'last') reports the sampled token's log-probability. */
  sampled: boolean;
  /**
   * Prompt log-probabilities: the logits after chunk token i score promptTargets[i], the prompt's
   * next token (at most tokens.length of them). These rows are scored, never sampled, and are not
   * among step()'s logit rows.
   */
  promptTargets?: Int32Array;
  /** Most likely tokens to list per prompt row (vLLM's prompt_logprobs), 0..--max-logprobs; default topK. */
  promptTopK?: number;
}

/** What sampleStep returns: the sampled ids, and the log-probabilities the plan's sequences asked for. */
export interface SampledStep {
  /** One token id per logit row, rows in plan order. */
  tokens: Int32Array;
  /** Per logit row: its sampled token's log-probabilities, or null where its sequence asked none. */
  logprobs: Array<TokenLogprobs | null>;
  /** Per plan sequence: one entry per promptTargets token, or null where it asked none. */
  promptLogprobs: Array<TokenLogprobs[] | null>;
}

export interface StepPlan {
  sequences: SequenceStep[];
}

/** One logit row's sampling settings (kernels/sample.ts's meaning) and its uniform draw in [0, 1). */
export interface RowSampling {
  /** 0 means greedy. */
  temperature: number;
  /** 0 means off. */
  topK: number;
  /** 1 means off. */
  topP: number;
  /** 0 or absent means off. */
  minP?: number;
  /** 1 or absent means off: typical decoding, on the host only (scheduler/step-tokens.ts). */
  typicalP?: number;
  /** Edits of the row's logits before it is sampled (kernels/logit-adjustments.ts); absent or null: none. */
  adjustments?: LogitAdjustments | null;
  uniform: number;
}

/**
 * A step failed for a reason outside the request (the device was lost, device memory ran out).
 * `clientMessage` is safe to show a client; the full message (driver text) is for the logs.
 * `fatal`: the engine can run no later step either.
 */
export class EngineFailure extends Error {
  constructor(
    message: string,
    readonly clientMessage: string,
    readonly fatal: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EngineFailure';
  }
}

/**
 * The engine contract of ARCHITECTURE.md. Page bookkeeping (which page ids) is memory/'s;
 * page storage (what is behind a page id) is the engine's.
 */
/** What one engine run takes without the engine splitting the step itself (the scheduler plans within it). */
export interface EngineRunLimits {
  /** New tokens of one sequence per step (onnx: padded attention grows with its square). */
  maxTokensPerSequence: number;
}

export interface Engine {
  readonly kind: EngineKind;
  /** Optional: run limits the scheduler should plan within; absent means none. */
  readonly runLimits?: EngineRunLimits;
  readonly config: LlamaConfig;
  readonly pool: PagePool;
  readonly kvLayout: KvLayout;
  /**
   * Runs one iteration: writes K/V of every token into its sequence's pages and returns logits,
   * row-major [rows × vocab], rows in plan order (1 row per 'last', tokens.length per 'all').
   */
  step(plan: StepPlan): Promise<Float32Array>;
  /**
   * Optional: step() that samples on the engine and returns one token id per logit row (same
   * rows, same order) instead of the logits; `sampling[i]` is row i's settings and uniform, and
   * a row's token equals sampleToken(adjustedLogits(row's logits, sampling[i].adjustments),
   * sampling[i], sampling[i].uniform). Log-probabilities the sequences ask for
   * (SequenceStep.logprobs) come back beside the ids, k values per row, computed on the engine
   * from the raw logits. Engines without it sample on the host (kernels/host-sampling.ts), from
   * step()'s logits.
   */
  sampleStep?(plan: StepPlan, sampling: ReadonlyArray<RowSampling>): Promise<SampledStep>;
  /** Optional: the failure that stopped the engine for good (device lost), or null while it can run. */
  fatalFailure?(): EngineFailure | null;
  /**
   * Copies an adapter's weights into the pages `layout` names, widening F16/BF16 host copies as it
   * writes (fillAdapterPages): no f32 copy of the whole adapter is made.
   */
  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void;
  /**
   * Optional: `layout`'s pages are about to be freed (evicted, unloaded, replaced in place), between
   * steps; the engine drops what it keeps for that placement (webgpu: its adapter slot).
   */
  releaseAdapter?(layout: AdapterLayout): void;
  /** Whether the engine steps on a thread of its own (the onnx engine's worker), not the caller's. */
  readonly ownThread?: boolean;
  /** Adapters an engine keeps copied into a faster place of its own (the onnx engine's stacked slots). */
  readonly numStackedAdapters?: number;
  /** Frees storage and native sessions; the engine is unusable afterwards. */
  close(): Promise<void>;
}

/** Logit rows one sequence gets: its last token's, each token's, or none (a sequence without tokens gets none). */
export function sequenceLogitRows(s: SequenceStep): number {
  if (s.logits === 'all') return s.tokens.length;
  return s.logits === 'last' && s.tokens.length > 0 ? 1 : 0;
}

export function logitRows(plan: StepPlan): number {
  let rows = 0;
  for (const s of plan.sequences) rows += sequenceLogitRows(s);
  return rows;
}

/** Flat token indices (into the plan's tokens, concatenated) that get logits, in the order Engine.step returns them. */
export function logitTokenIndices(plan: StepPlan): number[] {
  const indices: number[] = [];
  let start = 0;
  for (const s of plan.sequences) {
    const n = s.tokens.length;
    const rows = sequenceLogitRows(s);
    for (let i = n - rows; i < n; i++) indices.push(start + i);
    start += n;
  }
  return indices;
}
