import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvLayout } from '../memory/kv-layout.js';
import type { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import type { LoraAdapter } from '../model/lora-adapter.js';

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
}

export interface StepPlan {
  sequences: SequenceStep[];
}

/**
 * The engine contract of ARCHITECTURE.md. Page bookkeeping (which page ids) is memory/'s;
 * page storage (what is behind a page id) is the engine's.
 */
export interface Engine {
  readonly kind: EngineKind;
  readonly config: LlamaConfig;
  readonly pool: PagePool;
  readonly kvLayout: KvLayout;
  /**
   * Runs one iteration: writes K/V of every token into its sequence's pages and returns logits,
   * row-major [rows × vocab], rows in plan order (1 row per 'last', tokens.length per 'all').
   */
  step(plan: StepPlan): Promise<Float32Array>;
  /** Copies an adapter's weights into the pages `layout` names. */
  writeAdapter(layout: AdapterLayout, adapter: LoraAdapter): void;
  /** Frees storage and native sessions; the engine is unusable afterwards. */
  close(): Promise<void>;
}

export function logitRows(plan: StepPlan): number {
  let rows = 0;
  for (const s of plan.sequences) rows += s.logits === 'last' ? 1 : s.logits === 'all' ? s.tokens.length : 0;
  return rows;
}
