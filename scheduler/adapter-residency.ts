import type { AdapterLayout } from '../memory/adapter-layout.js';

/**
 * What the scheduler asks of adapter residency (memory/adapter-registry.ts implements it): which
 * adapters are in the pool, pins for running sequences, request counts for unload, and the
 * per-step residency work — make the queue's adapters resident between steps, prefetch while a
 * step runs.
 */
export interface AdapterResidency {
  /** Registered and taking requests. */
  has(name: string): boolean;
  acquire(name: string): void;
  release(name: string): void;
  pin(name: string): void;
  unpin(name: string): void;
  isResident(name: string): boolean;
  /** Pages of `name` counted as reclaimable now (resident, unpinned, not needed by the plan), else 0. */
  idleAdapterPages(name: string): number;
  /** Evicts every idle adapter but `keep`: a sequence that fits the pool alone gets all of it. */
  evictIdleExcept(keep: string | null): number;
  layoutOf(name: string): AdapterLayout | null;
  /** Names the adapter's current weights: a new registration or in-place update gets a new id (prefix-cache keys). */
  weightsId?(name: string): number;
  noteFirstStep(name: string): void;
  planStep(
    running: readonly string[],
    waiting: readonly string[],
    reservePages: number,
    numAdmissible?: number,
  ): void;
  endPlanning(): void;
  /** Copies the planned window's adapters into free pages while a step runs, until `isStepDone`. */
  prefetchDuringStep(isStepDone?: () => boolean): Promise<void>;
  whenReadSettles(): Promise<void> | null;
  /** Set by the scheduler: an adapter's weights could not be read, so its waiting requests fail. */
  onReadFailure: ((name: string, error: unknown) => void) | null;
  /**
   * Optional, set by the scheduler: weights an adapter was served with are gone for good (it was
   * unloaded, or replaced in place), between steps; what was cached from them goes too.
   */
  onWeightsRetired?: ((name: string, weightsId: number) => void) | null;
}
