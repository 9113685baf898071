import { blocksFor, type KvLayout } from './kv-layout.js';
import type { PagePool } from './page-pool.js';

/** Page tables of live sequences: grows them block by block and returns every page on free. */
export class KvCache {
  private readonly tables = new Map<number, Int32Array>();

  constructor(
    readonly pool: PagePool,
    readonly layout: KvLayout,
  ) {}

  /** Pages a sequence needs beyond what it holds to cache `numTokens` tokens in all. */
  pagesNeeded(seqId: number, numTokens: number): number {
    const held = (this.tables.get(seqId)?.length ?? 0) / this.layout.pagesPerBlock;
    return Math.max(0, blocksFor(this.layout, numTokens) - held) * this.layout.pagesPerBlock;
  }

  canReserve(seqId: number, numTokens: number): boolean {
    return this.pool.canAllocate(this.pagesNeeded(seqId, numTokens));
  }

  /** Grows the sequence's table to hold `numTokens` tokens; false (nothing taken) when the pool is short. */
  reserve(seqId: number, numTokens: number): boolean {
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

  pageTable(seqId: number): Int32Array {
    const table = this.tables.get(seqId);
    if (!table) throw new Error(`sequence ${seqId} has no KV pages`);
    return table;
  }

  has(seqId: number): boolean {
    return this.tables.has(seqId);
  }

  free(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    this.pool.free(table);
    this.tables.delete(seqId);
  }

  get numSequences(): number {
    return this.tables.size;
  }
}
