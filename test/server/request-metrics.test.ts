import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { SchedulerEvent } from '../../scheduler/scheduler-events.js';
import { RequestMetrics } from '../../server/request-metrics.js';

/** Sample values of one metric by label text, from prom-client's JSON. */
async function samples(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    const labels = Object.entries(v.labels)
      .filter(([k]) => k !== 'model_name')
      .map(([k, l]) => `${k}=${l}`)
      .join(',');
    out[`${(v as { metricName?: string }).metricName ?? name}{${labels}}`] = v.value;
  }
  return out;
}

describe("request metrics from the scheduler's events", () => {
  it('times queue, first token, inter-token gaps and end-to-end latency on the scheduler clock', async () => {
    const registry = new Registry();
    const metrics = new RequestMetrics(registry);
    const base = { requestId: 'r1', adapter: null };
    const events: SchedulerEvent[] = [
      { ...base, time: 1000, type: 'queued', numPromptTokens: 7, numChoices: 2 },
      { ...base, time: 1500, type: 'admitted' },
      { ...base, time: 1500, type: 'admitted' },
      { ...base, time: 2000, type: 'firstToken' },
      { ...base, time: 2000, type: 'token', index: 0 },
      { ...base, time: 2000, type: 'token', index: 1 },
      { ...base, time: 2250, type: 'token', index: 0 },
      { ...base, time: 2300, type: 'finished', index: 0, reason: 'stop' },
      { ...base, time: 2400, type: 'token', index: 1 },
      { ...base, time: 3000, type: 'finished', index: 1, reason: 'length' },
      // A failed request counts in no per-request histogram.
      { requestId: 'r2', adapter: 'a', time: 3000, type: 'queued', numPromptTokens: 3, numChoices: 1 },
      { requestId: 'r2', adapter: 'a', time: 3100, type: 'aborted', reason: 'failed' },
      // A client that leaves ends its unfinished choices with 'abort'.
      { requestId: 'r3', adapter: 'a', time: 4000, type: 'queued', numPromptTokens: 2, numChoices: 3 },
      { requestId: 'r3', adapter: 'a', time: 4100, type: 'aborted', reason: 'client' },
    ];
    for (const event of events) metrics.observe('m', event);
    const queue = await samples(registry, 'vllm:request_queue_time_seconds');
    expect(queue['vllm:request_queue_time_seconds_count{}']).toBe(1);
    expect(queue['vllm:request_queue_time_seconds_sum{}']).toBeCloseTo(0.5);
    expect(
      (await samples(registry, 'vllm:time_to_first_token_seconds'))['vllm:time_to_first_token_seconds_sum{}'],
    ).toBeCloseTo(1);
    const itl = await samples(registry, 'vllm:inter_token_latency_seconds');
    expect(itl['vllm:inter_token_latency_seconds_count{}']).toBe(2);
    expect(itl['vllm:inter_token_latency_seconds_sum{}']).toBeCloseTo(0.25 + 0.4);
    const e2e = await samples(registry, 'vllm:e2e_request_latency_seconds');
    expect(e2e['vllm:e2e_request_latency_seconds_count{}']).toBe(2);
    expect(e2e['vllm:e2e_request_latency_seconds_sum{}']).toBeCloseTo(2 + 0.1);
    expect(await samples(registry, 'vllm:request_success_total')).toEqual({
      'vllm:request_success_total{finished_reason=stop}': 1,
      'vllm:request_success_total{finished_reason=length}': 1,
      'vllm:request_success_total{finished_reason=abort}': 3,
    });
    expect(await samples(registry, 'vllm:generation_tokens_total')).toEqual({
      'vllm:generation_tokens_total{}': 4,
    });
    expect(await samples(registry, 'vllm:prompt_tokens_total')).toEqual({ 'vllm:prompt_tokens_total{}': 7 });
  });
});
