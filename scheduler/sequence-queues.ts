import type { KvCache } from '../memory/kv-cache.js';
import type { AdapterResidency } from './adapter-residency.js';
import { byPriority } from './priority-policy.js';
import type { Sequence } from './sequence.js';

/**
 * The waiting and running queues and what a sequence holds while in them: KV pages and a pin on
 * its adapter. Pages and pins are given back only between steps: what ends while a step is in
 * flight is retired once it returns, so the engine never writes into a page someone else holds
 * nor reads an adapter that was evicted under it.
 */
export class SequenceQueues {
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  /** Sequences to drop once the step in flight returns. */
  private readonly retireAfterStep: Sequence[] = [];
  /** Ended requests' adapters, released once no step in flight can still read them. */
  private readonly releaseAfterStep: string[] = [];
  private isStepInFlight = false;

  constructor(
    private readonly kvCache: KvCache,
    private readonly adapters: AdapterResidency,
    /** A sequence left the queues for good (its request forgets it). */
    private readonly onRetired: (seq: Sequence) => void,
    /** The policy's waiting order (SchedulingPolicy.queueOrder). */
    private readonly order: 'arrival' | 'priority' = 'arrival',
  ) {}

  get isEmpty(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  beginStep(): void {
    this.isStepInFlight = true;
  }

  /** The step returned: what ended meanwhile gives its pages and pins back now. */
  endStep(): void {
    this.isStepInFlight = false;
    for (const seq of this.retireAfterStep.splice(0)) this.retire(seq);
    for (const name of this.releaseAfterStep.splice(0)) this.adapters.release(name);
  }

  /** Moves a waiting sequence into the running batch, pinning its adapter. */
  admit(seq: Sequence): void {
    seq.status = 'running';
    removeFrom(this.waiting, seq);
    this.running.push(seq);
    const isFirstAdmission = !seq.wasScheduled;
    seq.wasScheduled = true;
    if (seq.adapter === null) return;
    this.adapters.pin(seq.adapter);
    seq.holdsAdapterPin = true;
    if (isFirstAdmission) this.adapters.noteFirstStep(seq.adapter);
  }

  /** A new request's sequences join the waiting queue: at its tail, or in their place by priority. */
  enqueue(sequences: readonly Sequence[]): void {
    for (const seq of sequences) {
      if (this.order === 'arrival') this.waiting.push(seq);
      else this.insertByPriority(seq);
    }
  }

  /**
   * Preemption by recompute: pages and pin go, the sequence goes back to the head of the queue
   * (by priority: to its place, ahead of every later arrival of its priority).
   */
  preempt(seq: Sequence): void {
    this.kvCache.free(seq.seqId);
    this.unpinAdapter(seq);
    seq.numCachedTokens = 0;
    seq.status = 'waiting';
    removeFrom(this.running, seq);
    if (this.order === 'arrival') this.waiting.unshift(seq);
    else this.insertByPriority(seq);
  }

  private insertByPriority(seq: Sequence): void {
    let at = this.waiting.length;
    while (at > 0 && byPriority(this.waiting[at - 1], seq) > 0) at--;
    this.waiting.splice(at, 0, seq);
  }

  /** Takes the sequence out of the queues and frees its pages, or does so after the step in flight. */
  retire(seq: Sequence): void {
    if (this.isStepInFlight) {
      this.retireAfterStep.push(seq);
      return;
    }
    removeFrom(this.waiting, seq);
    removeFrom(this.running, seq);
    this.kvCache.free(seq.seqId);
    this.unpinAdapter(seq);
    this.onRetired(seq);
  }

  /** A request for `adapter` ended: the registry may unload it once no step in flight reads it. */
  releaseAdapter(adapter: string): void {
    this.releaseAfterStep.push(adapter);
    if (!this.isStepInFlight) this.endStep();
  }

  /** A sequence can run when it needs no adapter or its adapter is in the pool. */
  isAdapterReady(seq: Sequence): boolean {
    return seq.adapter === null || this.adapters.isResident(seq.adapter);
  }

  /**
   * Waiting sequences may pass one whose adapter is still loading, but not forever: once a
   * sequence has waited STARVATION_STEPS planned steps for its adapter, nothing behind it is
   * admitted, so running sequences drain and unpin until its adapter fits.
   */
  sequencesBehindStarved(): Set<Sequence> {
    const blocked = new Set<Sequence>();
    let isBarrier = false;
    for (const seq of this.waiting) {
      if (isBarrier) {
        blocked.add(seq);
        continue;
      }
      if (this.isAdapterReady(seq)) continue;
      seq.numStepsNotReady++;
      if (seq.numStepsNotReady > STARVATION_STEPS) isBarrier = true;
    }
    return blocked;
  }

  /**
   * Adapters the queues need: residency must not evict a running one, and may prefetch the
   * waiting ones (in queue order, each once).
   */
  adaptersInUse(): { running: string[]; waiting: string[] } {
    const names = (queue: Sequence[]) => [
      ...new Set(queue.flatMap((seq) => (seq.adapter === null ? [] : [seq.adapter]))),
    ];
    return { running: names(this.running), waiting: names(this.waiting) };
  }

  private unpinAdapter(seq: Sequence): void {
    if (!seq.holdsAdapterPin || seq.adapter === null) return;
    this.adapters.unpin(seq.adapter);
    seq.holdsAdapterPin = false;
  }
}

/** Planned steps a waiting sequence may be passed over while its adapter loads. */
const STARVATION_STEPS = 64;

function removeFrom(queue: Sequence[], seq: Sequence): void {
  const at = queue.indexOf(seq);
  if (at >= 0) queue.splice(at, 1);
}
