import type { KvCache } from '../memory/kv-cache.js';
import { BlockKeys, prefixOrigin, prefixRoot } from '../memory/prefix-cache.js';
import type { RequestState } from './request-registry.js';
import type { Sequence } from './sequence.js';

/**
 * The scheduler's side of automatic prefix caching (the cache itself is memory/prefix-cache.ts,
 * its pages memory/kv-cache.ts): which cached blocks a waiting sequence starts from, what an
 * admission counts, which computed blocks join the cache, and when a request's later choices wait
 * for its first one's prompt. Built only when the KV cache has a prefix cache.
 */
export class PrefixReuse {
  constructor(
    private readonly kv: KvCache,
    /** The adapter's weights id (a new one per registration and in-place swap); 0 for none known. */
    private readonly weightsIdOf: (adapter: string) => number,
    private readonly ownerOf: (seq: Sequence) => RequestState | undefined,
  ) {}

  /**
   * Each waiting sequence starts from the cached blocks its tokens begin with, as far as they go,
   * leaving its last token to run (its logits pick the next one). The policy then plans its chunk
   * from there, with those blocks held (KvCache.probePrefix). A sequence that scores its prompt
   * runs all of it, as vLLM's do. Call before the policy plans.
   */
  probe(waiting: readonly Sequence[]): void {
    this.kv.clearProbes();
    const tpp = this.kv.layout.tokensPerPage;
    for (const seq of waiting) {
      if (seq.scoresPrompt || this.kv.has(seq.seqId)) continue;
      const maxBlocks = Math.floor((seq.numTokens - 1) / tpp);
      const keys = this.blockKeysOf(seq).upTo(seq.tokenIds, maxBlocks);
      seq.numCachedTokens = this.kv.probePrefix(seq.seqId, keys, maxBlocks);
    }
  }

  /**
   * A request's other choices wait for its first choice's prompt blocks (vLLM's parallel sampling
   * shares them): admitted in the step that computes them they would each compute the whole
   * prompt again, since the engines write a step's K/V only when it ends (vLLM's kernels write
   * them before attention reads, so it shares them within the step). One step later they find the
   * prompt cached and compute only its last partial block.
   */
  waitsForFirstChoice(seq: Sequence): boolean {
    if (seq.choiceIndex === 0 || seq.scoresPrompt) return false;
    const first = this.ownerOf(seq)?.sequences[0];
    if (!first || first.isFinished) return false;
    const tpp = this.kv.layout.tokensPerPage;
    const shared = Math.floor((seq.numPromptTokens - 1) / tpp) * tpp;
    return seq.numCachedTokens < shared && first.numCachedTokens < shared;
  }

  /**
   * An admitted sequence starts its K/V under its current root; its first admission counts its
   * hit (vLLM's prefix_cache_queries / _hits), and a request's first choice's gives vLLM's
   * num_cached_tokens. Call before the queues admit it (which marks it scheduled).
   */
  noteAdmission(seq: Sequence): void {
    seq.kvRoot = this.blockKeysOf(seq).root;
    if (seq.wasScheduled) return;
    const counters = this.kv.prefixCache?.counters;
    if (counters && !seq.scoresPrompt) {
      counters.numQueriedTokens += seq.numTokens;
      counters.numHitTokens += seq.numCachedTokens;
    }
    const state = this.ownerOf(seq);
    if (state && seq.choiceIndex === 0) state.stream.cachedPromptTokens = seq.numCachedTokens;
  }

  /**
   * A step computed the sequence's K/V up to numCachedTokens: its full blocks join the cache,
   * unless its adapter's weights changed since it was admitted (its K/V then mix old and new
   * weights; a recompute after preemption starts clean).
   */
  commit(seq: Sequence): void {
    if (seq.kvRoot === null) return;
    const root = this.rootOf(seq);
    if (root !== seq.kvRoot) return;
    const numBlocks = Math.floor(seq.numCachedTokens / this.kv.layout.tokensPerPage);
    this.kv.commitBlocks(
      seq.seqId,
      seq.numCachedTokens,
      this.blockKeysOf(seq, root).upTo(seq.tokenIds, numBlocks),
      prefixOrigin(seq.adapter, this.weightsIdFor(seq)),
    );
  }

  /** An adapter's weights `weightsId` are gone (unloaded, replaced in place): so are their blocks. */
  retireWeights(adapter: string, weightsId: number): void {
    this.kv.prefixCache?.retire(prefixOrigin(adapter, weightsId));
  }

  /** What a sequence's K/V depend on besides its tokens: its adapter's current weights and its salt. */
  private rootOf(seq: Sequence): string {
    return prefixRoot(seq.adapter, this.weightsIdFor(seq), seq.cacheSalt);
  }

  /** The sequence's adapter's current weights id; 0 for the base model. */
  private weightsIdFor(seq: Sequence): number {
    return seq.adapter === null ? 0 : this.weightsIdOf(seq.adapter);
  }

  /** The sequence's block keys under `root`, its current one (new weights, new keys). */
  private blockKeysOf(seq: Sequence, root = this.rootOf(seq)): BlockKeys {
    if (seq.blockKeys?.root !== root) seq.blockKeys = new BlockKeys(root, this.kv.layout.tokensPerPage);
    return seq.blockKeys;
  }
}
