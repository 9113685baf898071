import type { DeltaStream } from './delta-stream.js';
import type { GenerationRequest } from './request.js';
import type { Sequence } from './sequence.js';

/** One live request: its choices, the stream its consumer reads, and when it arrived. */
export interface RequestState {
  readonly req: GenerationRequest;
  readonly sequences: Sequence[];
  readonly stream: DeltaStream;
  /** The scheduler's clock at submit. */
  readonly arrivedAt: number;
  isDone: boolean;
  /** Whether a step has scheduled one of its choices yet (`onScheduled` fires once). */
  isScheduled: boolean;
  /** Whether one of its choices has produced a token. */
  hasFirstToken: boolean;
  detachSignal: () => void;
}

/** Requests per adapter as vLLM counts num_requests_running/waiting, and the longest wait. */
export interface AdapterQueueStats {
  running: number;
  waiting: number;
  /** Seconds the adapter's longest-waiting request has been queued (0 when none waits). */
  maxWaitSeconds: number;
}

/** The scheduler's one list of live requests and which request each sequence belongs to. */
export class RequestRegistry {
  private readonly owners = new Map<Sequence, RequestState>();
  private readonly live = new Set<RequestState>();

  get size(): number {
    return this.live.size;
  }

  add(state: RequestState): void {
    this.live.add(state);
    for (const seq of state.sequences) this.owners.set(seq, state);
  }

  ownerOf(seq: Sequence): RequestState | undefined {
    return this.owners.get(seq);
  }

  /** The request ended: it leaves the live list (its sequences stay owned until they retire). */
  end(state: RequestState): void {
    this.live.delete(state);
  }

  forgetSequence(seq: Sequence): void {
    this.owners.delete(seq);
  }

  /** A copy: callers end requests while they walk it. */
  list(): RequestState[] {
    return [...this.live];
  }

  /** Requests with a choice running, with one waiting and none running, and per adapter (base model omitted). */
  counts(now: number): {
    numRunning: number;
    numWaiting: number;
    byAdapter: Record<string, AdapterQueueStats>;
  } {
    let numRunning = 0;
    let numWaiting = 0;
    const byAdapter: Record<string, AdapterQueueStats> = {};
    for (const { req, sequences, arrivedAt, isScheduled } of this.live) {
      const isRunning = sequences.some((seq) => seq.status === 'running');
      const isWaiting = !isRunning && sequences.some((seq) => seq.status === 'waiting');
      if (isRunning) numRunning++;
      if (isWaiting) numWaiting++;
      if (req.adapter === null || !(isRunning || isWaiting)) continue;
      const counts = byAdapter[req.adapter] ?? { running: 0, waiting: 0, maxWaitSeconds: 0 };
      byAdapter[req.adapter] = counts;
      if (isRunning) counts.running++;
      else {
        counts.waiting++;
        // A preempted request's queue time ended at its first admission.
        if (!isScheduled) counts.maxWaitSeconds = Math.max(counts.maxWaitSeconds, (now - arrivedAt) / 1000);
      }
    }
    return { numRunning, numWaiting, byAdapter };
  }
}
