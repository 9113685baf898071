import { DeltaStream } from './delta-stream.js';
import type { FinishReason, GenerationDelta, GenerationRequest } from './request.js';
import type { AbortReason, SchedulerEvent } from './scheduler-events.js';
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
  /** The clock when its consumer fell behind (its choices sit steps out), or null while it reads. */
  pausedAt: number | null;
  detachSignal: () => void;
}

/** Requests per adapter as vLLM counts num_requests_running/waiting, and the longest wait. */
export interface AdapterQueueStats {
  running: number;
  waiting: number;
  /** Seconds the adapter's longest-waiting request has been queued (0 when none waits). */
  maxWaitSeconds: number;
}

/** An event without what the registry stamps on it (time, request id, adapter). */
export type RequestEvent = SchedulerEvent extends infer E
  ? E extends unknown
    ? Omit<E, 'time' | 'requestId' | 'adapter'>
    : never
  : never;

/** What the registry needs from the scheduler around it. */
export interface RequestHooks {
  now(): number;
  emit(state: RequestState, event: RequestEvent): void;
  /** A choice ended: take it out of the queues and free what it holds (after the step in flight). */
  retire(seq: Sequence): void;
  /** The request ended: its hold on its adapter may go (after the step in flight). */
  releaseAdapter(adapter: string): void;
  /** Work may have become runnable (a consumer read again, a request ended): wake a waiting loop. */
  wake(): void;
}

/**
 * The scheduler's one list of live requests: which request each sequence belongs to, the stream
 * each consumer reads, the client's abort signal, and how a request ends (finished choice by
 * choice, aborted, or failed), with the matching events.
 */
export class RequestRegistry {
  private readonly owners = new Map<Sequence, RequestState>();
  private readonly live = new Set<RequestState>();
  private readonly paused = new Set<RequestState>();

  constructor(
    /** Flow control: unread deltas per choice past which a request pauses; null never pauses. */
    private readonly maxUnreadPerChoice: number | null,
    private readonly hooks: RequestHooks,
  ) {}

  /** Registers a request and its choices; its client's signal aborts it. */
  open(req: GenerationRequest, sequences: Sequence[]): RequestState {
    const state: RequestState = {
      req,
      sequences,
      stream: new DeltaStream(
        req.promptTokens.length,
        () => this.abort(state, 'client', false),
        this.maxUnreadPerChoice === null
          ? null
          : {
              maxUnread: this.maxUnreadPerChoice * sequences.length,
              pause: () => this.pause(state),
              resume: () => this.resume(state),
            },
      ),
      arrivedAt: this.hooks.now(),
      isDone: false,
      isScheduled: false,
      hasFirstToken: false,
      pausedAt: null,
      detachSignal: () => {},
    };
    this.live.add(state);
    for (const seq of sequences) this.owners.set(seq, state);
    this.hooks.emit(state, {
      type: 'queued',
      numPromptTokens: req.promptTokens.length,
      numChoices: sequences.length,
    });
    const signal = req.signal;
    if (signal) {
      const onAbort = () => this.abort(state, 'client', true);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        state.detachSignal = () => signal.removeEventListener('abort', onAbort);
      }
    }
    return state;
  }

  /** One choice ended with `reason`; the request ends with its last choice. */
  finishChoice(
    state: RequestState,
    seq: Sequence,
    reason: FinishReason,
    text: string,
    tokenIds: number[],
    /** The stop string or stop token id that ended it (vLLM's `stop_reason`). */
    stopReason?: string | number,
    /** The tokens' log-probabilities (and the prompt's), when the request asked for them. */
    scores: Pick<GenerationDelta, 'logprobs' | 'promptLogprobs'> = {},
  ): void {
    seq.finish(reason);
    state.stream.push({
      index: seq.choiceIndex,
      text,
      tokenIds,
      finishReason: reason,
      ...(stopReason === undefined ? {} : { stopReason }),
      ...scores,
    });
    this.hooks.emit(state, { type: 'finished', index: seq.choiceIndex, reason });
    this.hooks.retire(seq);
    if (state.sequences.every((s) => s.isFinished)) this.settle(state);
  }

  /** Aborted by the client (signal), by shutdown, or by the consumer leaving the stream (no one reads deltas then). */
  abort(state: RequestState, reason: AbortReason, emitDeltas: boolean): void {
    if (state.isDone) return;
    for (const seq of state.sequences) {
      if (seq.isFinished) continue;
      seq.finish('abort');
      if (emitDeltas)
        state.stream.push({ index: seq.choiceIndex, text: '', tokenIds: [], finishReason: 'abort' });
      this.hooks.retire(seq);
    }
    this.hooks.emit(state, { type: 'aborted', reason });
    this.settle(state);
  }

  /** The request cannot be served: its stream fails with `error` after what it already got. */
  fail(state: RequestState, error: Error, reason: AbortReason): void {
    if (state.isDone) return;
    for (const seq of state.sequences) {
      if (seq.isFinished) continue;
      seq.finish('abort');
      this.hooks.retire(seq);
    }
    state.stream.fail(error);
    this.hooks.emit(state, { type: 'aborted', reason });
    this.settle(state);
  }

  get size(): number {
    return this.live.size;
  }

  /** Whether the sequence's request waits for its consumer to read (it sits steps out). */
  isPaused(seq: Sequence): boolean {
    return (this.owners.get(seq)?.pausedAt ?? null) !== null;
  }

  /** Requests whose consumers have read nothing back for `timeoutMs` or longer. */
  stalled(now: number, timeoutMs: number): RequestState[] {
    return [...this.paused].filter((state) => now - (state.pausedAt ?? now) >= timeoutMs);
  }

  /** The clock when the longest-paused request paused, or null when none is paused. */
  earliestPause(): number | null {
    let earliest: number | null = null;
    for (const { pausedAt } of this.paused)
      if (pausedAt !== null && (earliest === null || pausedAt < earliest)) earliest = pausedAt;
    return earliest;
  }

  ownerOf(seq: Sequence): RequestState | undefined {
    return this.owners.get(seq);
  }

  /** The request ended: it leaves the live list (its sequences stay owned until they retire). */
  private settle(state: RequestState): void {
    state.isDone = true;
    state.detachSignal();
    state.stream.end();
    this.live.delete(state);
    state.pausedAt = null;
    this.paused.delete(state);
    if (state.req.adapter !== null) this.hooks.releaseAdapter(state.req.adapter);
    this.hooks.wake();
  }

  private pause(state: RequestState): void {
    if (state.isDone) return;
    state.pausedAt = this.hooks.now();
    this.paused.add(state);
  }

  private resume(state: RequestState): void {
    state.pausedAt = null;
    if (this.paused.delete(state)) this.hooks.wake();
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
