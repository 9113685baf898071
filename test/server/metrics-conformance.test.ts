import { request } from 'node:http';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Exposition, parsePrometheusText, sampleValue } from './prometheus-text.js';
import { startTinyServer, TINY_MODEL_NAME, type TinyServer } from './tiny-server.js';

/**
 * What the Gateway API Inference Extension's endpoint picker reads from a vLLM-compatible
 * server: queue and running request counts, KV-cache utilization, and the LoRA info series
 * (the one with the largest value is the newest; adapter lists are comma-separated).
 */
function endpointPickerView(exposition: Exposition) {
  const gauge = (name: string) => {
    const found = exposition.samples.filter((s) => s.name === name);
    if (found.length === 0) throw new Error(`${name} is missing`);
    return found.at(-1)!.value;
  };
  const lora = exposition.samples
    .filter((s) => s.name === 'vllm:lora_requests_info')
    .reduce((newest, s) => (newest === null || s.value > newest.value ? s : newest), null as Sample | null);
  if (!lora) throw new Error('vllm:lora_requests_info is missing');
  const split = (list: string) => list.split(',').filter((name) => name !== '');
  return {
    waitingQueueSize: gauge('vllm:num_requests_waiting'),
    runningQueueSize: gauge('vllm:num_requests_running'),
    kvCacheUsagePercent: gauge('vllm:kv_cache_usage_perc'),
    activeModels: split(lora.labels.running_lora_adapters),
    waitingModels: split(lora.labels.waiting_lora_adapters),
    maxActiveModels: Number.parseInt(lora.labels.max_lora, 10),
    updatedAt: lora.value,
  };
}
type Sample = Exposition['samples'][number];

let server: TinyServer;

async function scrape(): Promise<Exposition> {
  const response = await fetch(server.baseURL.replace(/\/v1$/, '/metrics'));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await response.text());
}

beforeAll(async () => {
  // One sequence per step: a second request waits while the first runs.
  server = await startTinyServer('reference', { maxNumSeqs: 1, maxNumBatchedTokens: 64 });
});

afterAll(async () => {
  await server?.close();
});

describe('/metrics as the inference gateway reads it', () => {
  const PROMPT = [3, 1, 4, 1, 5, 9];
  const MAX_TOKENS = 48;
  const generate = (model: string) =>
    server.client.completions.create({
      model,
      prompt: PROMPT,
      max_tokens: MAX_TOKENS,
      ignore_eos: true,
    } as never) as Promise<OpenAI.Completion>;
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 5000 && !check(); i++) await new Promise((r) => setTimeout(r, 1));
    expect(check()).toBe(true);
  };

  it('tracks queue, running, KV use and LoRA activity through a known workload, then totals it', async () => {
    const idle = endpointPickerView(await scrape());
    expect(idle).toMatchObject({ waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0 });
    expect(idle.activeModels).toEqual([]);
    // max_lora is --max-loras, as in vLLM.
    expect(idle.maxActiveModels).toBe(server.stack.scheduler.stats().maxLoras);
    expect(idle.maxActiveModels).toBeGreaterThan(0);

    const { scheduler } = server.stack;
    const first = generate('tiny-r2');
    await until(() => scheduler.stats().numRunningRequests === 1);
    const second = generate('tiny-r4');
    await until(() => scheduler.stats().numWaitingRequests === 1);
    const before = Date.now() / 1000;
    const busyMetrics = await scrape();
    const busy = endpointPickerView(busyMetrics);
    // Loom's per-adapter queue depth says the same per adapter.
    expect(sampleValue(busyMetrics, 'loom_lora_requests', { adapter: 'tiny-r2', state: 'running' })).toBe(1);
    expect(sampleValue(busyMetrics, 'loom_lora_requests', { adapter: 'tiny-r4', state: 'waiting' })).toBe(1);
    expect(sampleValue(busyMetrics, 'loom_lora_requests', { adapter: 'tiny-r8', state: 'waiting' })).toBe(0);
    // ...and how long its longest-waiting request has been queued.
    expect(sampleValue(busyMetrics, 'loom_lora_queue_wait_seconds', { adapter: 'tiny-r4' })).toBeGreaterThan(
      0,
    );
    expect(sampleValue(busyMetrics, 'loom_lora_queue_wait_seconds', { adapter: 'tiny-r2' })).toBe(0);
    expect(busy.waitingQueueSize).toBe(1);
    expect(busy.runningQueueSize).toBe(1);
    expect(busy.kvCacheUsagePercent).toBeGreaterThan(0);
    expect(busy.kvCacheUsagePercent).toBeLessThanOrEqual(1);
    expect(busy.activeModels).toEqual(['tiny-r2']);
    expect(busy.waitingModels).toEqual(['tiny-r4']);
    expect(busy.updatedAt).toBeGreaterThanOrEqual(before - 1);
    expect(busy.updatedAt).toBeLessThanOrEqual(Date.now() / 1000 + 1);

    await Promise.all([first, second]);
    const done = await scrape();
    const after = endpointPickerView(done);
    expect(after).toMatchObject({ waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0 });
    expect(after.activeModels).toEqual([]);
    expect(after.waitingModels).toEqual([]);
    expect(after.updatedAt).toBeGreaterThanOrEqual(busy.updatedAt);

    const model = { model_name: TINY_MODEL_NAME };
    const value = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(done, name, { ...model, ...labels });
    expect(value('vllm:prompt_tokens_total')).toBe(2 * PROMPT.length);
    expect(value('vllm:generation_tokens_total')).toBe(2 * MAX_TOKENS);
    expect(value('vllm:request_success_total', { finished_reason: 'length' })).toBe(2);
    expect(value('vllm:request_prompt_tokens_sum')).toBe(2 * PROMPT.length);
    expect(value('vllm:request_generation_tokens_sum')).toBe(2 * MAX_TOKENS);
    expect(value('vllm:time_to_first_token_seconds_count')).toBe(2);
    expect(value('vllm:e2e_request_latency_seconds_count')).toBe(2);
    expect(value('vllm:request_queue_time_seconds_count')).toBe(2);
    expect(value('vllm:inter_token_latency_seconds_count')).toBe(2 * (MAX_TOKENS - 1));
    // The second request queued for the whole of the first one's generation.
    expect(value('vllm:request_queue_time_seconds_sum')).toBeGreaterThan(0);
    expect(value('vllm:e2e_request_latency_seconds_sum')).toBeGreaterThan(
      value('vllm:time_to_first_token_seconds_sum'),
    );
    expect(value('vllm:time_to_first_token_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(value('vllm:num_preemptions_total')).toBe(0);
    const stats = scheduler.stats();
    const config = done.samples.find((s) => s.name === 'vllm:cache_config_info')!;
    expect(config.labels.block_size).toBe(String(stats.kvBlockSize));
    expect(Number(config.labels.num_gpu_blocks)).toBe(
      Math.floor(
        (stats.numFreePages + stats.numKvPages + stats.numPrefixCachedPages + stats.numAdapterPages) /
          stats.kvPagesPerBlock,
      ),
    );
    // Both prompts were looked up in the prefix cache; the same text under two adapters shares nothing.
    expect(value('vllm:prefix_cache_queries_total')).toBe(2 * PROMPT.length);
    expect(value('vllm:prefix_cache_hits_total')).toBe(0);
    expect(stats.numPrefixCachedPages).toBeGreaterThan(0);
    expect(sampleValue(done, 'loom_pool_pages', { use: 'prefix_cache' })).toBe(stats.numPrefixCachedPages);
    expect(value('vllm:gpu_cache_usage_perc')).toBe(0);

    // vLLM's metric types; counters are real counters: a second scrape adds nothing new.
    for (const [name, type] of [
      ['vllm:num_requests_running', 'gauge'],
      ['vllm:kv_cache_usage_perc', 'gauge'],
      ['vllm:prompt_tokens_total', 'counter'],
      ['vllm:num_preemptions_total', 'counter'],
      ['vllm:request_success_total', 'counter'],
      ['vllm:time_to_first_token_seconds', 'histogram'],
      ['vllm:request_generation_tokens', 'histogram'],
    ])
      expect(done.types.get(name), name).toBe(type);
    const again = await scrape();
    expect(sampleValue(again, 'loom_generated_tokens_total')).toBe(2 * MAX_TOKENS);
    expect(sampleValue(again, 'vllm:generation_tokens_total', model)).toBe(2 * MAX_TOKENS);
    expect(sampleValue(again, 'loom_lora_adapter_loaded', { adapter: 'tiny-r2', tier: 'pool' })).toBe(1);
    // The reference engine has no stacked slots.
    expect(sampleValue(again, 'loom_lora_adapters_stacked')).toBe(0);
  });

  it("counts the adapters in the onnx engine's stacked slots", async () => {
    const onnx = await startTinyServer('onnx');
    try {
      await onnx.client.completions.create({ model: 'tiny-r2', prompt: PROMPT, max_tokens: 2 });
      const metrics = parsePrometheusText(
        await (await fetch(onnx.baseURL.replace(/\/v1$/, '/metrics'))).text(),
      );
      expect(sampleValue(metrics, 'loom_lora_adapters_stacked')).toBe(1);
    } finally {
      await onnx.close();
    }
  });

  it('counts a request the client walked away from as finished_reason "abort"', async () => {
    // A plain socket that reads the first event and hangs up, as a client that walks away does.
    const url = new URL(`${server.baseURL}/completions`);
    const body = JSON.stringify({
      model: 'tiny-r8',
      prompt: PROMPT,
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    });
    await new Promise<void>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.once('error', (error) => (req.destroyed ? resolve() : reject(error)));
      req.end(body);
    });
    await until(() => server.stack.scheduler.stats().numRequests === 0);
    const metrics = await scrape();
    const model = { model_name: TINY_MODEL_NAME };
    expect(sampleValue(metrics, 'vllm:request_success_total', { ...model, finished_reason: 'abort' })).toBe(
      1,
    );
    expect(sampleValue(metrics, 'vllm:request_success_total', { ...model, finished_reason: 'length' })).toBe(
      2,
    );
    expect(sampleValue(metrics, 'vllm:e2e_request_latency_seconds_count', model)).toBe(3);
  });
});
