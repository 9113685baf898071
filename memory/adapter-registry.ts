import type { StoredLoraAdapter } from '../model/stored-adapter.js';
import { AdapterHostStore, MAX_CONCURRENT_READS } from './adapter-host-store.js';
import { type AdapterLayout, layoutAdapter } from './adapter-layout.js';
import type { PagePool, PageReclaimer } from './page-pool.js';

/** Where an adapter's weights are now: in the page pool, only in host RAM, or only on disk. */
export type AdapterTier = 'pool' | 'host' | 'disk';
export const ADAPTER_TIERS: readonly AdapterTier[] = ['pool', 'host', 'disk'];

/** Where resident adapters' weights go: the engine's page storage. */
export interface AdapterStorage {
  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void;
  /** Told before a written layout's pages are freed, so the storage drops its page table (an adapter slot). */
  releaseAdapter?(layout: AdapterLayout): void;
}

/** How the registry reads adapters; the composition root binds it to model/'s loaders and the base model. */
export interface AdapterFiles {
  /** Validates the adapter's config against the base model and counts its pages, without reading weights. */
  inspect(path: string): Promise<{ rank: number; numPages: number }>;
  /** Reads and validates the weights into host memory, in the file's dtype. */
  read(name: string, path: string): Promise<StoredLoraAdapter>;
  /** Pages of an adapter already read. */
  pagesOf(adapter: StoredLoraAdapter): number;
  /** The directory `name` would live in under a lazily scanned adapter folder (--lora-dir), or null. */
  lazyPath?(name: string): Promise<string | null>;
  /** Stops what reads run on (a worker thread); reads after it still work, on the calling thread. */
  close?(): Promise<void>;
}

export interface RegistryLimits {
  /** Adapters resident in the pool at once (vLLM's --max-loras). */
  maxLoras: number;
  /** Adapters whose weights stay in host RAM (vLLM's --max-cpu-loras); the rest are read from disk again. */
  maxCpuLoras: number;
  /** Largest rank accepted (--max-lora-rank); Loom never pads to it. */
  maxLoraRank: number;
  /** KV pages one sequence of the full context needs: every adapter must fit in the pool beside one. */
  pagesForFullContext: number;
}

/** Why an adapter operation was refused; the server maps `kind` to a status (404, 400, 409). */
export class AdapterError extends Error {
  constructor(
    message: string,
    readonly kind: 'not_found' | 'invalid' | 'conflict',
  ) {
    super(message);
    this.name = 'AdapterError';
  }
}

/** Counters for metrics and the benchmark; they only grow. */
export interface RegistryCounters {
  /** Adapters read from disk into host RAM. */
  numDiskLoads: number;
  /** Adapters written from host RAM into pool pages. */
  numPoolLoads: number;
  /** Of those, writes done while a step ran (prefetch overlapped with compute). */
  numOverlappedPoolLoads: number;
  /** Resident adapters evicted from the pool. */
  numEvictions: number;
  /** Host copies dropped (LRU past --max-cpu-loras). */
  numHostDrops: number;
  /** Requests whose adapter was already in the pool when their first step was planned. */
  numPrefetchHits: number;
  numPrefetchMisses: number;
  /** Seconds spent writing adapters into the pool between steps (the step loop waited on them). */
  blockingCopySeconds: number;
  /**
   * Seconds of writes issued while a step was in flight. On a GPU they overlap its compute; the
   * onnx engine runs a step on the JS thread (onnxruntime-node's run is synchronous inside a
   * setImmediate), so there they only avoid making the next planning round wait for them.
   */
  overlappedCopySeconds: number;
  /** Seconds the step loop sat idle because every waiting sequence's adapter was still being read. */
  readWaitSeconds: number;
}

export function emptyRegistryCounters(): RegistryCounters {
  return {
    numDiskLoads: 0,
    numPoolLoads: 0,
    numOverlappedPoolLoads: 0,
    numEvictions: 0,
    numHostDrops: 0,
    numPrefetchHits: 0,
    numPrefetchMisses: 0,
    blockingCopySeconds: 0,
    overlappedCopySeconds: 0,
    readWaitSeconds: 0,
  };
}

export interface AdapterInfo {
  name: string;
  path: string;
  rank: number;
  tier: AdapterTier;
  /** Running sequences using it. */
  numPins: number;
  /** Requests in flight (waiting or running) for it. */
  numRequests: number;
  /** Resident with consecutive pages (the onnx engine's zero-copy fast path). */
  isContiguous: boolean;
}

interface AdapterEntry {
  readonly name: string;
  path: string;
  rank: number;
  numPages: number;
  /** Pool pages, when resident. */
  layout: AdapterLayout | null;
  isContiguous: boolean;
  /** Running sequences using the adapter: a pinned adapter is never evicted. */
  numPins: number;
  /** Requests in flight: unload waits for them and refuses new ones meanwhile. */
  numRequests: number;
  /** Clock tick of the last use, for LRU in the pool. */
  lastUse: number;
  /** Weights from an in-place load, swapped in between steps. */
  replacement: StoredLoraAdapter | null;
  /** Names the weights in use: new at registration and at each in-place swap (prefix-cache keys). */
  weightsId: number;
  isUnloading: boolean;
  /** Planning round in which a blocking copy made it resident (prefetch miss for requests admitted then). */
  blockingCopyRound: number;
}

/**
 * The one owner of adapters at run time (S-LoRA's unified memory): every registered adapter's
 * source, host copy, pool residency, pins and recency. The server resolves names here, the
 * scheduler asks it which adapters can run and pins them, the engine receives writes from it,
 * metrics read it. Thousands can be registered: only configs are read at registration; weights
 * come from disk into a host-RAM LRU (--max-cpu-loras) and from there into pool pages
 * (--max-loras), evicting idle adapters least-recently-used when pages are needed — by KV (it is
 * the pool's reclaimer) or by another adapter.
 *
 * Threading rule: pages are freed only between engine steps (planStep, unload of an adapter no
 * request uses, reclaim from allocations made between steps); during a step only free pages are
 * written (prefetchDuringStep), which the running step does not read.
 */
export class AdapterRegistry implements PageReclaimer {
  private readonly entries = new Map<string, AdapterEntry>();
  private readonly resident = new Set<AdapterEntry>();
  /** Adapters the current planning round needs: never evicted while it lasts. */
  private readonly protected = new Set<string>();
  /**
   * Resident adapters of queued sequences: another adapter's copy does not displace them, and KV
   * reclaims them after every other idle adapter.
   */
  private readonly softProtected = new Set<string>();
  /** Each queued adapter's first place in the queue at the last plan (reclaim's order). */
  private readonly queuePositions = new Map<string, number>();
  /** Free pages prefetching leaves for the running sequences' next KV blocks (planStep's reserve). */
  private reservePages = 0;
  /** Per-name chain of registrations and runtime loads, so two loads of one name never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private clock = 0;
  private numWeights = 0;
  private planningRound = 0;
  /** The queue's adapters the last plan protected and made resident, in queue order. */
  private window: string[] = [];
  /** Queued adapters past the window, read from disk ahead of need. */
  private readAhead: string[] = [];
  /** Adapters of the running sequences at the last plan (startReading's concurrency). */
  private numRunningAdapters = 0;
  /** Adapters whose read failed since the last planning round: readQueued skips them. */
  private readonly failedReads = new Set<string>();
  /** The host-RAM tier (--max-cpu-loras). */
  private readonly host: AdapterHostStore;
  readonly counters: RegistryCounters = emptyRegistryCounters();

  constructor(
    private readonly pool: PagePool,
    private readonly storage: AdapterStorage,
    private readonly files: AdapterFiles,
    readonly limits: RegistryLimits,
    private readonly config: Parameters<typeof layoutAdapter>[0],
  ) {
    for (const [key, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < (key === 'pagesForFullContext' ? 0 : 1))
        throw new Error(`${key} must be a positive integer, got ${value}`);
    }
    pool.addReclaimer(this);
    this.host = new AdapterHostStore(limits.maxCpuLoras, this.counters);
  }

  // ---- names ---------------------------------------------------------------------------------

  /**
   * Registers an adapter from its config alone (weights are read on first use); `inspected` is
   * files.inspect's answer when the caller has it already.
   */
  register(name: string, path: string, inspected?: { rank: number; numPages: number }): Promise<void> {
    return this.withLock(name, async () => {
      if (this.entries.has(name))
        throw new AdapterError(`adapter "${name}" is already registered`, 'conflict');
      const { rank, numPages } = inspected ?? (await this.files.inspect(path));
      this.checkFits(name, rank, numPages);
      this.entries.set(name, this.newEntry(name, path, rank, numPages));
    });
  }

  /** Whether `name` is registered and takes requests. */
  has(name: string): boolean {
    const entry = this.entries.get(name);
    return entry !== undefined && !entry.isUnloading;
  }

  /**
   * Whether `name` can serve requests: registered, or found as a sub-directory of the lazily
   * scanned adapter folder (registered now, on first use).
   */
  async resolve(name: string): Promise<boolean> {
    if (this.has(name)) return true;
    if (this.entries.has(name) || !this.files.lazyPath) return false;
    const path = await this.files.lazyPath(name);
    if (path === null) return false;
    try {
      await this.register(name, path);
    } catch (error) {
      // A concurrent request registered it first.
      if (error instanceof AdapterError && error.kind === 'conflict') return this.has(name);
      throw error;
    }
    return true;
  }

  get numRegistered(): number {
    return this.entries.size;
  }

  get numResident(): number {
    return this.resident.size;
  }

  /** Bytes of weights held in host RAM (file dtypes). */
  get hostBytes(): number {
    let bytes = this.host.numBytes;
    for (const entry of this.entries.values()) bytes += entry.replacement?.numBytes ?? 0;
    return bytes;
  }

  list(): AdapterInfo[] {
    return [...this.entries.values()]
      .filter((e) => !e.isUnloading)
      .map((e) => ({
        name: e.name,
        path: e.path,
        rank: e.rank,
        tier: this.tierOf(e),
        numPins: e.numPins,
        numRequests: e.numRequests,
        isContiguous: e.layout !== null && e.isContiguous,
      }));
  }

  // ---- runtime load and unload ----------------------------------------------------------------

  /**
   * Reads an adapter fully (a bad file throws and changes nothing) and registers it with its host
   * copy. With `inPlace`, an adapter of that name gets the new weights between steps: the next
   * step uses them, no step sees half of them.
   */
  load(name: string, path: string, inPlace: boolean): Promise<void> {
    return this.withLock(name, async () => {
      const existing = this.entries.get(name);
      if (existing && !inPlace)
        throw new AdapterError(
          `adapter "${name}" is already loaded (use load_inplace to replace it)`,
          'conflict',
        );
      if (existing?.isUnloading) throw new AdapterError(`adapter "${name}" is being unloaded`, 'conflict');
      const adapter = await this.files.read(name, path);
      const numPages = this.files.pagesOf(adapter);
      this.checkFits(name, adapter.rank, numPages);
      this.counters.numDiskLoads++;
      if (!existing) {
        this.entries.set(name, this.newEntry(name, path, adapter.rank, numPages));
        this.host.put(name, adapter);
        return;
      }
      existing.path = path;
      existing.replacement = adapter;
    });
  }

  /** Unregisters an adapter: refused for new requests at once, freed when its last request ends. */
  unload(name: string): void {
    const entry = this.entries.get(name);
    if (!entry || entry.isUnloading) throw new AdapterError(`adapter "${name}" is not loaded`, 'not_found');
    entry.isUnloading = true;
    if (entry.numRequests === 0) this.drop(entry);
  }

  // ---- requests and pins (the scheduler's side) -----------------------------------------------

  /** A request for `name` enters the scheduler. */
  acquire(name: string): void {
    const entry = this.entries.get(name);
    if (!entry || entry.isUnloading) throw new AdapterError(`adapter "${name}" is not loaded`, 'not_found');
    entry.numRequests++;
  }

  /** A request for `name` has ended (finished, aborted or failed) and freed its pages. */
  release(name: string): void {
    const entry = this.mustGet(name);
    entry.numRequests--;
    if (entry.isUnloading && entry.numRequests === 0) this.drop(entry);
  }

  /** A sequence of `name` starts running: its adapter stays resident until unpinned. */
  pin(name: string): void {
    const entry = this.mustGet(name);
    if (!entry.layout) throw new Error(`adapter "${name}" pinned while not resident`);
    entry.numPins++;
    entry.lastUse = ++this.clock;
  }

  unpin(name: string): void {
    const entry = this.mustGet(name);
    if (entry.numPins <= 0) throw new Error(`adapter "${name}" unpinned more often than pinned`);
    entry.numPins--;
    entry.lastUse = ++this.clock;
  }

  isResident(name: string): boolean {
    return this.entries.get(name)?.layout != null;
  }

  /** The pool layout a step uses for `name` (null when not resident). */
  layoutOf(name: string): AdapterLayout | null {
    return this.entries.get(name)?.layout ?? null;
  }

  /** Names `name`'s weights in use now: KV computed under another id is not reused for it. */
  weightsId(name: string): number {
    return this.mustGet(name).weightsId;
  }

  /** Counts a request's first scheduled step as a prefetch hit (adapter already resident) or miss. */
  noteFirstStep(name: string): void {
    const entry = this.mustGet(name);
    if (entry.blockingCopyRound === this.planningRound) this.counters.numPrefetchMisses++;
    else this.counters.numPrefetchHits++;
  }

  // ---- residency (between steps, and overlapped with steps) -----------------------------------

  /**
   * Between steps, before the batch policy runs: swaps in in-place updates, protects the adapters
   * the running sequences and the head of the queue need, and keeps `reservePages` for the running
   * sequences' KV. Only the adapters the running sequences and the first `numAdmissible` queued
   * ones need (a step admits at most that many: its free seats) are copied now, where the step
   * loop waits for them; for the rest of the window this round only makes room (evicting idle
   * adapters least-recently-used, which happens between steps alone), and prefetchDuringStep copies
   * them while the step runs. Adapters still on disk start loading; they are ready at a later step.
   */
  planStep(
    running: readonly string[],
    waiting: readonly string[],
    reservePages: number,
    numAdmissible = Number.POSITIVE_INFINITY,
  ): void {
    this.planningRound++;
    this.numRunningAdapters = running.length;
    this.failedReads.clear();
    this.protected.clear();
    for (const name of running) this.protected.add(name);
    this.reservePages = reservePages;
    // The queue's next adapters, as many as may be resident beside the running ones (the head's
    // always): the window, made resident now (as many as the step has seats for) or prefetched
    // while it runs; a few more are read ahead from disk.
    const runningSet = new Set(running);
    const queued = waiting.filter((name) => !runningSet.has(name));
    const room = Math.max(1, this.limits.maxLoras - runningSet.size);
    this.window = queued.slice(0, room);
    this.readAhead = queued.slice(room, room + Math.max(0, this.limits.maxCpuLoras - this.limits.maxLoras));
    const urgent = [...running, ...this.window.slice(0, Math.max(0, numAdmissible))];
    // Only what this step can run is protected: the running sequences' adapters and those of the
    // queued sequences its free seats may admit. The rest of the window is a prefetch, which KV
    // may take back (KV of running work comes first, as in S-LoRA's unified pool): protected, a
    // window of --max-loras adapters could fill the pool and starve the running sequences' KV.
    for (const name of urgent) this.protected.add(name);
    // Resident adapters of queued sequences: another adapter's copy may not displace them, and KV
    // takes them last, those furthest back in the queue first.
    this.softProtected.clear();
    for (const name of queued) if (this.entries.get(name)?.layout) this.softProtected.add(name);
    this.queuePositions.clear();
    queued.forEach((name, i) => {
      if (!this.queuePositions.has(name)) this.queuePositions.set(name, i);
    });
    for (const entry of this.entries.values()) if (entry.replacement) this.swapIn(entry);
    for (const name of urgent) {
      const entry = this.entries.get(name);
      if (!entry || entry.layout) continue;
      if (this.host.has(name)) this.makeResident(entry, reservePages, false);
      else this.startReading(entry);
    }
    this.makeRoomForPrefetch(this.window.slice(Math.max(0, numAdmissible)), reservePages);
  }

  /**
   * Frees pages and resident places, between steps, for the window's adapters that are on the host
   * but wait for a seat: prefetchDuringStep, which may not evict, writes them while the step runs.
   * Only unprotected idle adapters go, least-recently-used first; whatever does not fit waits.
   */
  private makeRoomForPrefetch(deferred: readonly string[], reservePages: number): void {
    let places = this.resident.size;
    let pages = reservePages;
    for (const name of deferred) {
      const entry = this.entries.get(name);
      if (!entry || entry.layout || entry.replacement || !this.host.has(name)) continue;
      places++;
      pages += entry.numPages;
      while (places > this.limits.maxLoras || this.pool.numFree < pages) {
        const victim = this.lruEvictable();
        if (!victim) return;
        this.evict(victim);
        places--;
      }
    }
  }

  /** The policy has decided: adapters of the planning round are evictable again (pins protect the running). */
  endPlanning(): void {
    this.protected.clear();
    this.softProtected.clear();
    this.queuePositions.clear();
  }

  /**
   * While a step runs: reads the planned window's adapters (and a few beyond) from disk and
   * writes those on the host into free pages (never evicting: the step may read any page that is
   * not free), so the next step finds them resident. One adapter per turn, and none once
   * `isStepDone` says the step has finished: on a GPU a copy overlaps the step only while the step
   * runs, and a copy past its end would hold up the next step for adapters that may wait longer.
   */
  async prefetchDuringStep(isStepDone: () => boolean = () => false): Promise<void> {
    const window = this.window;
    this.readQueued();
    for (const name of window) {
      if (isStepDone() || window !== this.window) return;
      const entry = this.entries.get(name);
      if (!entry || entry.layout || entry.replacement) continue;
      if (this.prefetchIntoFreePages(entry)) await nextTurn();
    }
  }

  /**
   * Starts disk reads for the planned window's adapters, then the read-ahead's, in queue order, as
   * far as the host store's cap on reads in flight allows. Called again whenever a read settles, so
   * the reads run back to back between the loop's planning rounds (a step can take a second).
   */
  private readQueued(): void {
    for (const name of [...this.window, ...this.readAhead]) {
      const entry = this.entries.get(name);
      if (entry && !entry.layout && !this.host.has(name) && !this.failedReads.has(name))
        this.startReading(entry);
    }
  }

  /** host → pool into free pages only (no eviction: safe while a step runs); false if it does not fit now. */
  private prefetchIntoFreePages(entry: AdapterEntry): boolean {
    if (entry.layout || !this.host.has(entry.name) || entry.replacement) return false;
    // Room for the running sequences' next KV blocks stays free: a prefetched adapter that KV
    // takes back at the next step is a copy for nothing.
    if (this.resident.size >= this.limits.maxLoras) return false;
    if (entry.numPages + this.reservePages > this.pool.numFree) return false;
    return this.makeResident(entry, 0, true);
  }

  /** Settles when some disk read in flight ends; null when none is in flight. */
  whenReadSettles(): Promise<void> | null {
    // Whoever waits on this has nothing else to run: that time is adapter loading's cost.
    return this.host.whenReadSettles();
  }

  // ---- PageReclaimer ------------------------------------------------------------------------

  /** Pages of `name` that reclaimablePages() counts now (see KvCapacityView.idleAdapterPages). */
  idleAdapterPages(name: string): number {
    const entry = this.entries.get(name);
    return entry?.layout && this.isEvictable(entry, true) ? entry.numPages : 0;
  }

  /** Evicts every unpinned adapter but `keep`, protected ones included; returns the pages freed. */
  evictIdleExcept(keep: string | null): number {
    let freed = 0;
    for (const entry of [...this.resident]) {
      if (entry.numPins > 0 || entry.name === keep) continue;
      freed += entry.numPages;
      this.evict(entry);
    }
    return freed;
  }

  reclaimablePages(): number {
    let pages = 0;
    for (const entry of this.resident) if (this.isEvictable(entry, true)) pages += entry.numPages;
    return pages;
  }

  /** KV may take idle adapters' pages, those of queued-but-unadmitted sequences included (the policy subtracts what it admits). */
  reclaim(numPages: number): void {
    let freed = 0;
    while (freed < numPages) {
      const victim = this.lruEvictable(true);
      if (!victim) return;
      freed += victim.numPages;
      this.evict(victim);
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  private newEntry(name: string, path: string, rank: number, numPages: number): AdapterEntry {
    return {
      name,
      path,
      rank,
      numPages,
      layout: null,
      isContiguous: false,
      numPins: 0,
      numRequests: 0,
      lastUse: ++this.clock,
      replacement: null,
      weightsId: ++this.numWeights,
      isUnloading: false,
      blockingCopyRound: 0,
    };
  }

  private checkFits(name: string, rank: number, numPages: number): void {
    if (rank > this.limits.maxLoraRank)
      throw new AdapterError(
        `adapter "${name}" has rank ${rank}, above --max-lora-rank ${this.limits.maxLoraRank}`,
        'invalid',
      );
    const capacity = this.pool.numPages - 1;
    if (numPages + this.limits.pagesForFullContext > capacity)
      throw new AdapterError(
        `adapter "${name}" needs ${numPages} pages; beside one full-context sequence (${this.limits.pagesForFullContext} pages) the pool of ${capacity} pages cannot hold it (raise --pool-size or lower --max-model-len)`,
        'invalid',
      );
  }

  /** Idle and not needed by the plan; with `displaceSoft`, queued-but-idle adapters count as idle too. */
  private isEvictable(entry: AdapterEntry, displaceSoft = false): boolean {
    return (
      entry.numPins === 0 &&
      !this.protected.has(entry.name) &&
      (displaceSoft || !this.softProtected.has(entry.name))
    );
  }

  /**
   * The idle adapter to evict next: least-recently-used among those no queued sequence needs;
   * with `displaceSoft`, after them the queued ones', furthest back in the queue first.
   */
  private lruEvictable(displaceSoft = false): AdapterEntry | null {
    let victim: AdapterEntry | null = null;
    for (const entry of this.resident)
      if (this.isEvictable(entry, false) && (!victim || entry.lastUse < victim.lastUse)) victim = entry;
    if (victim || !displaceSoft) return victim;
    const position = (e: AdapterEntry) => this.queuePositions.get(e.name) ?? Number.POSITIVE_INFINITY;
    for (const entry of this.resident)
      if (this.isEvictable(entry, true) && (!victim || position(entry) > position(victim))) victim = entry;
    return victim;
  }

  /** host → pool. False when the resident cap or the pool leaves no room (nothing changes then). */
  private makeResident(entry: AdapterEntry, reservePages: number, isOverlapped: boolean): boolean {
    const host = this.host.get(entry.name);
    if (!host) throw new Error(`adapter "${entry.name}" has no host copy to make resident`);
    // The window's adapters (queue order) may displace idle adapters of sequences further back.
    if (this.resident.size >= this.limits.maxLoras) {
      const victim = this.lruEvictable(true);
      if (!victim) return false;
      this.evict(victim);
    }
    while (this.pool.numAvailable - entry.numPages < reservePages) {
      const victim = this.lruEvictable(true);
      if (!victim) return false;
      this.evict(victim);
    }
    const started = performance.now();
    const contiguous = this.pool.allocateContiguous(entry.numPages, 'adapter');
    const pages = contiguous ?? this.pool.allocate(entry.numPages, 'adapter');
    const layout = layoutAdapter(this.config, host, pages);
    this.storage.writeAdapter(layout, host);
    entry.layout = layout;
    entry.isContiguous = contiguous !== null;
    entry.lastUse = ++this.clock;
    this.resident.add(entry);
    const seconds = (performance.now() - started) / 1000;
    this.counters.numPoolLoads++;
    if (isOverlapped) {
      this.counters.numOverlappedPoolLoads++;
      this.counters.overlappedCopySeconds += seconds;
    } else {
      this.counters.blockingCopySeconds += seconds;
      entry.blockingCopyRound = this.planningRound;
    }
    return true;
  }

  private evict(entry: AdapterEntry): void {
    if (!entry.layout) return;
    this.freeLayout(entry);
    this.counters.numEvictions++;
  }

  /** Gives a resident adapter's pages back to the pool, after the storage drops its page table. */
  private freeLayout(entry: AdapterEntry): void {
    if (!entry.layout) return;
    this.storage.releaseAdapter?.(entry.layout);
    this.pool.free(entry.layout.allPages);
    entry.layout = null;
    this.resident.delete(entry);
  }

  /** In-place update, between steps: the old pages go, the new weights come in (pinned ones at once). */
  private swapIn(entry: AdapterEntry): void {
    const adapter = entry.replacement;
    if (!adapter) return;
    entry.replacement = null;
    this.onWeightsRetired?.(entry.name, entry.weightsId);
    entry.weightsId = ++this.numWeights;
    this.freeLayout(entry);
    this.host.put(entry.name, adapter);
    entry.rank = adapter.rank;
    entry.numPages = this.files.pagesOf(adapter);
    if (entry.numPins > 0) this.makeResident(entry, 0, false);
  }

  /**
   * While no adapter's sequence runs, the loop has nothing to do until the queue head's adapter is
   * read, so reads go one at a time in queue order: 16 started together share the disk, the file
   * system's threads and this thread's checks, and all end together (measured at the TinyLlama
   * shape: the first of 16 settled after 1.6 s, against 0.1 s alone). Once a step runs, reads
   * overlap it up to the host store's cap; fewer starved the trace's steps of adapters.
   */
  private startReading(entry: AdapterEntry): void {
    this.host.read(
      entry.name,
      () => this.files.read(entry.name, entry.path),
      (adapter, error) => {
        this.settleRead(entry, adapter, error);
        this.readQueued();
      },
      this.numRunningAdapters === 0 ? 1 : MAX_CONCURRENT_READS,
    );
  }

  private settleRead(entry: AdapterEntry, adapter: StoredLoraAdapter | null, error: unknown): void {
    if (!adapter) {
      // Not read again before the queue is planned anew (its requests fail now).
      this.failedReads.add(entry.name);
      this.onReadFailure?.(entry.name, error);
      return;
    }
    // Read for a registration that has since been unloaded or replaced in place: not wanted.
    if (entry.isUnloading || entry.replacement || this.entries.get(entry.name) !== entry) return;
    this.host.put(entry.name, adapter);
    entry.rank = adapter.rank;
    entry.numPages = this.files.pagesOf(adapter);
    // Wanted by the queue: write it into free pages now, overlapping whatever step runs,
    // instead of making the next step wait for the copy.
    if (this.window.includes(entry.name)) this.prefetchIntoFreePages(entry);
  }

  /** Stops the file reader's thread; the engine loop has stopped (no read is wanted any more). */
  async close(): Promise<void> {
    await this.files.close?.();
  }

  /**
   * Called when an adapter registered from its config fails to read (its weights are corrupt):
   * the scheduler fails the requests waiting for it.
   */
  onReadFailure: ((name: string, error: unknown) => void) | null = null;

  /** Called (between steps) when weights an adapter was served with are gone: unloaded, or replaced in place. */
  onWeightsRetired: ((name: string, weightsId: number) => void) | null = null;

  private drop(entry: AdapterEntry): void {
    this.freeLayout(entry);
    this.entries.delete(entry.name);
    this.host.drop(entry.name);
    this.onWeightsRetired?.(entry.name, entry.weightsId);
  }

  private tierOf(entry: AdapterEntry): AdapterTier {
    if (entry.layout) return 'pool';
    return this.host.has(entry.name) ? 'host' : 'disk';
  }

  private mustGet(name: string): AdapterEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`adapter "${name}" is not registered`);
    return entry;
  }

  private withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(work);
    this.locks.set(name, next);
    const cleanup = () => {
      if (this.locks.get(name) === next) this.locks.delete(name);
    };
    next.then(cleanup, cleanup);
    return next;
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
