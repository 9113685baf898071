import type { StoredLoraAdapter } from '../model/stored-adapter.js';

/** Disk reads in flight at once: enough to hide latency, few enough not to flood host RAM. */
export const MAX_CONCURRENT_READS = 16;

export interface HostStoreCounters {
  numDiskLoads: number;
  numHostDrops: number;
  readWaitSeconds: number;
}

/**
 * The host-RAM tier of the adapter registry: adapters read from disk in their file's dtype, at most
 * `maxCopies` kept, the least recently used dropped (read again when needed). Reads run in the
 * background, a bounded number at a time; the registry decides what to do with each result.
 */
export class AdapterHostStore {
  private readonly copies = new Map<string, { adapter: StoredLoraAdapter; lastUse: number }>();
  private readonly reads = new Map<string, Promise<void>>();
  private clock = 0;

  constructor(
    private readonly maxCopies: number,
    private readonly counters: HostStoreCounters,
  ) {}

  /** The host copy of `name`, marked as just used; null when only on disk. */
  get(name: string): StoredLoraAdapter | null {
    const copy = this.copies.get(name);
    if (!copy) return null;
    copy.lastUse = ++this.clock;
    return copy.adapter;
  }

  has(name: string): boolean {
    return this.copies.has(name);
  }

  isReading(name: string): boolean {
    return this.reads.has(name);
  }

  /** Keeps `adapter` as the host copy of `name` (the most recently used), dropping the LRU past the cap. */
  put(name: string, adapter: StoredLoraAdapter): void {
    this.copies.set(name, { adapter, lastUse: ++this.clock });
    this.trim();
  }

  drop(name: string): void {
    this.copies.delete(name);
  }

  /**
   * Starts reading `name` unless it is held, being read, or `maxInFlight` reads are in flight (a
   * later call retries). `settle` gets the adapter (and `put`s it to keep it) or the error.
   */
  read(
    name: string,
    load: () => Promise<StoredLoraAdapter>,
    settle: (adapter: StoredLoraAdapter | null, error?: unknown) => void,
    maxInFlight = MAX_CONCURRENT_READS,
  ): void {
    if (this.copies.has(name) || this.reads.has(name) || this.reads.size >= maxInFlight) return;
    const reading = load()
      .then(
        (adapter) => {
          this.counters.numDiskLoads++;
          this.reads.delete(name);
          settle(adapter);
        },
        (error: unknown) => {
          this.reads.delete(name);
          settle(null, error);
        },
      )
      .finally(() => this.reads.delete(name));
    this.reads.set(name, reading);
  }

  /** Settles when some read in flight ends (the time waited counts as adapter loading); null when none is. */
  whenReadSettles(): Promise<void> | null {
    if (this.reads.size === 0) return null;
    const started = performance.now();
    return Promise.race(this.reads.values()).then(() => {
      this.counters.readWaitSeconds += (performance.now() - started) / 1000;
    });
  }

  /** Bytes of weights held. */
  get numBytes(): number {
    let bytes = 0;
    for (const { adapter } of this.copies.values()) bytes += adapter.numBytes;
    return bytes;
  }

  private trim(): void {
    if (this.copies.size <= this.maxCopies) return;
    const byAge = [...this.copies.entries()].sort((a, b) => a[1].lastUse - b[1].lastUse);
    for (const [name] of byAge.slice(0, this.copies.size - this.maxCopies)) {
      this.copies.delete(name);
      this.counters.numHostDrops++;
    }
  }
}
