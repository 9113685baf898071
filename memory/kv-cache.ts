import { blocksFor, type KvLayout } from './kv-layout.js';
import type { PagePool } from './page-pool.js';
import { type CachedBlock, PrefixCache } from './prefix-cache.js';

/**
 * Page tables of live sequences: grows them block by block and returns every page on free. With
 * prefix caching, a table may begin with blocks of the prefix cache (memory/prefix-cache.ts):
 * found at admission (probePrefix, then the first reserve attaches them), or blocks the sequence
 * computed and handed to the cache (commitBlocks); on free those are released to the cache, the
 * sequence's private pages go back to the pool.
 */
export class KvCache {
  private readonly tables = new Map<number, Int32Array>();
  /** Per sequence with cached blocks: block index → the cache's block (null: a private block). */
  private readonly shared = new Map<number, Array<CachedBlock | null>>();
  /** Cached blocks a waiting sequence would begin with, found by the current planning round's probe. */
  private readonly probes = new Map<number, CachedBlock[]>();
  /** Null when prefix caching is off. */
  readonly prefixCache: PrefixCache | null;

  constructor(
    readonly pool: PagePool,
    readonly layout: KvLayout,
    options: { prefixCaching?: boolean } = {},
  ) {
    this.prefixCache = options.prefixCaching ? new PrefixCache(pool, layout.pagesPerBlock) : null;
    if (this.prefixCache) pool.addReclaimer(this.prefixCache);
  }

  /**
   * Looks up a waiting sequence (no pages yet) in the prefix cache: the tokens its first blocks'
   * `keys` find cached, at most `maxBlocks` blocks. Until the next clearProbes, pagesNeeded counts
   * those blocks as held and the sequence's first reserve attaches them; nothing is taken before.
   */
  probePrefix(seqId: number, keys: readonly string[], maxBlocks: number): number {
    if (!this.prefixCache || this.tables.has(seqId)) return 0;
    const hit = this.prefixCache.lookup(keys, maxBlocks);
    if (hit.length > 0) this.probes.set(seqId, hit);
    else this.probes.delete(seqId);
    return hit.length * this.layout.tokensPerPage;
  }

  /** Forgets the last planning round's probes (the blocks they found may be reclaimed from now on). */
  clearProbes(): void {
    this.probes.clear();
  }

  /**
   * Pages a sequence needs beyond what it holds to cache `numTokens` tokens in all. A probed
   * sequence's cached blocks cost what taking them out of the reclaimable ones costs: nothing for
   * a block another sequence holds, a block's pages for an idle one.
   */
  pagesNeeded(seqId: number, numTokens: number): number {
    let held = (this.tables.get(seqId)?.length ?? 0) / this.layout.pagesPerBlock;
    if (held === 0) for (const block of this.probes.get(seqId) ?? []) if (block.numRefs > 0) held++;
    return Math.max(0, blocksFor(this.layout, numTokens) - held) * this.layout.pagesPerBlock;
  }

  canReserve(seqId: number, numTokens: number): boolean {
    return this.pool.canAllocate(this.pagesNeeded(seqId, numTokens));
  }

  /**
   * Grows the sequence's table to hold `numTokens` tokens; false (nothing taken) when the pool is
   * short. A probed sequence's first reserve begins its table with the probed blocks.
   */
  reserve(seqId: number, numTokens: number): boolean {
    this.takeProbedBlocks(seqId);
    const extra = this.pagesNeeded(seqId, numTokens);
    if (extra === 0) {
      if (!this.tables.has(seqId)) this.tables.set(seqId, new Int32Array(0));
      return true;
    }
    if (!this.pool.canAllocate(extra)) return false;
    const fresh = this.pool.allocate(extra, 'kv');
    const old = this.tables.get(seqId) ?? new Int32Array(0);
    const grown = new Int32Array(old.length + extra);
    grown.set(old);
    grown.set(fresh, old.length);
    this.tables.set(seqId, grown);
    return true;
  }

  /**
   * Begins a probed sequence's table with its probed blocks (no-op otherwise). A step's plan does
   * this for all its sequences before reserving any new page, so no allocation reclaims a block
   * the plan counted on.
   */
  takeProbedBlocks(seqId: number): void {
    const blocks = this.probes.get(seqId);
    if (!blocks || this.tables.has(seqId)) return;
    this.probes.delete(seqId);
    const ppb = this.layout.pagesPerBlock;
    const table = new Int32Array(blocks.length * ppb);
    blocks.forEach((block, b) => {
      this.prefixCache!.acquire(block);
      table.set(block.pages, b * ppb);
    });
    this.tables.set(seqId, table);
    this.shared.set(seqId, [...blocks]);
  }

  /**
   * The sequence's K/V now hold `numComputedTokens` tokens: its full blocks not yet cached go to
   * the prefix cache under `keys` (one per full block), computed with the weights `origin` names
   * (prefixOrigin), unless a block of that key is cached already (computed beside it: this copy
   * stays private).
   */
  commitBlocks(seqId: number, numComputedTokens: number, keys: readonly string[], origin: string): void {
    const cache = this.prefixCache;
    const table = this.tables.get(seqId);
    if (!cache || !table) return;
    const ppb = this.layout.pagesPerBlock;
    const numFull = Math.min(Math.floor(numComputedTokens / this.layout.tokensPerPage), keys.length);
    let blocks = this.shared.get(seqId);
    if (!blocks) {
      blocks = [];
      this.shared.set(seqId, blocks);
    }
    for (let b = blocks.length; b < numFull; b++) {
      blocks.push(cache.insert(keys[b], table.slice(b * ppb, (b + 1) * ppb), origin));
    }
  }

  pageTable(seqId: number): Int32Array {
    const table = this.tables.get(seqId);
    if (!table) throw new Error(`sequence ${seqId} has no KV pages`);
    return table;
  }

  has(seqId: number): boolean {
    return this.tables.has(seqId);
  }

  /** Pages freeing the sequence would make available: its private pages and the cached blocks only it holds. */
  pagesFreedBy(seqId: number): number {
    const table = this.tables.get(seqId);
    if (!table) return 0;
    let pages = table.length;
    for (const block of this.shared.get(seqId) ?? [])
      if (block && block.numRefs > 1) pages -= block.pages.length;
    return pages;
  }

  free(seqId: number): void {
    this.probes.delete(seqId);
    const table = this.tables.get(seqId);
    if (!table) return;
    this.tables.delete(seqId);
    const blocks = this.shared.get(seqId) ?? [];
    this.shared.delete(seqId);
    const ppb = this.layout.pagesPerBlock;
    const numPrivate = table.length - blocks.filter((block) => block !== null).length * ppb;
    const privatePages = new Int32Array(numPrivate);
    let at = 0;
    for (let b = 0; b * ppb < table.length; b++) {
      if (blocks[b]) continue;
      privatePages.set(table.subarray(b * ppb, (b + 1) * ppb), at);
      at += ppb;
    }
    this.pool.free(privatePages);
    // Tail blocks first, so the cache reclaims a prefix's end before its start.
    for (let b = blocks.length - 1; b >= 0; b--) {
      const block = blocks[b];
      if (block) this.prefixCache!.release(block);
    }
  }

  /** Pages of idle cached blocks: 'kv' pages to the pool, free to the policy (the cache reclaims them). */
  get numIdleCachedPages(): number {
    return this.prefixCache?.reclaimablePages() ?? 0;
  }

  get numSequences(): number {
    return this.tables.size;
  }
}
