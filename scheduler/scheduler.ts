import type { SampledStep, StepPlan } from '../kernels/engine.js';
import type { TokenLogprobs } from '../kernels/logprobs.js';
import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvCache } from '../memory/kv-cache.js';
import type { AdapterResidency } from './adapter-residency.js';
import { checkAdmission, type SchedulerLimits } from './admission.js';
import {
  type KvCapacityView,
  kvCapacityView,
  type ScheduleDecision,
  type ScheduledChunk,
  validateBatchLimits,
} from './batch-policy.js';
import { type Clock, systemClock } from './clock.js';
import { EarlyAbort } from './early-abort.js';
import { GenerationError, StreamStalledError } from './generation-error.js';
import { PrefixReuse } from './prefix-reuse.js';
import type { GenerationDelta, GenerationRequest, GenerationStream } from './request.js';
import {
  type AdapterQueueStats,
  type RequestEvent,
  RequestRegistry,
  type RequestState,
} from './request-registry.js';
import type { SchedulerEvent, SchedulerEventSink } from './scheduler-events.js';
import type { SchedulingPolicy } from './scheduling-policy.js';
import { type Sequence, sequencesFor } from './sequence.js';
import { SequenceQueues } from './sequence-queues.js';
import { StepBudget } from './step-budget.js';
import { buildStepPlan } from './step-plan.js';
import type { DecoderOptions, TokenDecoder } from './stop-checker.js';
import { TtftEstimator } from './ttft-estimator.js';

export type { SchedulerLimits } from './admission.js';
export { GenerationError, StreamStalledError } from './generation-error.js';

/** --stream-stall-timeout's default: how long a paused request waits for its consumer to read. */
export const DEFAULT_STREAM_STALL_TIMEOUT_MS = 60_000;

/**
 * Unread deltas per choice past which the server's requests pause. A consumer that reads drains
 * its stream within the step that filled it; what sits between a stalled client and this queue
 * (socket buffers, the response stream's buffer) holds the rest.
 */
export const MAX_UNREAD_DELTAS_PER_CHOICE = 32;

/** How often the loop plans again while only paused requests hold work (instead of every millisecond). */
const PAUSED_REPLAN_MS = 100;

export interface SchedulerOptions {
  kvCache: KvCache;
  /** The adapters: which are registered and resident, pins, and per-step residency work. */
  adapters: AdapterResidency;
  /** A fresh incremental decoder per choice, e.g. `(o) => new IncrementalDecoder(tokenizer, o.skipSpecialTokens)`. */
  newDecoder: (options: DecoderOptions) => TokenDecoder;
  eosTokenIds: readonly number[];
  limits: SchedulerLimits;
  /** Seed for requests that bring none. */
  drawSeed?: () => number;
  /** The batch policy (--scheduling-policy). */
  policy: SchedulingPolicy;
  /** Milliseconds; the process's monotonic clock unless a test or simulation brings its own. */
  clock?: Clock;
  events?: SchedulerEventSink;
  /**
   * --slo-ttft in milliseconds: under a policy that aborts early, a request whose first token is
   * estimated to come later than this after its arrival is refused or aborted before it runs.
   */
  sloTtftMs?: number | null;
  /**
   * Flow control between each request and its consumer (off when absent: simulations read events,
   * not streams). Past `maxUnreadPerChoice` unread deltas per choice a request pauses (its choices
   * sit steps out, holding their pages) until its consumer reads; paused `stallTimeoutMs`, it is
   * aborted with a StreamStalledError and its pages freed.
   */
  backpressure?: Backpressure | null;
  /**
   * --max-step-time in milliseconds: a step's token budget shrinks to what the measured time per
   * token says fits (step-budget.ts); null or absent: always maxNumBatchedTokens.
   */
  maxStepMs?: number | null;
}

export interface Backpressure {
  maxUnreadPerChoice: number;
  stallTimeoutMs: number;
}

export interface SchedulerStats {
  numRequests: number;
  /** Sequences (choices) waiting for admission, preempted ones included. */
  numWaiting: number;
  numRunning: number;
  /** Requests with a choice in the running batch (vLLM's num_requests_running). */
  numRunningRequests: number;
  /** Requests with no choice running and one waiting (vLLM's num_requests_waiting). */
  numWaitingRequests: number;
  /** Tokens of one KV block (a page's worth of positions across every layer, K and V). */
  kvBlockSize: number;
  /** Pool pages one KV block takes. */
  kvPagesPerBlock: number;
  /** Requests per adapter (base model omitted), counted as numRunningRequests/numWaitingRequests are. */
  requestsByAdapter: Record<string, AdapterQueueStats>;
  /** KV pages sequences hold (prefix-cached blocks they share counted once). */
  numKvPages: number;
  /** Pages of idle prefix-cached blocks: kept for reuse, reclaimed when pages are needed. */
  numPrefixCachedPages: number;
  /** Prompt tokens looked up in the prefix cache at admission, and of them found (vLLM's prefix_cache_queries / _hits). */
  numPrefixQueryTokens: number;
  numPrefixHitTokens: number;
  numAdapterPages: number;
  numFreePages: number;
  numGeneratedTokens: number;
  numPreemptions: number;
  numSteps: number;
  /** Requests aborted in the queue because their first token could not meet --slo-ttft. */
  numSloAborts: number;
}

/** One step the scheduler planned: the engine runs `plan`; `rows` are the sequences that sample. */
export interface PlannedStep {
  readonly kind: ScheduleDecision<Sequence>['kind'];
  readonly chunks: readonly ScheduledChunk<Sequence>[];
  readonly plan: StepPlan;
  readonly rows: readonly Sequence[];
  readonly startedAt: number;
}

/** What `schedule()` found: a step to run, nothing runnable until an adapter read settles, or plan again. */
export type ScheduleOutcome = PlannedStep | 'wait' | 'retry';

/**
 * The synchronous scheduler (nano-vllm's shape): `submit` queues a request, `schedule()` asks the
 * policy for the next step and returns its engine plan, `postprocess(step, tokens)` applies the
 * sampled tokens. It never awaits: the engine loop (engine-loop.ts) runs steps, and simulations
 * drive it directly with a ManualClock.
 *
 * Pages are only freed between steps: a sequence aborted while a step is in flight keeps its
 * pages until that step returns, so the engine never writes into a page someone else holds.
 */
export class Scheduler {
  private readonly requests: RequestRegistry;
  private readonly queues: SequenceQueues;
  private readonly capacity: KvCapacityView;
  private readonly drawSeed: () => number;
  private readonly policy: SchedulingPolicy;
  private readonly clock: Clock;
  private readonly estimator = new TtftEstimator();
  private readonly stepBudget: StepBudget;
  private readonly earlyAbort: EarlyAbort | null;
  /** Automatic prefix caching's decisions; null when it is off. */
  private readonly prefixReuse: PrefixReuse | null;
  private nextSeqId = 1;
  private isStepInFlight = false;
  /** reset_prefix_cache calls made while a step ran, answered when it returns. */
  private readonly resetsAfterStep: Array<(dropped: number) => void> = [];
  private isClosed = false;
  private numGeneratedTokens = 0;
  private numPreemptions = 0;
  private numSteps = 0;
  private numSloAborts = 0;
  private numFinishedInStep = 0;
  private readonly backpressure: Backpressure | null;
  private wakeWaiters: (() => void)[] = [];

  constructor(private readonly options: SchedulerOptions) {
    validateBatchLimits(options.limits);
    if (!Number.isInteger(options.limits.maxWaiting) || options.limits.maxWaiting < 1)
      throw new Error(`maxWaiting must be a positive integer, got ${options.limits.maxWaiting}`);
    const slo = options.sloTtftMs;
    if (slo !== undefined && slo !== null && !(slo > 0))
      throw new Error(`sloTtftMs must be positive, got ${slo}`);
    this.stepBudget = new StepBudget(options.maxStepMs ?? null, options.limits);
    this.backpressure = options.backpressure ?? null;
    if (this.backpressure) {
      const { maxUnreadPerChoice, stallTimeoutMs } = this.backpressure;
      if (!Number.isInteger(maxUnreadPerChoice) || maxUnreadPerChoice < 2)
        throw new Error(`maxUnreadPerChoice must be an integer of at least 2, got ${maxUnreadPerChoice}`);
      if (!(stallTimeoutMs > 0)) throw new Error(`stallTimeoutMs must be positive, got ${stallTimeoutMs}`);
    }
    this.requests = new RequestRegistry(this.backpressure?.maxUnreadPerChoice ?? null, {
      now: () => this.clock.now(),
      emit: (state, event) => this.emit(state, event),
      retire: (seq) => this.queues.retire(seq),
      releaseAdapter: (name) => this.queues.releaseAdapter(name),
      wake: () => this.wake(),
    });
    this.queues = new SequenceQueues(
      options.kvCache,
      options.adapters,
      (seq) => this.requests.forgetSequence(seq),
      options.policy.queueOrder,
    );
    this.capacity = kvCapacityView(options.kvCache, (name) => options.adapters.idleAdapterPages(name));
    this.drawSeed = options.drawSeed ?? (() => Math.floor(Math.random() * 4294967296));
    this.policy = options.policy;
    this.clock = options.clock ?? systemClock;
    this.earlyAbort =
      this.policy.abortsEarly && slo !== undefined && slo !== null
        ? new EarlyAbort(slo, options.limits, this.estimator, () => this.stepBudget.tokens)
        : null;
    this.prefixReuse = options.kvCache.prefixCache
      ? new PrefixReuse(
          options.kvCache,
          (name) => options.adapters.weightsId?.(name) ?? 0,
          (seq) => this.requests.ownerOf(seq),
        )
      : null;
    options.adapters.onReadFailure = (name, error) => this.failWaitingFor(name, error);
    options.adapters.onWeightsRetired = (name, weightsId) => this.prefixReuse?.retireWeights(name, weightsId);
  }

  /** Sequences queued or running: the engine loop runs while there are any. */
  get hasWork(): boolean {
    return !this.queues.isEmpty;
  }

  get numRunning(): number {
    return this.queues.running.length;
  }

  submit(req: GenerationRequest): GenerationStream {
    const { limits, kvCache, adapters } = this.options;
    checkAdmission(req, {
      limits,
      kvCache,
      isKnownAdapter: (name) => adapters.has(name),
      numWaiting: this.queues.waiting.length,
      isClosed: this.isClosed,
    });
    const refusal = this.earlyAbort?.refusal(
      req.promptTokens.length,
      req.sampling.n,
      this.queues.waiting,
      this.queues.running.length,
    );
    if (refusal) throw refusal;
    if (req.adapter !== null) adapters.acquire(req.adapter);
    const sequences = sequencesFor(req, this.nextSeqId, {
      eosTokenIds: this.options.eosTokenIds,
      maxModelLen: limits.maxModelLen,
      newDecoder: this.options.newDecoder,
      drawSeed: this.drawSeed,
    });
    this.nextSeqId += sequences.length;
    this.queues.enqueue(sequences);
    const stream = this.requests.open(req, sequences).stream;
    this.wake();
    return stream;
  }

  /**
   * When the engine loop finds nothing to run: resolves once something may have changed (a submit,
   * a paused consumer reading again, a request ending), else after `fallbackMs`; while requests are
   * paused, after PAUSED_REPLAN_MS at most, or at the earliest stall deadline if sooner (so the
   * clock's other deadlines, --slo-ttft's aborts in the queue, still come on time).
   */
  whenRunnable(fallbackMs: number): Promise<void> {
    const pausedAt = this.requests.earliestPause();
    const stallMs = this.backpressure?.stallTimeoutMs;
    const waitMs =
      pausedAt === null || stallMs === undefined
        ? fallbackMs
        : Math.max(1, Math.min(PAUSED_REPLAN_MS, pausedAt + stallMs - this.clock.now()));
    return new Promise((resolve) => {
      const wakeUp = () => {
        clearTimeout(timer);
        this.wakeWaiters = this.wakeWaiters.filter((waiter) => waiter !== wakeUp);
        resolve();
      };
      const timer = setTimeout(wakeUp, waitMs);
      this.wakeWaiters.push(wakeUp);
    });
  }

  stats(): SchedulerStats {
    const pool = this.options.kvCache.pool;
    const counts = this.requests.counts(this.clock.now());
    return {
      numRequests: this.requests.size,
      numWaiting: this.queues.waiting.length,
      numRunning: this.queues.running.length,
      numRunningRequests: counts.numRunning,
      numWaitingRequests: counts.numWaiting,
      kvBlockSize: this.options.kvCache.layout.tokensPerPage,
      kvPagesPerBlock: this.options.kvCache.layout.pagesPerBlock,
      requestsByAdapter: counts.byAdapter,
      numKvPages: pool.numUsed('kv') - this.options.kvCache.numIdleCachedPages,
      numPrefixCachedPages: this.options.kvCache.numIdleCachedPages,
      numPrefixQueryTokens: this.options.kvCache.prefixCache?.counters.numQueriedTokens ?? 0,
      numPrefixHitTokens: this.options.kvCache.prefixCache?.counters.numHitTokens ?? 0,
      numAdapterPages: pool.numUsed('adapter'),
      numFreePages: pool.numFree,
      numGeneratedTokens: this.numGeneratedTokens,
      numPreemptions: this.numPreemptions,
      numSteps: this.numSteps,
      numSloAborts: this.numSloAborts,
    };
  }

  adaptersInUse(): { running: string[]; waiting: string[] } {
    return this.queues.adaptersInUse();
  }

  /** Stops admitting and ends every open stream with finishReason 'abort'. */
  close(): void {
    this.isClosed = true;
    for (const state of this.requests.list()) this.requests.abort(state, 'shutdown', true);
  }

  /**
   * Plans the next step: aborts queued requests that can no longer meet the TTFT objective, asks
   * the policy, applies its queue changes, and reserves the step's pages. Call between steps
   * only, with the adapters' planning for this step open (AdapterResidency.planStep).
   */
  schedule(): ScheduleOutcome {
    if (this.isStepInFlight) throw new Error('schedule() while a step is in flight');
    this.abortLateRequests();
    this.abortStalledRequests();
    const blocked = this.queues.sequencesBehindStarved();
    const now = this.clock.now();
    this.prefixReuse?.probe(this.queues.waiting);
    const decision = this.policy.schedule({
      waiting: this.queues.waiting,
      running: this.queues.running,
      kv: this.capacity,
      limits: { ...this.options.limits, maxNumBatchedTokens: this.stepBudget.tokens },
      isReady: (seq) =>
        !blocked.has(seq) && this.isRunnable(seq) && !this.prefixReuse?.waitsForFirstChoice(seq),
      waitedMs: (seq) => now - (this.requests.ownerOf(seq)?.arrivedAt ?? now),
    });
    this.applyQueueChanges(decision);
    if (decision.kind === 'idle') return this.waitOrFailHead(blocked);
    const chunks = this.withResidentAdapters(decision.scheduled);
    if (chunks.length === 0) return 'retry';
    const scheduled = chunks.map(({ chunk }) => chunk);
    const plan = buildStepPlan(
      scheduled,
      chunks.map(({ adapter }) => adapter),
      this.options.kvCache,
    );
    this.isStepInFlight = true;
    this.queues.beginStep();
    return {
      kind: decision.kind,
      chunks: scheduled,
      plan,
      rows: scheduled.filter((chunk) => chunk.needsLogits).map((chunk) => chunk.seq),
      startedAt: now,
    };
  }

  /**
   * The step ran: one sampled id per row, in row order (a bare Int32Array when no sequence asked
   * for log-probabilities), with the log-probabilities the plan asked for.
   */
  postprocess(step: PlannedStep, sampled: Int32Array | SampledStep): void {
    const { tokens, logprobs, promptLogprobs } =
      sampled instanceof Int32Array ? { tokens: sampled, logprobs: [], promptLogprobs: [] } : sampled;
    this.endStep();
    this.numSteps++;
    this.numFinishedInStep = 0;
    let row = 0;
    for (const [i, { seq, numTokens, needsLogits }] of step.chunks.entries()) {
      const tokenLogprobs = needsLogits ? logprobs[row] : undefined;
      const tokenId = needsLogits ? tokens[row++] : -1;
      const state = this.requests.ownerOf(seq);
      if (!state || state.isDone || seq.isFinished) continue;
      try {
        this.acceptChunk(state, seq, numTokens, needsLogits, tokenId, tokenLogprobs, promptLogprobs[i]);
      } catch (error) {
        // One request's output that cannot be taken (a decoder or a guide that threw) fails that request alone.
        this.requests.fail(
          state,
          new GenerationError(`request ${state.req.requestId}: ${messageOf(error)}`, { cause: error }),
          'failed',
        );
      }
    }
    const numTokens = step.chunks.reduce((sum, chunk) => sum + chunk.numTokens, 0);
    const elapsedMs = this.clock.now() - step.startedAt;
    this.estimator.observe(numTokens, elapsedMs, this.numFinishedInStep);
    this.stepBudget.observe(numTokens, elapsedMs);
  }

  /** A step's chunk of one live sequence: its K/V progress, and the token its row sampled. */
  private acceptChunk(
    state: RequestState,
    seq: Sequence,
    numTokens: number,
    needsLogits: boolean,
    tokenId: number,
    tokenLogprobs: TokenLogprobs | null | undefined,
    chunkPromptLogprobs: readonly TokenLogprobs[] | null | undefined,
  ): void {
    const startPos = seq.numCachedTokens;
    seq.numCachedTokens += numTokens;
    this.prefixReuse?.commit(seq);
    // A recompute after preemption scores positions already scored: keep the first answers.
    chunkPromptLogprobs?.forEach((scored, t) => {
      if (startPos + t === seq.promptLogprobs.length) seq.promptLogprobs.push(scored);
    });
    if (!needsLogits) return;
    const scores: Pick<GenerationDelta, 'logprobs' | 'promptLogprobs'> = {};
    if (seq.numTopLogprobs !== null) {
      if (!tokenLogprobs) throw new Error(`sequence ${seq.seqId}: the engine returned no log-probabilities`);
      scores.logprobs = [tokenLogprobs];
    }
    if (seq.scoresPrompt && !seq.hasSentPromptLogprobs) {
      seq.hasSentPromptLogprobs = true;
      scores.promptLogprobs = seq.promptLogprobs;
    }
    // Its edits could not be made for this row, or not follow its token (a guide that threw).
    if (!seq.editsFailure) seq.appendToken(tokenId);
    if (seq.editsFailure)
      throw new Error(`its logit edits failed: ${messageOf(seq.editsFailure)}`, { cause: seq.editsFailure });
    this.numGeneratedTokens++;
    if (!state.hasFirstToken) {
      state.hasFirstToken = true;
      this.emit(state, { type: 'firstToken' });
    }
    this.emit(state, { type: 'token', index: seq.choiceIndex });
    const verdict = seq.stopChecker.accept(tokenId);
    if (verdict.finishReason) {
      this.numFinishedInStep++;
      this.requests.finishChoice(
        state,
        seq,
        verdict.finishReason,
        verdict.text,
        [tokenId],
        verdict.stopReason,
        scores,
      );
    } else
      state.stream.push({
        index: seq.choiceIndex,
        text: verdict.text,
        tokenIds: [tokenId],
        finishReason: null,
        ...scores,
      });
  }

  /** The engine could not run the step: its requests fail with `error`. */
  failStep(step: PlannedStep, error: Error): void {
    this.endStep();
    for (const state of new Set(step.chunks.map(({ seq }) => this.requests.ownerOf(seq)))) {
      if (state) this.requests.fail(state, error, 'failed');
    }
  }

  /** Scheduling itself failed (a bug): nothing can be trusted to continue, so fail what is live. */
  failAll(error: Error): void {
    if (this.isStepInFlight) this.endStep();
    for (const state of this.requests.list()) this.requests.fail(state, error, 'failed');
  }

  /** Its adapter is in the pool and its consumer keeps up (a paused request's choices sit steps out). */
  private isRunnable(seq: Sequence): boolean {
    return this.queues.isAdapterReady(seq) && !this.requests.isPaused(seq);
  }

  private wake(): void {
    for (const waiter of this.wakeWaiters.splice(0)) waiter();
  }

  /** Backpressure's bound in time: a request paused for the stall timeout is aborted, its pages freed. */
  private abortStalledRequests(): void {
    if (!this.backpressure) return;
    const { stallTimeoutMs } = this.backpressure;
    for (const state of this.requests.stalled(this.clock.now(), stallTimeoutMs))
      this.requests.fail(state, new StreamStalledError(state.req.requestId, stallTimeoutMs), 'stalled');
  }

  private endStep(): void {
    this.isStepInFlight = false;
    this.queues.endStep();
    const waiting = this.resetsAfterStep.splice(0);
    if (waiting.length > 0) {
      const dropped = this.options.kvCache.prefixCache!.reset();
      for (const resolve of waiting) resolve(dropped);
    }
  }

  /**
   * vLLM's reset_prefix_cache: nothing cached before it is reused after it (blocks running
   * sequences hold stay theirs until they let go). Done between steps: at once when no step is in
   * flight, else when it returns. Resolves to the blocks dropped; null without prefix caching.
   */
  resetPrefixCache(): Promise<number | null> {
    const cache = this.options.kvCache.prefixCache;
    if (!cache) return Promise.resolve(null);
    if (!this.isStepInFlight) return Promise.resolve(cache.reset());
    return new Promise((resolve) => this.resetsAfterStep.push(resolve));
  }

  private emit(state: RequestState, event: RequestEvent): void {
    this.options.events?.({
      ...event,
      time: this.clock.now(),
      requestId: state.req.requestId,
      adapter: state.req.adapter,
    } as SchedulerEvent);
  }

  /** S-LoRA's early abort in the queue: late requests fail before they cost compute. */
  private abortLateRequests(): void {
    if (!this.earlyAbort) return;
    const late = this.earlyAbort.lateRequests(
      this.queues.waiting,
      this.queues.running.length,
      this.clock.now(),
      (seq) => this.requests.ownerOf(seq),
    );
    for (const { request, error } of late) {
      this.numSloAborts++;
      this.requests.fail(request, error, 'slo');
    }
  }

  private applyQueueChanges(decision: ScheduleDecision<Sequence>): void {
    for (const seq of decision.preempted) {
      this.queues.preempt(seq);
      this.numPreemptions++;
      const state = this.requests.ownerOf(seq);
      if (state) this.emit(state, { type: 'preempted', index: seq.choiceIndex });
    }
    for (const seq of decision.cannotFit) {
      // Idle adapters kept for the queue may be what is in the way: a running sequence goes first.
      if (this.options.adapters.evictIdleExcept(seq.adapter) > 0) continue;
      this.endUnfittable(seq);
    }
    for (const seq of decision.admitted) {
      this.prefixReuse?.noteAdmission(seq);
      this.queues.admit(seq);
      const state = this.requests.ownerOf(seq);
      if (state && !state.isScheduled) {
        state.isScheduled = true;
        state.req.onScheduled?.();
        this.emit(state, { type: 'admitted' });
      }
    }
  }

  /**
   * Nothing could be scheduled. When waiting sequences wait for their adapters to come from disk,
   * the loop waits for a read to finish; otherwise the first ready sequence cannot fit the pool
   * even alone.
   */
  private waitOrFailHead(blocked: ReadonlySet<Sequence>): ScheduleOutcome {
    const head = this.queues.waiting.find((seq) => !blocked.has(seq) && this.isRunnable(seq));
    if (head && this.queues.running.length === 0) {
      // Nothing runs: other adapters kept resident for the queue may be what is in the way.
      if (this.options.adapters.evictIdleExcept(head.adapter) === 0) this.endUnfittable(head);
      return 'retry';
    }
    return 'wait';
  }

  /** The adapter's weights could not be read: its requests that have not started fail with the reason. */
  private failWaitingFor(name: string, error: unknown): void {
    const failure = new GenerationError(`adapter "${name}" could not be loaded: ${messageOf(error)}`, {
      cause: error,
    });
    for (const state of this.requests.list()) {
      if (state.req.adapter === name && state.sequences.every((seq) => !seq.holdsAdapterPin))
        this.requests.fail(state, failure, 'failed');
    }
  }

  /** A choice that has generated ends at the cache's limit; one that has not fails its request. */
  private endUnfittable(seq: Sequence): void {
    const state = this.requests.ownerOf(seq);
    if (!state) return;
    if (seq.numCompletionTokens > 0) {
      this.requests.finishChoice(state, seq, 'length', seq.stopChecker.drain(), []);
      return;
    }
    const free = this.options.kvCache.pool.numFree + this.capacity.numPagesHeld(seq.seqId);
    this.requests.fail(
      state,
      new GenerationError(
        `request ${state.req.requestId}: a sequence of ${seq.numTokens} tokens does not fit the KV pages left beside the resident adapters (${free} pages)`,
      ),
      'failed',
    );
  }

  /** Drops chunks whose adapter was evicted since submit, failing their requests. */
  private withResidentAdapters(
    chunks: ScheduledChunk<Sequence>[],
  ): Array<{ chunk: ScheduledChunk<Sequence>; adapter: AdapterLayout | null }> {
    const kept: Array<{ chunk: ScheduledChunk<Sequence>; adapter: AdapterLayout | null }> = [];
    for (const chunk of chunks) {
      const state = this.requests.ownerOf(chunk.seq);
      if (!state || state.isDone) continue;
      const name = chunk.seq.adapter;
      const adapter = name === null ? null : this.options.adapters.layoutOf(name);
      if (name !== null && !adapter) {
        this.requests.fail(
          state,
          new GenerationError(`request ${state.req.requestId}: adapter "${name}" is no longer resident`),
          'failed',
        );
        continue;
      }
      kept.push({ chunk, adapter });
    }
    return kept.filter(({ chunk }) => !this.requests.ownerOf(chunk.seq)?.isDone);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
