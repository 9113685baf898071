import type { AdapterLayout } from '../../memory/adapter-layout.js';
import type { AdapterResidency } from '../../scheduler/adapter-residency.js';

/**
 * Adapter residency for scheduler tests about other things: a fixed set of adapters, always
 * resident; pins and request counts are kept so tests can check they return to zero.
 */
export class ResidentAdapters implements AdapterResidency {
  readonly pins = new Map<string, number>();
  readonly requests = new Map<string, number>();
  onReadFailure: ((name: string, error: unknown) => void) | null = null;
  /** Each adapter's weights id (1 until a test bumps it, as an in-place update does). */
  readonly weights = new Map<string, number>();

  /** Registered names: the adapters resident at construction (a test may take one out of `layouts` later). */
  private readonly known: Set<string>;

  constructor(private readonly layouts: ReadonlyMap<string, AdapterLayout> = new Map()) {
    this.known = new Set(layouts.keys());
  }

  has(name: string): boolean {
    return this.known.has(name) || this.layouts.has(name);
  }
  acquire(name: string): void {
    this.requests.set(name, (this.requests.get(name) ?? 0) + 1);
  }
  release(name: string): void {
    this.requests.set(name, (this.requests.get(name) ?? 0) - 1);
  }
  pin(name: string): void {
    this.pins.set(name, (this.pins.get(name) ?? 0) + 1);
  }
  unpin(name: string): void {
    this.pins.set(name, (this.pins.get(name) ?? 0) - 1);
  }
  isResident(name: string): boolean {
    return this.layouts.has(name);
  }
  layoutOf(name: string): AdapterLayout | null {
    return this.layouts.get(name) ?? null;
  }
  weightsId(name: string): number {
    return this.weights.get(name) ?? 1;
  }
  idleAdapterPages(): number {
    return 0;
  }
  evictIdleExcept(): number {
    return 0;
  }
  noteFirstStep(): void {}
  planStep(): void {}
  endPlanning(): void {}
  async prefetchDuringStep(): Promise<void> {}
  whenReadSettles(): Promise<void> | null {
    return null;
  }
}
