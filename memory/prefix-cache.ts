import { createHash } from 'node:crypto';
import type { PagePool, PageReclaimer } from './page-pool.js';

/**
 * Automatic prefix caching (vLLM's, over Loom's paged KV): a full block of a sequence's KV whose
 * tokens, with everything before them and what computed them (the adapter's weights, a cache
 * salt), match a block computed earlier is not computed again; the sequence's page table points at
 * the earlier block's pages. A block is keyed by a chain hash: its tokens and its parent block's key,
 * the first block's parent being the root (adapter, weights, salt), so equal keys mean equal
 * prefixes. Blocks stay cached after their sequences end, as idle blocks the pool reclaims
 * least-recently-used when it needs pages (a sequence's tail blocks go first). Blocks whose weights
 * are gone (an adapter unloaded or replaced in place) can never be found again: retire() drops
 * them at once rather than leave them to crowd live blocks out of the LRU order.
 */
export class CachedBlock {
  /** Sequences whose page tables hold this block; 0 means idle (reclaimable). */
  numRefs = 0;
  /** Its weights were retired while sequences held it: its pages go back when the last lets go. */
  retired = false;

  constructor(
    readonly key: string,
    /** The block's pages (every layer's K and V), owned by the cache while the block is cached. */
    readonly pages: Int32Array,
    /** The weights that computed it (prefixOrigin). */
    readonly origin: string,
  ) {}
}

/** Counters for metrics (vLLM's prefix_cache_queries / prefix_cache_hits); they only grow. */
export interface PrefixCacheCounters {
  /** Prompt tokens looked up (a sequence's tokens at its admission). */
  numQueriedTokens: number;
  /** Of those, tokens found cached. */
  numHitTokens: number;
  /** Blocks reclaimed for pages. */
  numEvictedBlocks: number;
  /** Blocks dropped because their weights went (retire) or the cache was reset. */
  numRetiredBlocks: number;
}

export class PrefixCache implements PageReclaimer {
  private readonly blocks = new Map<string, CachedBlock>();
  /** Idle blocks in the order they became idle: the first is reclaimed first. */
  private readonly idle = new Set<CachedBlock>();
  readonly counters: PrefixCacheCounters = {
    numQueriedTokens: 0,
    numHitTokens: 0,
    numEvictedBlocks: 0,
    numRetiredBlocks: 0,
  };

  constructor(
    private readonly pool: PagePool,
    readonly pagesPerBlock: number,
  ) {}

  /** The cached blocks that begin `keys`, as far as they go unbroken (no reference is taken). */
  lookup(keys: readonly string[], maxBlocks: number): CachedBlock[] {
    const hit: CachedBlock[] = [];
    for (let b = 0; b < Math.min(maxBlocks, keys.length); b++) {
      const block = this.blocks.get(keys[b]);
      if (!block) break;
      hit.push(block);
    }
    return hit;
  }

  /** A sequence's table takes the block. */
  acquire(block: CachedBlock): void {
    if (block.numRefs++ === 0) this.idle.delete(block);
  }

  /**
   * A sequence's table lets go of the block; the last one leaves it idle, most recently used, or
   * frees its pages if its weights were retired meanwhile.
   */
  release(block: CachedBlock): void {
    if (block.numRefs <= 0) throw new Error(`cached block ${block.key} released more often than acquired`);
    if (--block.numRefs > 0) return;
    if (block.retired) this.pool.free(block.pages);
    else this.idle.add(block);
  }

  /**
   * The weights `origin` names are gone: none of their blocks can be looked up again, idle ones
   * give their pages back now, and ones in use when their last sequence lets go. Between steps.
   */
  retire(origin: string): void {
    for (const block of this.blocks.values()) if (block.origin === origin) this.drop(block);
  }

  /**
   * vLLM's reset_prefix_cache: no block cached so far is found again, whatever computed it; idle
   * ones give their pages back now, ones in use when their last sequence lets go (what those
   * sequences compute from now on is cached anew). Between steps. Returns the blocks dropped.
   */
  reset(): number {
    const dropped = this.blocks.size;
    for (const block of this.blocks.values()) this.drop(block);
    return dropped;
  }

  private drop(block: CachedBlock): void {
    this.blocks.delete(block.key);
    this.counters.numRetiredBlocks++;
    if (block.numRefs > 0) {
      block.retired = true;
    } else {
      this.idle.delete(block);
      this.pool.free(block.pages);
    }
  }

  /**
   * Caches a block a sequence has just computed, with that sequence's reference; null when a block
   * of that key is cached already (computed by another sequence meanwhile: this one stays private).
   */
  insert(key: string, pages: Int32Array, origin: string): CachedBlock | null {
    if (this.blocks.has(key)) return null;
    const block = new CachedBlock(key, pages, origin);
    block.numRefs = 1;
    this.blocks.set(key, block);
    return block;
  }

  get numBlocks(): number {
    return this.blocks.size;
  }

  get numIdleBlocks(): number {
    return this.idle.size;
  }

  reclaimablePages(): number {
    return this.idle.size * this.pagesPerBlock;
  }

  reclaim(numPages: number): void {
    let freed = 0;
    for (const block of this.idle) {
      if (freed >= numPages) break;
      this.idle.delete(block);
      this.blocks.delete(block.key);
      this.pool.free(block.pages);
      this.counters.numEvictedBlocks++;
      freed += block.pages.length;
    }
  }

  /** Forgets every idle block (their pages go back to the pool); blocks in use stay. */
  clearIdle(): void {
    this.reclaim(this.reclaimablePages());
  }
}

/**
 * The chain keys of one sequence's full blocks, computed once each as its tokens grow. `root`
 * names what the KV depends on besides the tokens: the adapter and its weights, and a cache salt.
 */
export class BlockKeys {
  private readonly keys: string[] = [];

  constructor(
    readonly root: string,
    private readonly blockSize: number,
  ) {}

  /** Keys of the first `numBlocks` blocks of `tokens` (each block wholly within them). */
  upTo(tokens: readonly number[], numBlocks: number): readonly string[] {
    const n = Math.min(numBlocks, Math.floor(tokens.length / this.blockSize));
    for (let b = this.keys.length; b < n; b++) {
      const parent = b === 0 ? this.root : this.keys[b - 1];
      const ids = Int32Array.from(tokens.slice(b * this.blockSize, (b + 1) * this.blockSize));
      this.keys.push(createHash('sha256').update(parent).update(new Uint8Array(ids.buffer)).digest('base64'));
    }
    return this.keys.length === n ? this.keys : this.keys.slice(0, n);
  }
}

/** The root of a sequence's block keys: the adapter (null: the base model), its weights' id, a salt. */
export function prefixRoot(adapter: string | null, weightsId: number, salt: string | null): string {
  return JSON.stringify([adapter, weightsId, salt]);
}

/** The weights a block was computed with, whatever its salt: what PrefixCache.retire names. */
export function prefixOrigin(adapter: string | null, weightsId: number): string {
  return JSON.stringify([adapter, weightsId]);
}
