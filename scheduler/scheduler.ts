import type { Engine } from '../kernels/engine.js';
import { sampleToken } from '../kernels/reference/sample.js';
import type { AdapterLayout } from '../memory/adapter-layout.js';
import type { KvCache } from '../memory/kv-cache.js';
import type { AdapterResidency } from './adapter-residency.js';
import { checkAdmission, type SchedulerLimits } from './admission.js';
import {
  type KvCapacityView,
  kvCapacityView,
  type ScheduleDecision,
  type ScheduledChunk,
  schedule,
  validateBatchLimits,
} from './batch-policy.js';
import { DeltaStream } from './delta-stream.js';
import { GenerationError } from './generation-error.js';
import type { FinishReason, GenerationRequest, GenerationStream } from './request.js';
import { type Sequence, sequencesFor } from './sequence.js';
import { buildStepPlan } from './step-plan.js';
import { stepTokens } from './step-tokens.js';
import type { TokenDecoder } from './stop-checker.js';

export type { SchedulerLimits } from './admission.js';
export { GenerationError } from './generation-error.js';

export interface SchedulerOptions {
  engine: Engine;
  kvCache: KvCache;
  /** The adapters: which are registered and resident, pins, and per-step residency work. */
  adapters: AdapterResidency;
  /** A fresh incremental decoder per choice, e.g. `() => new IncrementalDecoder(tokenizer)`. */
  newDecoder: () => TokenDecoder;
  eosTokenIds: readonly number[];
  limits: SchedulerLimits;
  /** Seed for requests that bring none. */
  drawSeed?: () => number;
  /** Host sampler; kernels/reference/sample.ts's sampleToken unless a faster equivalent is given. */
  sample?: typeof sampleToken;
  /** Sample on the engine when it offers Engine.sampleStep (default true); false always samples on the host. */
  sampleOnEngine?: boolean;
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
  /** Requests per adapter (null key = base model omitted), counted as numRunningRequests/numWaitingRequests are. */
  requestsByAdapter: Record<string, { running: number; waiting: number }>;
  numKvPages: number;
  numAdapterPages: number;
  numFreePages: number;
  numGeneratedTokens: number;
  numPreemptions: number;
  numSteps: number;
}

interface RequestState {
  req: GenerationRequest;
  sequences: Sequence[];
  stream: DeltaStream;
  isDone: boolean;
  /** Whether a step has scheduled one of its choices yet (`onScheduled` fires once). */
  isScheduled: boolean;
  detachSignal: () => void;
}

/**
 * Continuous batching across adapters: every step asks the batch policy what to run, runs it as
 * one engine step (sequences of any adapter and of the base model side by side), samples each
 * choice's next token with its own seeded stream, and streams text back. New requests join at
 * the next step; finished, aborted and failed ones leave and give their pages back.
 *
 * Pages are only freed between steps: a sequence aborted while a step is in flight keeps its
 * pages until that step returns, so the engine never writes into a page someone else holds.
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly owners = new Map<Sequence, RequestState>();
  private readonly requests = new Set<RequestState>();
  /** Sequences to drop once the step in flight returns. */
  private readonly retireAfterStep: Sequence[] = [];
  /** Ended requests whose adapter is released once no step in flight can still read it. */
  private readonly releaseAfterStep: RequestState[] = [];
  private readonly capacity: KvCapacityView;
  private readonly drawSeed: () => number;
  private readonly sample: typeof sampleToken;
  private nextSeqId = 1;
  private loop: Promise<void> | null = null;
  private isStepInFlight = false;
  private isClosed = false;
  private numGeneratedTokens = 0;
  private numPreemptions = 0;
  private numSteps = 0;

  constructor(private readonly options: SchedulerOptions) {
    validateBatchLimits(options.limits);
    if (!Number.isInteger(options.limits.maxWaiting) || options.limits.maxWaiting < 1)
      throw new Error(`maxWaiting must be a positive integer, got ${options.limits.maxWaiting}`);
    this.capacity = kvCapacityView(options.kvCache, (name) => options.adapters.idleAdapterPages(name));
    this.drawSeed = options.drawSeed ?? (() => Math.floor(Math.random() * 4294967296));
    this.sample = options.sample ?? sampleToken;
    options.adapters.onReadFailure = (name, error) => this.failWaitingFor(name, error);
  }

  submit(req: GenerationRequest): GenerationStream {
    const { limits, kvCache, adapters } = this.options;
    checkAdmission(req, {
      limits,
      kvCache,
      isKnownAdapter: (name) => adapters.has(name),
      numWaiting: this.waiting.length,
      isClosed: this.isClosed,
    });
    if (req.adapter !== null) adapters.acquire(req.adapter);
    const sequences = sequencesFor(req, this.nextSeqId, {
      eosTokenIds: this.options.eosTokenIds,
      maxModelLen: limits.maxModelLen,
      newDecoder: this.options.newDecoder,
      drawSeed: this.drawSeed,
    });
    this.nextSeqId += sequences.length;
    const state: RequestState = {
      req,
      sequences,
      stream: new DeltaStream(req.promptTokens.length, () => this.abort(state, false)),
      isDone: false,
      isScheduled: false,
      detachSignal: () => {},
    };
    this.requests.add(state);
    for (const seq of sequences) this.owners.set(seq, state);
    this.waiting.push(...sequences);

    const signal = req.signal;
    if (signal) {
      const onAbort = () => this.abort(state, true);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        state.detachSignal = () => signal.removeEventListener('abort', onAbort);
      }
    }
    this.ensureLoop();
    return state.stream;
  }

  stats(): SchedulerStats {
    const pool = this.options.kvCache.pool;
    let numRunningRequests = 0;
    let numWaitingRequests = 0;
    const requestsByAdapter: SchedulerStats['requestsByAdapter'] = {};
    for (const { req, sequences } of this.requests) {
      const isRunning = sequences.some((seq) => seq.status === 'running');
      const isWaiting = !isRunning && sequences.some((seq) => seq.status === 'waiting');
      if (isRunning) numRunningRequests++;
      if (isWaiting) numWaitingRequests++;
      if (req.adapter !== null && (isRunning || isWaiting)) {
        const counts = requestsByAdapter[req.adapter] ?? { running: 0, waiting: 0 };
        requestsByAdapter[req.adapter] = counts;
        if (isRunning) counts.running++;
        else counts.waiting++;
      }
    }
    return {
      numRequests: this.requests.size,
      numWaiting: this.waiting.length,
      numRunning: this.running.length,
      numRunningRequests,
      numWaitingRequests,
      kvBlockSize: this.options.kvCache.layout.tokensPerPage,
      kvPagesPerBlock: this.options.kvCache.layout.pagesPerBlock,
      requestsByAdapter,
      numKvPages: pool.numUsed('kv'),
      numAdapterPages: pool.numUsed('adapter'),
      numFreePages: pool.numFree,
      numGeneratedTokens: this.numGeneratedTokens,
      numPreemptions: this.numPreemptions,
      numSteps: this.numSteps,
    };
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

  /** Stops admitting, ends every open stream with finishReason 'abort', resolves once the loop is idle. */
  async close(): Promise<void> {
    this.isClosed = true;
    for (const state of [...this.requests]) this.abort(state, true);
    await this.loop;
  }

  private ensureLoop(): void {
    if (this.loop) return;
    this.loop = this.runLoop().finally(() => {
      this.loop = null;
    });
  }

  private async runLoop(): Promise<void> {
    // Start on a later turn: `this.loop` is set before any step runs (a submit from inside a step
    // must not start a second loop), and requests submitted together share the first step.
    await nextTurn();
    while (this.waiting.length > 0 || this.running.length > 0) {
      try {
        await this.runOneStep();
      } catch (error) {
        // A bug in scheduling itself: nothing can be trusted to continue, so fail what is live.
        const failure = new GenerationError(`scheduler failed: ${messageOf(error)}`, { cause: error });
        for (const state of [...this.requests]) this.fail(state, failure);
      }
      // Let submits, aborts and consumers run between steps even when the engine answers at once.
      await nextTurn();
    }
  }

  private async runOneStep(): Promise<void> {
    const { adapters, kvCache } = this.options;
    const wanted = this.adaptersInUse();
    // Adapters are made resident (and evicted) only here, between steps; the running sequences
    // may each need one more KV block at this step, which residency leaves alone.
    adapters.planStep(wanted.running, wanted.waiting, this.running.length * kvCache.layout.pagesPerBlock);
    let chunks: Array<{ chunk: ScheduledChunk<Sequence>; adapter: AdapterLayout | null }>;
    let plan: ReturnType<typeof buildStepPlan>;
    try {
      const blocked = this.sequencesBehindStarved();
      const decision = schedule(
        this.waiting,
        this.running,
        this.capacity,
        this.options.limits,
        (seq) => !blocked.has(seq) && this.isAdapterReady(seq),
      );
      this.applyQueueChanges(decision);
      if (decision.kind === 'idle') {
        await this.waitOrFailHead(blocked);
        return;
      }
      chunks = this.withResidentAdapters(decision.scheduled);
      if (chunks.length === 0) return;
      plan = buildStepPlan(
        chunks.map(({ chunk }) => chunk),
        chunks.map(({ adapter }) => adapter),
        kvCache,
      );
    } finally {
      adapters.endPlanning();
    }
    this.isStepInFlight = true;
    let tokens: Int32Array;
    try {
      const step = stepTokens(
        this.options.engine,
        plan,
        chunks.filter(({ chunk }) => chunk.needsLogits).map(({ chunk }) => chunk.seq),
        this.sample,
        this.options.sampleOnEngine ?? true,
      );
      // The step is under way: read queued adapters from disk and write them into free pages now,
      // so the next step finds them resident instead of waiting on the copy.
      adapters.prefetchDuringStep();
      tokens = await step;
    } catch (error) {
      this.isStepInFlight = false;
      const failure = new GenerationError(`engine step failed: ${messageOf(error)}`, { cause: error });
      for (const state of new Set(chunks.map(({ chunk }) => this.owners.get(chunk.seq)))) {
        if (state) this.fail(state, failure);
      }
      this.retirePending();
      return;
    }
    this.isStepInFlight = false;
    this.numSteps++;
    this.retirePending();
    this.postprocess(
      chunks.map(({ chunk }) => chunk),
      tokens,
    );
  }

  private applyQueueChanges(decision: ScheduleDecision<Sequence>): void {
    const kv = this.options.kvCache;
    for (const seq of decision.preempted) {
      kv.free(seq.seqId);
      this.unpinAdapter(seq);
      seq.numCachedTokens = 0;
      seq.status = 'waiting';
      removeFrom(this.running, seq);
      this.waiting.unshift(seq);
      this.numPreemptions++;
    }
    for (const seq of decision.cannotFit) {
      // Idle adapters kept for the queue may be what is in the way: a running sequence goes first.
      if (this.options.adapters.evictIdleExcept(seq.adapter) > 0) continue;
      this.endUnfittable(seq);
    }
    for (const seq of decision.admitted) {
      seq.status = 'running';
      removeFrom(this.waiting, seq);
      this.running.push(seq);
      const state = this.owners.get(seq);
      if (state && !state.isScheduled) {
        state.isScheduled = true;
        state.req.onScheduled?.();
      }
      if (seq.adapter === null) continue;
      this.options.adapters.pin(seq.adapter);
      seq.holdsAdapterPin = true;
      if (!seq.wasScheduled) this.options.adapters.noteFirstStep(seq.adapter);
      seq.wasScheduled = true;
    }
  }

  /**
   * Waiting sequences may pass one whose adapter is still loading, but not forever: once a
   * sequence has waited STARVATION_STEPS planned steps for its adapter, nothing behind it is
   * admitted, so running sequences drain and unpin until its adapter fits.
   */
  private sequencesBehindStarved(): Set<Sequence> {
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

  /** A sequence can run when it needs no adapter or its adapter is in the pool. */
  private isAdapterReady(seq: Sequence): boolean {
    return seq.adapter === null || this.options.adapters.isResident(seq.adapter);
  }

  private unpinAdapter(seq: Sequence): void {
    if (!seq.holdsAdapterPin || seq.adapter === null) return;
    this.options.adapters.unpin(seq.adapter);
    seq.holdsAdapterPin = false;
  }

  /**
   * Nothing could be scheduled. When waiting sequences wait for their adapters to come from disk,
   * wait for a read to finish; otherwise the first ready sequence cannot fit the pool even alone.
   */
  private async waitOrFailHead(blocked: ReadonlySet<Sequence>): Promise<void> {
    const head = this.waiting.find((seq) => !blocked.has(seq) && this.isAdapterReady(seq));
    if (head && this.running.length === 0) {
      // Nothing runs: other adapters kept resident for the queue may be what is in the way.
      if (this.options.adapters.evictIdleExcept(head.adapter) > 0) return;
      this.endUnfittable(head);
      return;
    }
    // Nothing to wait on (no read in flight): give the event loop a moment rather than spin.
    await (this.options.adapters.whenReadSettles() ?? new Promise((resolve) => setTimeout(resolve, 1)));
  }

  /** The adapter's weights could not be read: its requests that have not started fail with the reason. */
  private failWaitingFor(name: string, error: unknown): void {
    const failure = new GenerationError(`adapter "${name}" could not be loaded: ${messageOf(error)}`, {
      cause: error,
    });
    for (const state of [...this.requests]) {
      if (state.req.adapter === name && state.sequences.every((seq) => !seq.holdsAdapterPin))
        this.fail(state, failure);
    }
  }

  /** A choice that has generated ends at the cache's limit; one that has not fails its request. */
  private endUnfittable(seq: Sequence): void {
    const state = this.owners.get(seq);
    if (!state) return;
    if (seq.numCompletionTokens > 0) {
      this.finishSequence(state, seq, 'length', seq.stopChecker.drain(), []);
      return;
    }
    const free = this.options.kvCache.pool.numFree + this.capacity.numPagesHeld(seq.seqId);
    this.fail(
      state,
      new GenerationError(
        `request ${state.req.requestId}: a sequence of ${seq.numTokens} tokens does not fit the KV pages left beside the resident adapters (${free} pages)`,
      ),
    );
  }

  /** Drops chunks whose adapter was evicted since submit, failing their requests. */
  private withResidentAdapters(
    chunks: ScheduledChunk<Sequence>[],
  ): Array<{ chunk: ScheduledChunk<Sequence>; adapter: AdapterLayout | null }> {
    const kept: Array<{ chunk: ScheduledChunk<Sequence>; adapter: AdapterLayout | null }> = [];
    for (const chunk of chunks) {
      const state = this.owners.get(chunk.seq);
      if (!state || state.isDone) continue;
      const name = chunk.seq.adapter;
      const adapter = name === null ? null : this.options.adapters.layoutOf(name);
      if (name !== null && !adapter) {
        this.fail(
          state,
          new GenerationError(`request ${state.req.requestId}: adapter "${name}" is no longer resident`),
        );
        continue;
      }
      kept.push({ chunk, adapter });
    }
    return kept.filter(({ chunk }) => !this.owners.get(chunk.seq)?.isDone);
  }

  /** `tokens`: one sampled id per chunk that needed logits, in chunk order. */
  private postprocess(chunks: ScheduledChunk<Sequence>[], tokens: Int32Array): void {
    let row = 0;
    for (const { seq, numTokens, needsLogits } of chunks) {
      const tokenId = needsLogits ? tokens[row++] : -1;
      const state = this.owners.get(seq);
      if (!state || state.isDone || seq.isFinished) continue;
      seq.numCachedTokens += numTokens;
      if (!needsLogits) continue;
      seq.appendToken(tokenId);
      this.numGeneratedTokens++;
      const verdict = seq.stopChecker.accept(tokenId);
      if (verdict.finishReason)
        this.finishSequence(state, seq, verdict.finishReason, verdict.text, [tokenId], verdict.stopReason);
      else
        state.stream.push({
          index: seq.choiceIndex,
          text: verdict.text,
          tokenIds: [tokenId],
          finishReason: null,
        });
    }
  }

  private finishSequence(
    state: RequestState,
    seq: Sequence,
    reason: FinishReason,
    text: string,
    tokenIds: number[],
    stopReason?: string | number,
  ): void {
    seq.finish(reason);
    state.stream.push({
      index: seq.choiceIndex,
      text,
      tokenIds,
      finishReason: reason,
      ...(stopReason === undefined ? {} : { stopReason }),
    });
    this.retire(seq);
    if (state.sequences.every((s) => s.isFinished)) this.settle(state);
  }

  /** Aborted by the client (signal) or by the consumer leaving the stream (no one reads deltas then). */
  private abort(state: RequestState, emitDeltas: boolean): void {
    if (state.isDone) return;
    for (const seq of state.sequences) {
      if (seq.isFinished) continue;
      seq.finish('abort');
      if (emitDeltas)
        state.stream.push({ index: seq.choiceIndex, text: '', tokenIds: [], finishReason: 'abort' });
      this.retire(seq);
    }
    this.settle(state);
  }

  private fail(state: RequestState, error: Error): void {
    if (state.isDone) return;
    for (const seq of state.sequences) {
      if (seq.isFinished) continue;
      seq.finish('abort');
      this.retire(seq);
    }
    state.stream.fail(error);
    this.settle(state);
  }

  private settle(state: RequestState): void {
    state.isDone = true;
    state.detachSignal();
    state.stream.end();
    this.requests.delete(state);
    this.releaseAfterStep.push(state);
    if (!this.isStepInFlight) this.retirePending();
  }

  /** Takes the sequence out of the queues and frees its pages, or does so after the step in flight. */
  private retire(seq: Sequence): void {
    if (this.isStepInFlight) {
      this.retireAfterStep.push(seq);
      return;
    }
    removeFrom(this.waiting, seq);
    removeFrom(this.running, seq);
    this.options.kvCache.free(seq.seqId);
    this.unpinAdapter(seq);
    this.owners.delete(seq);
  }

  /** Retires what waited for the step in flight, then lets go of the ended requests' adapters. */
  private retirePending(): void {
    for (const seq of this.retireAfterStep.splice(0)) this.retire(seq);
    for (const state of this.releaseAfterStep.splice(0))
      if (state.req.adapter !== null) this.options.adapters.release(state.req.adapter);
  }
}

/** Planned steps a waiting sequence may be passed over while its adapter loads. */
const STARVATION_STEPS = 64;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function removeFrom(queue: Sequence[], seq: Sequence): void {
  const at = queue.indexOf(seq);
  if (at >= 0) queue.splice(at, 1);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
