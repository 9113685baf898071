/**
 * The unified page pool (S-LoRA): one free list of fixed-size pages shared by KV cache and
 * adapter weights. This is bookkeeping only; the engine owns the storage behind page ids.
 *
 * Page 0 is reserved and always holds zeros: padding in page tables points at it, so a
 * kernel that reads a padded slot reads zeros instead of someone else's data.
 */
export type PageOwner = 'kv' | 'adapter';

export class PoolExhaustedError extends Error {
  constructor(wanted: number, free: number) {
    super(`page pool exhausted: wanted ${wanted} pages, ${free} free`);
    this.name = 'PoolExhaustedError';
  }
}

export const ZERO_PAGE = 0;

/**
 * Who can give pages back on demand: the prefix cache, whose idle cached KV blocks go first, then
 * the adapter registry, whose idle (unpinned) resident adapters are evicted least-recently-used
 * when KV or another adapter needs their pages.
 */
export interface PageReclaimer {
  /** Pages that reclaim() could free now. */
  reclaimablePages(): number;
  /** Frees at least `numPages` pages if it can (fewer when it cannot). */
  reclaim(numPages: number): void;
}

export class PagePool {
  /** Elements (f32 or f16 values) per page: the model's hidden size. */
  readonly pageSize: number;
  /** Total pages including the reserved zero page. */
  readonly numPages: number;
  /** Stack of free page ids; popping from the end keeps allocation O(1). */
  private readonly freeList: Int32Array;
  private numFreePages: number;
  /** Who holds each page (0 free, 1 kv, 2 adapter): catches double frees and feeds metrics. */
  private readonly owner: Uint8Array;
  private readonly used: Record<PageOwner, number> = { kv: 0, adapter: 0 };
  /** Asked in order when the free list is short. */
  private readonly reclaimers: PageReclaimer[] = [];

  constructor(numPages: number, pageSize: number) {
    if (!Number.isInteger(numPages) || numPages < 2)
      throw new Error(`page pool needs at least 2 pages, got ${numPages}`);
    this.pageSize = pageSize;
    this.numPages = numPages;
    this.freeList = new Int32Array(numPages - 1);
    for (let i = 0; i < numPages - 1; i++) this.freeList[i] = numPages - 1 - i;
    this.numFreePages = numPages - 1;
    this.owner = new Uint8Array(numPages);
  }

  get numFree(): number {
    return this.numFreePages;
  }

  /** Free pages plus what the reclaimers can give back: the unified capacity the policy plans with. */
  get numAvailable(): number {
    return this.numFreePages + this.reclaimers.reduce((sum, r) => sum + r.reclaimablePages(), 0);
  }

  /** Lets allocate() take pages from `reclaimer` when the free list is short, after those added before it. */
  addReclaimer(reclaimer: PageReclaimer): void {
    this.reclaimers.push(reclaimer);
  }

  numUsed(owner?: PageOwner): number {
    return owner ? this.used[owner] : this.used.kv + this.used.adapter;
  }

  /** Whether `count` pages can be had, counting pages the reclaimer would free. */
  canAllocate(count: number): boolean {
    return count <= this.numAvailable;
  }

  /**
   * All-or-nothing: `count` pages, or PoolExhaustedError with nothing taken. When the free list
   * is short, the reclaimers are asked for the difference first (callers allocate between engine
   * steps, so an eviction never frees a page a running step reads).
   */
  allocate(count: number, owner: PageOwner): Int32Array {
    this.reclaimShortfall(count);
    if (count > this.numFreePages) throw new PoolExhaustedError(count, this.numFreePages);
    const pages = this.freeList.slice(this.numFreePages - count, this.numFreePages).reverse();
    this.numFreePages -= count;
    this.take(pages, owner);
    return pages;
  }

  /**
   * `count` consecutive page ids when a run that long is free (after reclaiming any shortfall),
   * else null. Adapters ask for this first: the onnx engine reads a contiguous adapter's blocks
   * in place instead of gathering its rows every step.
   */
  allocateContiguous(count: number, owner: PageOwner): Int32Array | null {
    this.reclaimShortfall(count);
    if (count < 1 || count > this.numFreePages) return null;
    // Usually the next pages on the free stack are a run already (a fresh pool's order, or
    // an adapter's pages freed together): take them in O(count) instead of scanning the pool.
    const top = this.numFreePages - 1;
    let isRun = true;
    for (let i = 1; i < count && isRun; i++) isRun = this.freeList[top - i] === this.freeList[top] + i;
    if (isRun) return this.allocate(count, owner);
    let runStart = -1;
    for (let p = 1, run = 0; p < this.numPages; p++) {
      run = this.owner[p] === 0 ? run + 1 : 0;
      if (run === count) {
        runStart = p - count + 1;
        break;
      }
    }
    if (runStart < 0) return null;
    const pages = new Int32Array(count);
    for (let i = 0; i < count; i++) pages[i] = runStart + i;
    // Drop the run from the free list, keeping the rest in order.
    let kept = 0;
    for (let i = 0; i < this.numFreePages; i++) {
      const p = this.freeList[i];
      if (p < runStart || p >= runStart + count) this.freeList[kept++] = p;
    }
    this.numFreePages = kept;
    this.take(pages, owner);
    return pages;
  }

  private reclaimShortfall(count: number): void {
    for (const reclaimer of this.reclaimers) {
      if (count <= this.numFreePages) return;
      reclaimer.reclaim(count - this.numFreePages);
    }
  }

  private take(pages: Int32Array, owner: PageOwner): void {
    const tag = owner === 'kv' ? 1 : 2;
    for (const p of pages) this.owner[p] = tag;
    this.used[owner] += pages.length;
  }

  free(pages: ArrayLike<number>): void {
    // Pushed last to first, so the stack hands a freed run back in its own order (allocateContiguous's fast path).
    for (let i = pages.length - 1; i >= 0; i--) {
      const p = pages[i];
      const tag = this.owner[p];
      if (p === ZERO_PAGE || tag === 0) throw new Error(`page ${p} freed twice or never allocated`);
      this.used[tag === 1 ? 'kv' : 'adapter'] -= 1;
      this.owner[p] = 0;
      this.freeList[this.numFreePages++] = p;
    }
  }
}

/** Pool size from a flag: bytes ("512MiB", "2GiB", "123456") or a fraction of `totalBytes` ("0.3"). */
export function parsePoolSize(spec: string, totalBytes: number): number {
  const m = /^\s*([0-9.]+)\s*(b|kib|mib|gib|kb|mb|gb)?\s*$/i.exec(spec);
  if (!m) throw new Error(`pool size "${spec}" is neither bytes (e.g. 2GiB) nor a fraction (e.g. 0.3)`);
  const value = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  if (!unit && value > 0 && value <= 1 && m[1].includes('.')) return Math.floor(value * totalBytes);
  const scale: Record<string, number> = {
    '': 1,
    b: 1,
    kib: 1024,
    mib: 1024 ** 2,
    gib: 1024 ** 3,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
  };
  const bytes = Math.floor(value * scale[unit]);
  if (!(bytes > 0)) throw new Error(`pool size "${spec}" must be positive`);
  return bytes;
}
