import type { Engine, SequenceStep } from '../../kernels/engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { storeAdapter } from '../../model/stored-adapter.js';

/** A reference engine with its pool, KV cache and resident adapters, as a scheduler would hold them. */
export interface ReferenceHarness {
  engine: ReferenceEngine;
  pool: PagePool;
  kv: KvCache;
  load(adapter: LoraAdapter): AdapterLayout;
  /**
   * Writes the adapter into the reference engine and `others` on shared pages: consecutive ones
   * (what the onnx engine reads in place through a slot), or with `scatterSeed` shuffled ones
   * (what it gathers as segments).
   */
  loadInto(
    others: ReadonlyArray<Pick<Engine, 'writeAdapter'>>,
    adapter: LoraAdapter,
    scatterSeed?: number,
  ): AdapterLayout;
  /** A step for `seqId`: grows its page table to fit `tokens` after `startPos`. */
  sequenceStep(
    seqId: number,
    tokens: number[],
    startPos: number,
    adapter: AdapterLayout | null,
    logits: SequenceStep['logits'],
  ): SequenceStep;
}

/**
 * Builds the harness. With `shuffleSeed`, every free page is taken and given back in a seeded
 * random order first, so page tables and adapter rows land on scattered, non-contiguous pages.
 */
export function referenceHarness(
  weights: ModelWeights,
  numPages: number,
  shuffleSeed?: number,
): ReferenceHarness {
  const pool = new PagePool(numPages, weights.config.hiddenSize);
  if (shuffleSeed !== undefined) {
    const all = pool.allocate(pool.numFree, 'kv');
    pool.free(shuffled(all, shuffleSeed));
  }
  const engine = ReferenceEngine.create(weights, pool);
  const kv = new KvCache(pool, kvLayout(weights.config));
  return {
    engine,
    pool,
    kv,
    load(adapter) {
      const pages = pool.allocate(adapterPageCount(weights.config, adapter), 'adapter');
      const layout = layoutAdapter(weights.config, adapter, pages);
      engine.writeAdapter(layout, storeAdapter(adapter));
      return layout;
    },
    loadInto(others, adapter, scatterSeed) {
      const count = adapterPageCount(weights.config, adapter);
      const pages =
        scatterSeed === undefined
          ? pool.allocateContiguous(count, 'adapter')
          : Int32Array.from(shuffled(pool.allocate(count, 'adapter'), scatterSeed));
      if (!pages) throw new Error('test pool has no run of free pages long enough');
      const layout = layoutAdapter(weights.config, adapter, pages);
      for (const engine of [this.engine, ...others]) engine.writeAdapter(layout, storeAdapter(adapter));
      return layout;
    },
    sequenceStep(seqId, tokens, startPos, adapter, logits) {
      if (!kv.reserve(seqId, startPos + tokens.length)) throw new Error('test pool too small');
      return { seqId, tokens, startPos, pageTable: kv.pageTable(seqId), adapter, logits };
    },
  };
}

/** A seeded Fisher–Yates shuffle (mulberry32), so failures reproduce. */
export function shuffled<T>(items: ArrayLike<T>, seed: number): T[] {
  const out = Array.from(items);
  const random = seededUniform(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Deterministic uniforms in [0, 1). */
export function seededUniform(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Row `row` of a row-major [rows, width] matrix. */
export function rowOf(matrix: Float32Array, row: number, width: number): Float32Array {
  return matrix.subarray(row * width, (row + 1) * width);
}

/** Token ids that are valid for a vocabulary of `vocab`, deterministic per seed. */
export function randomTokens(count: number, vocab: number, seed: number): number[] {
  const random = seededUniform(seed);
  return Array.from({ length: count }, () => Math.floor(random() * vocab));
}
