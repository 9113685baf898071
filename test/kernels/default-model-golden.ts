import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine, SequenceStep } from '../../kernels/engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { DEFAULT_MODEL_ROOT, defaultModelPaths } from '../../model/default-model.js';
import { loadAdapter } from '../../model/load-adapter.js';
import { type LoadedModel, loadModel } from '../../model/load-model.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { storeAdapter } from '../../model/stored-adapter.js';

/**
 * The embedded default model's golden numbers: what `training/train_default_model.py`'s own torch
 * forward pass (an oracle independent of Loom's reference engine) gave for a few prompts, for
 * the base model and each demo adapter, and its losses on held-out text.
 */
export interface GoldenModelRun {
  /** Logits at every prompt position, of the vocabulary ids 0, stride, 2·stride, … */
  logits: number[][];
  /** argmax over the whole vocabulary at every prompt position. */
  argmax: number[];
  /** Greedy continuation (full recomputation per token in torch). */
  greedy: number[];
  /** Smallest top-1 − top-2 logit gap along the greedy continuation. */
  min_greedy_margin: number;
}

export interface GoldenPrompt {
  kind: 'completion' | 'chat';
  prompt: string | { role: string; content: string }[];
  ids: number[];
  models: Record<string, GoldenModelRun>;
}

export interface Golden {
  column_stride: number;
  prompts: GoldenPrompt[];
  held_out: Record<string, { text: string; ids: number[]; loss: Record<string, number> }>;
}

export const BASE = 'base';

export function readGolden(): Golden {
  return JSON.parse(readFileSync(join(DEFAULT_MODEL_ROOT, 'golden.json'), 'utf8')) as Golden;
}

export interface DefaultModelUnderTest {
  model: LoadedModel;
  adapters: Map<string, LoraAdapter>;
}

export async function loadDefaultModel(): Promise<DefaultModelUnderTest> {
  const paths = defaultModelPaths();
  const model = await loadModel(paths.modelDir);
  const adapters = new Map<string, LoraAdapter>();
  for (const { name, dir } of paths.adapters) adapters.set(name, await loadAdapter(name, dir, model.config));
  return { model, adapters };
}

/** A pool big enough for every golden sequence at once plus the adapters. */
export function goldenPool(model: LoadedModel): PagePool {
  return new PagePool(24_000, model.config.hiddenSize);
}

/** Runs sequences on an engine whose pool is `pool`: adapters written once, KV pages per sequence. */
export class GoldenRunner {
  private readonly kv: KvCache;
  private readonly layouts = new Map<string, AdapterLayout>();
  private nextSeq = 1;

  constructor(
    private readonly engine: Engine,
    adapters: Map<string, LoraAdapter>,
  ) {
    this.kv = new KvCache(engine.pool, kvLayout(engine.config));
    for (const [name, adapter] of adapters) {
      const pages = engine.pool.allocate(adapterPageCount(engine.config, adapter), 'adapter');
      const layout = layoutAdapter(engine.config, adapter, pages);
      engine.writeAdapter(layout, storeAdapter(adapter));
      this.layouts.set(name, layout);
    }
  }

  private layout(model: string): AdapterLayout | null {
    if (model === BASE) return null;
    const layout = this.layouts.get(model);
    if (!layout) throw new Error(`no adapter ${model}`);
    return layout;
  }

  private step(
    seqId: number,
    tokens: number[],
    startPos: number,
    model: string,
    logits: SequenceStep['logits'],
  ) {
    if (!this.kv.reserve(seqId, startPos + tokens.length)) throw new Error('golden pool too small');
    return {
      seqId,
      tokens,
      startPos,
      pageTable: this.kv.pageTable(seqId),
      adapter: this.layout(model),
      logits,
    };
  }

  /**
   * Logits of every position of each (ids, model) pair, all in one mixed-adapter prefill step;
   * then `greedyTokens` batched greedy decode steps through the KV cache. Returns per pair its
   * logit rows and its greedy tokens.
   */
  async run(
    cases: { ids: number[]; model: string }[],
    greedyTokens: number,
  ): Promise<{ rows: Float32Array[]; greedy: number[] }[]> {
    const vocab = this.engine.config.vocabSize;
    const seqs = cases.map((c) => ({ ...c, seqId: this.nextSeq++ }));
    const prefill = await this.engine.step({
      sequences: seqs.map((s) => this.step(s.seqId, s.ids, 0, s.model, 'all')),
    });
    const results: { rows: Float32Array[]; greedy: number[] }[] = [];
    let offset = 0;
    for (const s of seqs) {
      const rows = s.ids.map((_, i) => prefill.slice((offset + i) * vocab, (offset + i + 1) * vocab));
      offset += s.ids.length;
      results.push({ rows, greedy: [argmax(rows[rows.length - 1])] });
    }
    for (let t = 1; t < greedyTokens; t++) {
      const logits = await this.engine.step({
        sequences: seqs.map((s, i) =>
          this.step(s.seqId, [results[i].greedy[t - 1]], s.ids.length + t - 1, s.model, 'last'),
        ),
      });
      for (let i = 0; i < seqs.length; i++)
        results[i].greedy.push(argmax(logits.subarray(i * vocab, (i + 1) * vocab)));
    }
    for (const s of seqs) this.kv.free(s.seqId);
    return results;
  }
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * max |actual − golden| / max |golden| over the golden columns of one row: the error relative to
 * the row's scale (logits near zero make elementwise relative errors meaningless).
 */
export function rowRelativeError(actual: Float32Array, golden: number[], stride: number): number {
  let diff = 0;
  let scale = 0;
  for (let j = 0; j < golden.length; j++) {
    diff = Math.max(diff, Math.abs(actual[j * stride] - golden[j]));
    scale = Math.max(scale, Math.abs(golden[j]));
  }
  return diff / scale;
}

/** Mean next-token cross-entropy of `ids` under logit rows (row i predicts ids[i + 1]), in f64. */
export function meanCrossEntropy(rows: Float32Array[], ids: number[]): number {
  let total = 0;
  for (let i = 0; i + 1 < ids.length; i++) {
    const row = rows[i];
    let max = Number.NEGATIVE_INFINITY;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    total += Math.log(sum) + max - row[ids[i + 1]];
  }
  return total / (ids.length - 1);
}

/** Every (prompt, model) pair of the golden file, in file order. */
export function goldenCases(golden: Golden): { prompt: GoldenPrompt; model: string; run: GoldenModelRun }[] {
  return golden.prompts.flatMap((prompt) =>
    Object.entries(prompt.models).map(([model, run]) => ({ prompt, model, run })),
  );
}
