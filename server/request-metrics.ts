import { Counter, Histogram, type Registry } from 'prom-client';
import type { AdmissionRefusal } from '../scheduler/request.js';
import type { SchedulerEvent } from '../scheduler/scheduler-events.js';

/** vLLM's bucket edges, so dashboards built for vLLM read Loom's histograms unchanged. */
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

/** vLLM's 1-2-5 token buckets (it stops at max_model_len; Loom's go to a million, past any context). */
function oneTwoFiveBuckets(max: number): number[] {
  const buckets: number[] = [];
  for (let power = 1; power <= max; power *= 10)
    for (const step of [1, 2, 5]) if (step * power <= max) buckets.push(step * power);
  return buckets;
}

/**
 * Request-level figures under vLLM's names (label `model_name`, the base model's served name
 * as in vLLM), read from the scheduler's events (not sampled from snapshots): time to first token,
 * inter-token latency, end-to-end latency, time queued before the first step, prompt and
 * generated tokens, and finished requests by reason (one per choice, as vLLM fans `n` out into
 * requests). Counters are incremented when the event happens.
 */
export class RequestMetrics {
  private readonly ttft: Histogram<'model_name'>;
  private readonly itl: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  private readonly queueTime: Histogram<'model_name'>;
  private readonly promptTokensHistogram: Histogram<'model_name'>;
  private readonly generationTokensHistogram: Histogram<'model_name'>;
  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly success: Counter<'model_name' | 'finished_reason'>;
  private readonly refusals: Counter<'reason'>;
  /** Requests between their `queued` event and their end. */
  private readonly live = new Map<
    string,
    {
      queuedAt: number;
      numPromptTokens: number;
      numChoices: number;
      numEnded: number;
      numGenerated: number;
      isAdmitted: boolean;
      lastTokenAt: Map<number, number>;
    }
  >();

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['model_name'] as const;
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help, labelNames, buckets, registers });
    this.ttft = histogram(
      'vllm:time_to_first_token_seconds',
      'Histogram of time to first token in seconds.',
      TTFT_BUCKETS,
    );
    this.itl = histogram(
      'vllm:inter_token_latency_seconds',
      'Histogram of inter-token latency in seconds.',
      ITL_BUCKETS,
    );
    this.e2e = histogram(
      'vllm:e2e_request_latency_seconds',
      'Histogram of end-to-end request latency in seconds.',
      REQUEST_LATENCY_BUCKETS,
    );
    this.queueTime = histogram(
      'vllm:request_queue_time_seconds',
      'Histogram of time spent waiting before the first scheduled step, in seconds.',
      REQUEST_LATENCY_BUCKETS,
    );
    const tokenBuckets = oneTwoFiveBuckets(1_000_000);
    this.promptTokensHistogram = histogram(
      'vllm:request_prompt_tokens',
      'Number of prefill tokens processed.',
      tokenBuckets,
    );
    this.generationTokensHistogram = histogram(
      'vllm:request_generation_tokens',
      'Number of generation tokens processed.',
      tokenBuckets,
    );
    this.promptTokens = new Counter({
      name: 'vllm:prompt_tokens_total',
      help: 'Number of prefill tokens processed.',
      labelNames,
      registers,
    });
    this.generationTokens = new Counter({
      name: 'vllm:generation_tokens_total',
      help: 'Number of generation tokens processed.',
      labelNames,
      registers,
    });
    this.success = new Counter({
      name: 'vllm:request_success_total',
      help: 'Count of successfully processed requests (one per choice), by finish reason.',
      labelNames: ['model_name', 'finished_reason'],
      registers,
    });
    this.refusals = new Counter({
      name: 'loom_admission_refusals_total',
      help: 'Requests refused at admission or aborted in the queue, by reason (queue_full, shutting_down, cannot_fit, slo_unattainable)',
      labelNames: ['reason'],
      registers,
    });
  }

  /** A request admission refused or early abort ended in the queue (answered 429/503 with Retry-After). */
  countRefusal(reason: AdmissionRefusal): void {
    this.refusals.inc({ reason });
  }

  /**
   * Records one scheduler event (scheduler/scheduler-events.ts), stamped by the scheduler's clock:
   * queue time at `admitted`, TTFT at `firstToken`, inter-token gaps and token counts at each
   * `token`, finish reasons at `finished`, end-to-end latency when a request's last choice ends.
   * A request that failed or was aborted before its end by the server (no finish reason for the
   * client) counts in none of the per-request histograms.
   */
  observe(modelName: string, event: SchedulerEvent): void {
    const labels = { model_name: modelName };
    if (event.type === 'queued') {
      this.live.set(event.requestId, {
        queuedAt: event.time,
        numPromptTokens: event.numPromptTokens,
        numChoices: event.numChoices,
        numEnded: 0,
        numGenerated: 0,
        isAdmitted: false,
        lastTokenAt: new Map(),
      });
      return;
    }
    const request = this.live.get(event.requestId);
    if (!request) return;
    switch (event.type) {
      case 'admitted':
        if (request.isAdmitted) return;
        request.isAdmitted = true;
        this.queueTime.observe(labels, (event.time - request.queuedAt) / 1000);
        return;
      case 'firstToken':
        this.ttft.observe(labels, (event.time - request.queuedAt) / 1000);
        this.promptTokens.inc(labels, request.numPromptTokens);
        return;
      case 'token': {
        const previous = request.lastTokenAt.get(event.index);
        if (previous !== undefined) this.itl.observe(labels, (event.time - previous) / 1000);
        request.lastTokenAt.set(event.index, event.time);
        request.numGenerated++;
        this.generationTokens.inc(labels);
        return;
      }
      case 'finished':
        this.success.inc({ ...labels, finished_reason: event.reason });
        request.numEnded++;
        if (request.numEnded === request.numChoices) this.end(labels, event.requestId, event.time);
        return;
      case 'aborted':
        // The client left or the server shut down: its unfinished choices end with 'abort', as
        // the client is told. Failures and early aborts answer an error instead and count nowhere.
        if (event.reason === 'client' || event.reason === 'shutdown') {
          this.success.inc({ ...labels, finished_reason: 'abort' }, request.numChoices - request.numEnded);
          this.end(labels, event.requestId, event.time);
        } else this.live.delete(event.requestId);
        return;
      case 'preempted':
        return;
    }
  }

  private end(labels: { model_name: string }, requestId: string, time: number): void {
    const request = this.live.get(requestId);
    if (!request) return;
    this.live.delete(requestId);
    this.e2e.observe(labels, (time - request.queuedAt) / 1000);
    this.promptTokensHistogram.observe(labels, request.numPromptTokens);
    this.generationTokensHistogram.observe(labels, request.numGenerated);
  }
}
