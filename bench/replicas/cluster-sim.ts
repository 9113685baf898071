import { mulberry32, type Uniform } from '../../scheduler/prng.js';
import { type StepCosts, stepMs } from './step-costs.js';

/** One request of the trace, times in seconds. */
export interface SimRequest {
  id: number;
  adapter: string;
  arrival: number;
  promptLen: number;
  outputLen: number;
}

/**
 * How the router picks a replica. `round-robin`: in turn. `gateway`: the Kubernetes inference
 * gateway's endpoint picker as configured in deploy/kubernetes (queue + KV-cache + LoRA-affinity
 * scorers, equal weights) reading vLLM's labels, which show adapters in *use* (running or waiting).
 * `residency`: the same scorers, but affinity reads Loom's `loom_lora_adapter_loaded`, which
 * shows adapters *resident* whether busy or idle.
 */
export type RouterKind = 'round-robin' | 'gateway' | 'residency';
export const ROUTER_KINDS: readonly RouterKind[] = ['round-robin', 'gateway', 'residency'];

export interface ClusterOptions {
  numReplicas: number;
  router: RouterKind;
  /** Sequences in one step (--max-num-seqs). */
  maxBatch: number;
  /** Adapters one replica holds in its pool at once (--max-loras). */
  maxLoras: number;
  costs: StepCosts;
  /** Seed of the routers' tie-breaking. */
  seed: number;
}

export interface SimOutcome {
  id: number;
  adapter: string;
  replica: number;
  arrival: number;
  firstToken: number;
  finish: number;
  outputLen: number;
}

export interface SimResult {
  outcomes: SimOutcome[];
  /** Adapter copies into a pool, over all replicas. */
  numLoads: number;
}

interface Active {
  req: SimRequest;
  generated: number;
  firstToken: number | null;
}

/**
 * One replica as Loom runs it: FCFS continuous batching up to `maxBatch`; a request whose adapter
 * is not resident is admitted once it is copied in, evicting the least recently used adapter no
 * running request uses (when every slot is busy, the request waits and later ones may pass it);
 * each step costs what `costs` says for its batch, prefill tokens and adapter copies.
 */
class Replica {
  readonly waiting: Active[] = [];
  readonly running: Active[] = [];
  /** Resident adapters → the last time a step used them (LRU). */
  readonly resident = new Map<string, number>();
  stepEndsAt: number | null = null;
  numLoads = 0;

  constructor(private readonly options: ClusterOptions) {}

  /** Adapters of running and waiting requests: what vLLM's lora_requests_info shows. */
  activeAdapters(): Set<string> {
    return new Set([...this.running, ...this.waiting].map((a) => a.req.adapter));
  }

  get isIdle(): boolean {
    return this.stepEndsAt === null;
  }

  /** Admits what fits and starts a step at `now`; stays idle when there is nothing to run. */
  startStep(now: number): void {
    const admitted: Active[] = [];
    let loads = 0;
    for (const active of [...this.waiting]) {
      if (this.running.length >= this.options.maxBatch) break;
      const adapter = active.req.adapter;
      if (!this.resident.has(adapter)) {
        if (this.resident.size >= this.options.maxLoras && !this.evictIdle()) continue;
        this.resident.set(adapter, now);
        loads++;
      }
      this.waiting.splice(this.waiting.indexOf(active), 1);
      this.running.push(active);
      admitted.push(active);
    }
    if (this.running.length === 0) return;
    this.numLoads += loads;
    const prefill = admitted.reduce((sum, a) => sum + a.req.promptLen, 0);
    this.stepEndsAt = now + stepMs(this.options.costs, this.running.length, prefill, loads) / 1000;
  }

  /** Every running request gains a token; finished ones leave. Returns them. */
  endStep(now: number, finished: (active: Active) => void): void {
    this.stepEndsAt = null;
    for (const active of [...this.running]) {
      active.generated++;
      active.firstToken ??= now;
      this.resident.set(active.req.adapter, now);
      if (active.generated >= active.req.outputLen) {
        this.running.splice(this.running.indexOf(active), 1);
        finished(active);
      }
    }
    this.startStep(now);
  }

  private evictIdle(): boolean {
    const busy = new Set(this.running.map((a) => a.req.adapter));
    let victim: string | null = null;
    let oldest = Number.POSITIVE_INFINITY;
    for (const [name, lastUsed] of this.resident) {
      if (!busy.has(name) && lastUsed < oldest) {
        victim = name;
        oldest = lastUsed;
      }
    }
    if (victim === null) return false;
    this.resident.delete(victim);
    return true;
  }
}

/**
 * Scores of the endpoint picker's three scorers, summed with equal weights; the best replica wins
 * (ties at random). The simulation has no KV pages, so KV use is taken as the batch's fill.
 */
function pickByScore(
  replicas: Replica[],
  adapter: string,
  options: ClusterOptions,
  uniform: Uniform,
): number {
  const queues = replicas.map((r) => r.waiting.length);
  const minQueue = Math.min(...queues);
  const maxQueue = Math.max(...queues);
  const scores = replicas.map((replica, i) => {
    const queue = maxQueue === minQueue ? 1 : 1 - (queues[i] - minQueue) / (maxQueue - minQueue);
    const kvUse = 1 - replica.running.length / options.maxBatch;
    const known =
      options.router === 'residency' ? new Set(replica.resident.keys()) : replica.activeAdapters();
    const affinity = known.has(adapter) ? 1 : known.size < options.maxLoras ? 0.8 : 0;
    return queue + kvUse + affinity;
  });
  const best = Math.max(...scores);
  const ties = scores.flatMap((s, i) => (s >= best - 1e-12 ? [i] : []));
  return ties[Math.floor(uniform() * ties.length)];
}

/**
 * Discrete-event simulation of `requests` (sorted by arrival) on a cluster: arrivals go to the
 * replica the router picks; each replica runs steps back to back while it has work.
 */
export function simulateCluster(requests: readonly SimRequest[], options: ClusterOptions): SimResult {
  if (!Number.isInteger(options.numReplicas) || options.numReplicas < 1)
    throw new RangeError(`numReplicas must be a positive integer, got ${options.numReplicas}`);
  const replicas = Array.from({ length: options.numReplicas }, () => new Replica(options));
  const uniform = mulberry32(options.seed);
  const outcomes: SimOutcome[] = [];
  let nextArrival = 0;
  let turn = 0;
  for (;;) {
    let replicaIndex = -1;
    let stepEnd = Number.POSITIVE_INFINITY;
    replicas.forEach((r, i) => {
      if (r.stepEndsAt !== null && r.stepEndsAt < stepEnd) {
        stepEnd = r.stepEndsAt;
        replicaIndex = i;
      }
    });
    const arrival = nextArrival < requests.length ? requests[nextArrival].arrival : Number.POSITIVE_INFINITY;
    if (arrival === Number.POSITIVE_INFINITY && stepEnd === Number.POSITIVE_INFINITY) break;
    if (arrival <= stepEnd) {
      const req = requests[nextArrival++];
      const target =
        options.router === 'round-robin'
          ? turn++ % replicas.length
          : pickByScore(replicas, req.adapter, options, uniform);
      replicas[target].waiting.push({ req, generated: 0, firstToken: null });
      // Requests that arrive together share the first step, as Loom's loop waits a turn before stepping.
      const nextAt = nextArrival < requests.length ? requests[nextArrival].arrival : Number.POSITIVE_INFINITY;
      if (nextAt > req.arrival)
        for (const replica of replicas) if (replica.isIdle) replica.startStep(req.arrival);
      continue;
    }
    replicas[replicaIndex].endStep(stepEnd, (active) =>
      outcomes.push({
        id: active.req.id,
        adapter: active.req.adapter,
        replica: replicaIndex,
        arrival: active.req.arrival,
        firstToken: active.firstToken ?? stepEnd,
        finish: stepEnd,
        outputLen: active.req.outputLen,
      }),
    );
  }
  return { outcomes, numLoads: replicas.reduce((sum, r) => sum + r.numLoads, 0) };
}
