import type { KvCache } from '../memory/kv-cache.js';

/**
 * The batch policy: which sequences run in the next engine step, and how many of their tokens.
 * Pure and deterministic: queues and a read-only view of KV capacity in, a decision out; the
 * scheduler applies it (moves queues, reserves and frees pages). Same shape as nano-vllm's
 * `schedule() → (sequences, isPrefill)`, with chunked prefill and a token budget:
 *
 *  - prefill step, when any prefill work fits: first the next chunk of sequences already
 *    admitted but not fully prefilled (admission order), then waiting sequences first come,
 *    first served (never skipping the head) while the token budget, `maxNumSeqs` and the pool
 *    allow, keeping back the pages the running decoders need at their next step. A prompt
 *    longer than the budget runs in chunks over several steps; only the chunk that reaches its
 *    last token needs logits.
 *  - otherwise a decode step: one token for every running sequence. When the pool cannot give a
 *    sequence the page it needs, the most recently admitted sequence is preempted by recompute
 *    (its pages are freed and it goes back to the head of the waiting queue); a sequence that is
 *    alone and still cannot grow can never fit and must finish.
 */

/** What the policy reads of a sequence. */
export interface SchedulableSequence {
  readonly seqId: number;
  /** Prompt plus generated tokens. */
  readonly numTokens: number;
  /** Tokens whose K/V are in the cache. */
  readonly numCachedTokens: number;
  /** The adapter the sequence runs with (null or absent: the base model). */
  readonly adapter?: string | null;
  /** vLLM's request priority, lower first (absent: 0); only the priority policy reads it. */
  readonly priority?: number;
}

/** A read-only view of KV capacity. */
export interface KvCapacityView {
  readonly numFreePages: number;
  /** Pages the sequence needs beyond what it holds to cache `numTokens` tokens in all. */
  pagesNeeded(seqId: number, numTokens: number): number;
  /** What preempting the sequence gives back: its pages, less prefix-cached blocks others hold too. */
  numPagesHeld(seqId: number): number;
  /**
   * Pages of a resident but idle adapter that numFreePages counts as reclaimable: admitting a
   * sequence of that adapter pins it, so the pages are no longer there for KV (0 if not counted).
   */
  idleAdapterPages?(adapter: string): number;
}

/**
 * The unified capacity view: free pages plus the pages of idle resident adapters that the pool's
 * reclaimer would evict for KV (adapters the running sequences or the planned queue need are not
 * counted: they are pinned or protected while the step is planned).
 */
export function kvCapacityView(kv: KvCache, idleAdapterPages?: (adapter: string) => number): KvCapacityView {
  return {
    idleAdapterPages,
    get numFreePages() {
      return kv.pool.numAvailable;
    },
    pagesNeeded: (seqId, numTokens) => kv.pagesNeeded(seqId, numTokens),
    numPagesHeld: (seqId) => kv.pagesFreedBy(seqId),
  };
}

export interface BatchLimits {
  /** Sequences running at once. */
  maxNumSeqs: number;
  /** Tokens one engine step may run (the token budget); at least maxNumSeqs. */
  maxNumBatchedTokens: number;
  /** Tokens (prompt + generated) one sequence may hold. */
  maxModelLen: number;
  /**
   * Tokens of one sequence in one step: the engine's run limit (Engine.runLimits), so a long prompt
   * is chunked here, where the policy counts it, rather than split again inside the engine.
   */
  maxChunkTokens?: number;
}

/** The most tokens of one sequence a step may run: what is pending, within the budget and the engine's limit. */
export function chunkTokens(pending: number, budget: number, limits: BatchLimits): number {
  return Math.min(pending, budget, limits.maxChunkTokens ?? Number.POSITIVE_INFINITY);
}

export interface ScheduledChunk<S> {
  seq: S;
  /** Tokens to run, starting at seq.numCachedTokens. */
  numTokens: number;
  /** The chunk reaches the sequence's last token, whose logits pick the next token. */
  needsLogits: boolean;
}

export interface ScheduleDecision<S> {
  /** mixed: decodes first, then prefill chunks in the rest of the token budget (the slora policy). */
  kind: 'prefill' | 'decode' | 'mixed' | 'idle';
  /** In step order. */
  scheduled: ScheduledChunk<S>[];
  /** Waiting sequences that join the running set (all of them are in `scheduled`), in order. */
  admitted: S[];
  /** Running sequences to preempt by recompute, newest first. */
  preempted: S[];
  /** Running sequences the pool cannot grow even alone: they must finish now. */
  cannotFit: S[];
}

export function validateBatchLimits(limits: BatchLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  if (limits.maxNumBatchedTokens < limits.maxNumSeqs)
    throw new Error(
      `maxNumBatchedTokens ${limits.maxNumBatchedTokens} must be at least maxNumSeqs ${limits.maxNumSeqs} so a decode step fits`,
    );
}

/**
 * `isReady(seq)`: whether the sequence's adapter is in the pool. A waiting sequence that is not
 * ready is passed over (its adapter is on its way from disk or host RAM) rather than holding up
 * the queue behind it; a running one (its adapter being swapped in place) sits this step out.
 */
export function schedule<S extends SchedulableSequence>(
  waiting: readonly S[],
  running: readonly S[],
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean = () => true,
): ScheduleDecision<S> {
  checkSequenceLengths(waiting, running, limits);
  const prefill = planPrefill(waiting, running, kv, limits, isReady);
  if (prefill.scheduled.length > 0) return prefill;
  return planDecode(running, kv, limits, isReady);
}

/** No sequence may hold more than maxModelLen tokens: the stop checker ends each one there. */
export function checkSequenceLengths(
  waiting: readonly SchedulableSequence[],
  running: readonly SchedulableSequence[],
  limits: BatchLimits,
): void {
  for (const seq of [...waiting, ...running]) {
    if (seq.numTokens > limits.maxModelLen)
      throw new Error(
        `sequence ${seq.seqId} holds ${seq.numTokens} tokens, beyond maxModelLen ${limits.maxModelLen}`,
      );
  }
}

export function numPending(seq: SchedulableSequence): number {
  return seq.numTokens - seq.numCachedTokens;
}

function planPrefill<S extends SchedulableSequence>(
  waiting: readonly S[],
  running: readonly S[],
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean,
): ScheduleDecision<S> {
  let budget = limits.maxNumBatchedTokens;
  // Pages the running decoders take at the next decode step stay out of reach of prefills, or a
  // prefill would be preempted right back by the decode step after it.
  let free = kv.numFreePages - pagesForNextDecode(running, kv);
  const scheduled: ScheduledChunk<S>[] = [];
  for (const seq of running) {
    const pending = numPending(seq);
    if (pending <= 1 || !isReady(seq)) continue;
    if (budget === 0) break;
    // An admitted sequence may shrink its chunk to what the pool holds: it already has pages.
    const numTokens = tokensThatFit(kv, seq, chunkTokens(pending, budget, limits), free);
    if (numTokens === 0) continue;
    free -= kv.pagesNeeded(seq.seqId, seq.numCachedTokens + numTokens);
    budget -= numTokens;
    scheduled.push({ seq, numTokens, needsLogits: numTokens === pending });
  }
  const admissions = admitInOrder(waiting, running.length, { budget, free }, kv, limits, isReady);
  scheduled.push(...admissions.scheduled);
  return { kind: 'prefill', scheduled, admitted: admissions.admitted, preempted: [], cannotFit: [] };
}

/**
 * Admissions in the waiting queue's order (first come first served, or by priority): one whose
 * adapter is not ready is passed over; the first that does not fit ends admission, so nothing
 * overtakes it for pages. `room` is the token budget and the pages left to the admissions.
 */
export function admitInOrder<S extends SchedulableSequence>(
  waiting: readonly S[],
  numRunning: number,
  room: { budget: number; free: number },
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean,
): { admitted: S[]; scheduled: ScheduledChunk<S>[] } {
  let { budget, free } = room;
  const admitted: S[] = [];
  const scheduled: ScheduledChunk<S>[] = [];
  // Idle adapters whose pages this plan keeps (by admitting one of their sequences).
  const kept = new Set<string>();
  for (const seq of waiting) {
    if (budget <= 0 || numRunning + admitted.length >= limits.maxNumSeqs) break;
    if (!isReady(seq)) continue;
    const pending = numPending(seq);
    const numTokens = chunkTokens(pending, budget, limits);
    const adapter = seq.adapter ?? null;
    const adapterPages = adapter !== null && !kept.has(adapter) ? (kv.idleAdapterPages?.(adapter) ?? 0) : 0;
    const need = kv.pagesNeeded(seq.seqId, seq.numCachedTokens + numTokens) + adapterPages;
    if (need > free) break;
    if (adapter !== null) kept.add(adapter);
    free -= need;
    budget -= numTokens;
    admitted.push(seq);
    scheduled.push({ seq, numTokens, needsLogits: numTokens === pending });
  }
  return { admitted, scheduled };
}

function pagesForNextDecode(running: readonly SchedulableSequence[], kv: KvCapacityView): number {
  let pages = 0;
  for (const seq of running) if (numPending(seq) === 1) pages += kv.pagesNeeded(seq.seqId, seq.numTokens);
  return pages;
}

/** Most tokens, up to `wanted`, whose pages fit in `free` (pages grow monotonically with tokens). */
export function tokensThatFit(
  kv: KvCapacityView,
  seq: SchedulableSequence,
  wanted: number,
  free: number,
): number {
  let lo = 0;
  let hi = wanted;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (kv.pagesNeeded(seq.seqId, seq.numCachedTokens + mid) <= free) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function planDecode<S extends SchedulableSequence>(
  running: readonly S[],
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean,
): ScheduleDecision<S> {
  const { scheduled, preempted, cannotFit } = planDecodePass(running, kv, limits, isReady);
  const isIdle = scheduled.length === 0 && preempted.length === 0 && cannotFit.length === 0;
  return { kind: isIdle ? 'idle' : 'decode', scheduled, admitted: [], preempted, cannotFit };
}

export interface DecodePass<S> {
  /** One token for each running sequence that decodes, in running order. */
  scheduled: ScheduledChunk<S>[];
  preempted: S[];
  cannotFit: S[];
  /** Pages left once every staying sequence has room for one more token. */
  free: number;
}

/**
 * Room for one more token for every running sequence, preempting the newest while the pool is
 * short; decoding sequences (one token pending) that are ready get that token scheduled.
 */
export function planDecodePass<S extends SchedulableSequence>(
  running: readonly S[],
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean,
): DecodePass<S> {
  const candidates = [...running];
  const scheduled: ScheduledChunk<S>[] = [];
  const preempted: S[] = [];
  const cannotFit: S[] = [];
  let free = kv.numFreePages;
  let budget = limits.maxNumBatchedTokens;
  let numStaying = 0;
  while (candidates.length > 0) {
    const seq = candidates.shift()!;
    // A decoding sequence needs room for its newest token; one still prefilling (its chunk did not
    // fit) needs room for one more token, which is made here so the next prefill step can run it.
    const need = kv.pagesNeeded(seq.seqId, seq.numCachedTokens + 1);
    while (need > free && candidates.length > 0) {
      const victim = candidates.pop()!;
      free += kv.numPagesHeld(victim.seqId);
      preempted.push(victim);
    }
    if (need > free) {
      if (numStaying === 0) cannotFit.push(seq);
      else {
        free += kv.numPagesHeld(seq.seqId);
        preempted.push(seq);
      }
      continue;
    }
    free -= need;
    numStaying++;
    if (numPending(seq) > 1 || budget === 0 || !isReady(seq)) continue;
    budget--;
    scheduled.push({ seq, numTokens: 1, needsLogits: true });
  }
  return { scheduled, preempted, cannotFit, free };
}

/** What a mixed step's first two passes leave for admissions. */
export interface RunningChunks<S> {
  /** The decodes, then the next chunk of each running sequence still prefilling. */
  scheduled: ScheduledChunk<S>[];
  /** Sequences the decode pass preempts or cannot fit. */
  leaving: Set<S>;
  /** Token budget left. */
  budget: number;
  /** Pages left, with the decoders' next-step pages kept back. */
  free: number;
}

/**
 * A mixed step's second pass (vLLM's chunked prefill), after the decode pass: the next chunk of
 * every running sequence still prefilling, in running order, within the token budget and pages.
 */
export function planRunningChunks<S extends SchedulableSequence>(
  running: readonly S[],
  decode: DecodePass<S>,
  kv: KvCapacityView,
  limits: BatchLimits,
  isReady: (seq: S) => boolean,
): RunningChunks<S> {
  const scheduled: ScheduledChunk<S>[] = [...decode.scheduled];
  const leaving = new Set<S>([...decode.preempted, ...decode.cannotFit]);
  let budget = limits.maxNumBatchedTokens - decode.scheduled.length;
  // Pages the decoders will take at the next step stay out of reach of this step's prefills.
  let free = decode.free;
  for (const { seq } of decode.scheduled)
    free -= kv.pagesNeeded(seq.seqId, seq.numTokens + 1) - kv.pagesNeeded(seq.seqId, seq.numTokens);
  for (const seq of running) {
    const pending = numPending(seq);
    if (budget <= 0) break;
    if (pending <= 1 || leaving.has(seq) || !isReady(seq)) continue;
    // The decode pass kept room for one more token of this sequence: it is part of what it may use now.
    const room = free + kv.pagesNeeded(seq.seqId, seq.numCachedTokens + 1);
    const numTokens = tokensThatFit(kv, seq, chunkTokens(pending, budget, limits), room);
    if (numTokens === 0) continue;
    free = room - kv.pagesNeeded(seq.seqId, seq.numCachedTokens + numTokens);
    budget -= numTokens;
    scheduled.push({ seq, numTokens, needsLogits: numTokens === pending });
  }
  return { scheduled, leaving, budget, free };
}

/** A mixed step's decision: its kind follows from what it runs and whether it changes the queues. */
export function mixedDecision<S>(
  decode: DecodePass<S>,
  scheduled: ScheduledChunk<S>[],
  admitted: S[],
): ScheduleDecision<S> {
  const { preempted, cannotFit } = decode;
  const numDecodes = decode.scheduled.length;
  const numPrefills = scheduled.length - numDecodes;
  const changesQueues = preempted.length + cannotFit.length > 0;
  let kind: ScheduleDecision<S>['kind'];
  if (numDecodes > 0 && numPrefills > 0) kind = 'mixed';
  else if (numPrefills > 0) kind = 'prefill';
  else kind = numDecodes > 0 || changesQueues ? 'decode' : 'idle';
  return { kind, scheduled, admitted, preempted, cannotFit };
}
