import type { AdapterLayout } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { parseLlamaConfig } from '../model/llama-config.js';
import type { AdapterResidency } from '../scheduler/adapter-residency.js';
import { ManualClock } from '../scheduler/clock.js';
import { mulberry32 } from '../scheduler/prng.js';
import { AdmissionError } from '../scheduler/request.js';
import { type PlannedStep, Scheduler, type SchedulerLimits } from '../scheduler/scheduler.js';
import type { SchedulerEvent } from '../scheduler/scheduler-events.js';
import type { SchedulingPolicy } from '../scheduler/scheduling-policy.js';
import { assignAdapters } from './serve/adapter-assignment.js';
import { arrivalOffsets } from './serve/arrivals.js';

/**
 * A discrete-event simulation of one Loom replica: the real synchronous Scheduler (policy, early
 * abort, queues, KV pages) on a ManualClock, with an engine whose step time is a function of the
 * batch's shape. Thousands of requests run in milliseconds, and the same seed gives the same
 * schedule, so tests assert on it and the benchmark sweeps load with it.
 */

/** What one step costs: fixed + per token run + per distinct adapter in the step (S-LoRA's gather cost). */
export interface StepCost {
  fixedMs: number;
  perTokenMs: number;
  perAdapterMs: number;
}

export interface SimWorkload {
  seed: number;
  numRequests: number;
  /** Requests per second. */
  rate: number;
  /** Gamma shape of the gaps: 1 is Poisson, below 1 bursty (vLLM's --burstiness). */
  burstiness: number;
  numAdapters: number;
  /** S-LoRA's power-law α over the adapters (small α: a few adapters get most requests). */
  alpha: number;
  /** Share of requests for the base model. */
  baseShare: number;
  promptLen: [number, number];
  outputLen: [number, number];
  /** Share of requests the client cancels, each after a random delay up to cancelAfterMs. */
  cancelShare: number;
  cancelAfterMs: number;
  /** Extra requests for the base model arriving all at `atMs` (ids b0, b1, …): a burst of long prompts. */
  burst?: { atMs: number; numRequests: number; promptLen: [number, number]; outputLen: [number, number] };
}

export interface SimSetup {
  policy: SchedulingPolicy;
  limits: SchedulerLimits;
  sloTtftMs: number | null;
  cost: StepCost;
  /** KV pages of the pool (16 tokens per page, 2 pages per block). */
  numPages: number;
}

export interface SimRequestOutcome {
  requestId: string;
  adapter: string | null;
  arrivalMs: number;
  /** Refused at submit (queue full, early abort at the door). */
  isRefused: boolean;
  /** Aborted in the queue by early abort. */
  isSloAborted: boolean;
  isCancelled: boolean;
  /** Queue time until its first admission, null if never admitted. */
  queueMs: number | null;
  ttftMs: number | null;
  endMs: number | null;
  numTokens: number;
}

export interface SimResult {
  requests: SimRequestOutcome[];
  events: SchedulerEvent[];
  numSteps: number;
  /** Steps whose plan had decodes and prefill chunks together. */
  numMixedSteps: number;
  /** Clock at the last event. */
  durationMs: number;
  /** Pages still held when everything ended (must be 0). */
  leakedPages: number;
  /** Adapter pins and request holds still counted when everything ended (must be 0). */
  leakedPins: number;
  /** Most distinct adapters one step ran. */
  maxAdaptersPerStep: number;
}

/** A TinyLlama-like KV shape at one layer: 16 tokens per page. */
const SIM_CONFIG = parseLlamaConfig({
  hidden_size: 512,
  num_hidden_layers: 1,
  num_attention_heads: 16,
  num_key_value_heads: 1,
  intermediate_size: 1024,
  vocab_size: 64,
  eos_token_id: 63,
});
const TOKEN = 7;

export function simulate(workload: SimWorkload, setup: SimSetup): SimResult {
  const random = mulberry32(workload.seed);
  const int = ([lo, hi]: [number, number]) => lo + Math.floor(random() * (hi - lo + 1));
  const names = Array.from({ length: workload.numAdapters }, (_, i) => `lora-${i}`);
  const offsets = arrivalOffsets(random, workload.numRequests, workload.rate, workload.burstiness);
  const adapters = assignAdapters(random, names, workload.numRequests, 'power-law', workload.alpha);
  const planned = offsets.map((offset, i) => ({
    requestId: `r${i}`,
    arrivalMs: offset * 1000,
    adapter: random() < workload.baseShare ? null : adapters[i],
    promptLen: int(workload.promptLen),
    outputLen: int(workload.outputLen),
    cancelAtMs: random() < workload.cancelShare ? offset * 1000 + random() * workload.cancelAfterMs : null,
  }));
  const { burst } = workload;
  if (burst) {
    for (let i = 0; i < burst.numRequests; i++)
      planned.push({
        requestId: `b${i}`,
        arrivalMs: burst.atMs,
        adapter: null,
        promptLen: int(burst.promptLen),
        outputLen: int(burst.outputLen),
        cancelAtMs: null,
      });
    planned.sort((a, b) => a.arrivalMs - b.arrivalMs);
  }

  const clock = new ManualClock();
  const pool = new PagePool(setup.numPages, SIM_CONFIG.hiddenSize);
  const kvCache = new KvCache(pool, kvLayout(SIM_CONFIG));
  const residency = new AllResident(names);
  const events: SchedulerEvent[] = [];
  const scheduler = new Scheduler({
    kvCache,
    adapters: residency,
    newDecoder: () => ({ push: () => 'x', flush: () => '' }),
    eosTokenIds: [SIM_CONFIG.eosTokenIds[0]],
    limits: setup.limits,
    policy: setup.policy,
    clock,
    events: (event) => events.push(event),
    sloTtftMs: setup.sloTtftMs,
    drawSeed: () => 0,
  });

  const outcomes = new Map<string, SimRequestOutcome>();
  const cancels: Array<{ atMs: number; controller: AbortController }> = [];
  let next = 0;
  let numMixedSteps = 0;
  let maxAdaptersPerStep = 0;
  const submitDue = () => {
    while (next < planned.length && planned[next].arrivalMs <= clock.now()) {
      const p = planned[next++];
      const outcome: SimRequestOutcome = {
        requestId: p.requestId,
        adapter: p.adapter,
        arrivalMs: p.arrivalMs,
        isRefused: false,
        isSloAborted: false,
        isCancelled: false,
        queueMs: null,
        ttftMs: null,
        endMs: null,
        numTokens: 0,
      };
      outcomes.set(p.requestId, outcome);
      const controller = new AbortController();
      try {
        scheduler.submit({
          requestId: p.requestId,
          promptTokens: new Array(p.promptLen).fill(TOKEN),
          adapter: p.adapter,
          sampling: {
            maxTokens: p.outputLen,
            temperature: 0,
            topP: 1,
            topK: 0,
            seed: 0,
            stop: [],
            stopTokenIds: [],
            ignoreEos: true,
            n: 1,
          },
          signal: controller.signal,
        });
      } catch (error) {
        if (!(error instanceof AdmissionError)) throw error;
        outcome.isRefused = true;
        continue;
      }
      if (p.cancelAtMs !== null) cancels.push({ atMs: p.cancelAtMs, controller });
    }
    for (const cancel of cancels.filter((c) => c.atMs <= clock.now())) {
      cancels.splice(cancels.indexOf(cancel), 1);
      cancel.controller.abort();
    }
  };
  const nextEventMs = () =>
    Math.min(planned[next]?.arrivalMs ?? Number.POSITIVE_INFINITY, ...cancels.map((c) => c.atMs));

  let numSteps = 0;
  for (;;) {
    submitDue();
    if (!scheduler.hasWork) {
      const at = nextEventMs();
      if (at === Number.POSITIVE_INFINITY) break;
      clock.advanceTo(at);
      continue;
    }
    const outcome = scheduler.schedule();
    if (outcome === 'retry') continue;
    if (outcome === 'wait') {
      clock.advanceTo(Math.min(nextEventMs(), clock.now() + 1));
      continue;
    }
    numSteps++;
    if (outcome.kind === 'mixed') numMixedSteps++;
    const adapterCount = distinctAdapters(outcome);
    maxAdaptersPerStep = Math.max(maxAdaptersPerStep, adapterCount);
    clock.advance(stepMs(setup.cost, outcome, adapterCount));
    scheduler.postprocess(outcome, new Int32Array(outcome.rows.length).fill(TOKEN));
  }

  for (const event of events) {
    const o = outcomes.get(event.requestId);
    if (!o) continue;
    if (event.type === 'admitted' && o.queueMs === null) o.queueMs = event.time - o.arrivalMs;
    if (event.type === 'firstToken') o.ttftMs = event.time - o.arrivalMs;
    if (event.type === 'token') o.numTokens++;
    if (event.type === 'finished' || event.type === 'aborted') o.endMs = event.time;
    if (event.type === 'aborted' && event.reason === 'slo') o.isSloAborted = true;
    if (event.type === 'aborted' && event.reason === 'client') o.isCancelled = true;
  }
  return {
    requests: [...outcomes.values()],
    events,
    numSteps,
    numMixedSteps,
    durationMs: clock.now(),
    leakedPages: pool.numUsed('kv'),
    leakedPins: residency.numHeld(),
    maxAdaptersPerStep,
  };
}

function distinctAdapters(step: PlannedStep): number {
  return new Set(step.chunks.flatMap(({ seq }) => (seq.adapter === null ? [] : [seq.adapter]))).size;
}

function stepMs(cost: StepCost, step: PlannedStep, numAdapters: number): number {
  const numTokens = step.chunks.reduce((sum, chunk) => sum + chunk.numTokens, 0);
  return cost.fixedMs + cost.perTokenMs * numTokens + cost.perAdapterMs * numAdapters;
}

/** SLO attainment and goodput of a run, S-LoRA's way: first token within the objective. */
export interface SloSummary {
  numRequests: number;
  numRefused: number;
  numSloAborted: number;
  numCancelled: number;
  /** Requests whose first token came within the objective. */
  numAttained: number;
  /** Attained over admitted + aborted in the queue (refused at the door and cancelled left out). */
  attainment: number;
  /** Attained over every request that arrived. */
  attainmentOfAll: number;
  /** Attained requests per second of the trace. */
  goodput: number;
  /** Longest queue time of an admitted request, ms. */
  maxQueueMs: number;
}

export function summarizeSlo(result: SimResult, sloTtftMs: number): SloSummary {
  const { requests } = result;
  const isAttained = (r: SimRequestOutcome) => r.ttftMs !== null && r.ttftMs <= sloTtftMs;
  const counted = requests.filter((r) => !r.isRefused && !(r.isCancelled && r.ttftMs === null));
  const numAttained = requests.filter(isAttained).length;
  const span = Math.max(1, ...requests.map((r) => r.endMs ?? r.arrivalMs));
  return {
    numRequests: requests.length,
    numRefused: requests.filter((r) => r.isRefused).length,
    numSloAborted: requests.filter((r) => r.isSloAborted).length,
    numCancelled: requests.filter((r) => r.isCancelled).length,
    numAttained,
    attainment: counted.length ? counted.filter(isAttained).length / counted.length : 1,
    attainmentOfAll: requests.length ? numAttained / requests.length : 1,
    goodput: numAttained / (span / 1000),
    maxQueueMs: Math.max(0, ...requests.map((r) => r.queueMs ?? 0)),
  };
}

/** Every registered adapter resident at once (the registry's own behaviour is tested elsewhere); holds are counted. */
class AllResident implements AdapterResidency {
  onReadFailure: ((name: string, error: unknown) => void) | null = null;
  private readonly layouts: Map<string, AdapterLayout>;
  private readonly held = new Map<string, number>();

  constructor(names: readonly string[]) {
    this.layouts = new Map(
      names.map((name) => [name, { name, rank: 8, scale: 1, modules: [], allPages: new Int32Array(0) }]),
    );
  }

  numHeld(): number {
    let total = 0;
    for (const count of this.held.values()) total += Math.abs(count);
    return total;
  }

  has(name: string): boolean {
    return this.layouts.has(name);
  }
  acquire(name: string): void {
    this.count(`request:${name}`, 1);
  }
  release(name: string): void {
    this.count(`request:${name}`, -1);
  }
  pin(name: string): void {
    this.count(`pin:${name}`, 1);
  }
  unpin(name: string): void {
    this.count(`pin:${name}`, -1);
  }
  isResident(name: string): boolean {
    return this.layouts.has(name);
  }
  idleAdapterPages(): number {
    return 0;
  }
  evictIdleExcept(): number {
    return 0;
  }
  layoutOf(name: string): AdapterLayout | null {
    return this.layouts.get(name) ?? null;
  }
  noteFirstStep(): void {}
  planStep(): void {}
  endPlanning(): void {}
  async prefetchDuringStep(): Promise<void> {}
  whenReadSettles(): Promise<void> | null {
    return null;
  }

  private count(key: string, delta: number): void {
    const value = (this.held.get(key) ?? 0) + delta;
    if (value === 0) this.held.delete(key);
    else this.held.set(key, value);
  }
}
