import { Counter, Histogram, type Registry } from 'prom-client';
import type {
  AdmissionRefusal,
  FinishReason,
  GenerationDelta,
  GenerationRequest,
  GenerationStream,
} from '../scheduler/request.js';

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
 * as in vLLM), recorded as a request's deltas flow back to its route: time to first token,
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
   * Starts timing one request (call when it arrives): `request` gains the scheduler's
   * `onScheduled` hook, and `observe` wraps the scheduler's stream so every delta is timed.
   */
  track(
    modelName: string,
    request: GenerationRequest,
  ): { request: GenerationRequest; observe(stream: GenerationStream): GenerationStream } {
    const labels = { model_name: modelName };
    const arrivedAt = performance.now();
    const seconds = (since: number) => (performance.now() - since) / 1000;
    let scheduledAt: number | null = null;
    let firstTokenAt: number | null = null;
    const lastTokenAt = new Map<number, number>();
    let numGenerated = 0;
    let isFinished = false;
    const finishReasons: FinishReason[] = [];

    const onDelta = (delta: GenerationDelta) => {
      if (delta.tokenIds.length > 0) {
        const now = performance.now();
        if (firstTokenAt === null) {
          firstTokenAt = now;
          this.ttft.observe(labels, (now - arrivedAt) / 1000);
          this.promptTokens.inc(labels, request.promptTokens.length);
        }
        const previous = lastTokenAt.get(delta.index);
        if (previous !== undefined) this.itl.observe(labels, (now - previous) / 1000);
        lastTokenAt.set(delta.index, now);
        numGenerated += delta.tokenIds.length;
        this.generationTokens.inc(labels, delta.tokenIds.length);
      }
      if (delta.finishReason) {
        finishReasons.push(delta.finishReason);
        this.success.inc({ ...labels, finished_reason: delta.finishReason });
      }
    };
    /** Once per request; a request that failed (no finish reason) counts in none of these. */
    const onEnd = () => {
      if (isFinished) return;
      isFinished = true;
      if (finishReasons.length === 0) return;
      this.e2e.observe(labels, seconds(arrivedAt));
      this.promptTokensHistogram.observe(labels, request.promptTokens.length);
      this.generationTokensHistogram.observe(labels, numGenerated);
    };
    const onScheduled = () => {
      request.onScheduled?.();
      if (scheduledAt !== null) return;
      scheduledAt = performance.now();
      this.queueTime.observe(labels, (scheduledAt - arrivedAt) / 1000);
    };

    return {
      request: { ...request, onScheduled },
      observe: (stream) => ({
        get promptTokens() {
          return stream.promptTokens;
        },
        get completionTokens() {
          return stream.completionTokens;
        },
        [Symbol.asyncIterator]: () => {
          const inner = stream[Symbol.asyncIterator]();
          return {
            async next() {
              let result: IteratorResult<GenerationDelta>;
              try {
                result = await inner.next();
              } catch (error) {
                onEnd();
                throw error;
              }
              if (result.done) onEnd();
              else onDelta(result.value);
              return result;
            },
            async return(value?: unknown) {
              onEnd();
              return inner.return ? inner.return(value) : { done: true as const, value: undefined };
            },
          };
        },
      }),
    };
  }
}
