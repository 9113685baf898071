import { Counter, Gauge, type Registry } from 'prom-client';
import type { EngineStats } from '../scheduler/llm-engine.js';
import type { ServingStack } from './serving-stack.js';

/**
 * Series read from the serving stack's state when /metrics is scraped: vLLM's gauges (queue,
 * running, KV use, cache config, LoRA info — what the Gateway API Inference Extension's
 * endpoint picker and vLLM dashboards read) and Loom's own (pool pages by owner, per-adapter
 * queue depth; adapter residency, loads and evictions are routes/adapter-metrics.ts's). Totals
 * the scheduler keeps are exported as real counters: each scrape adds what happened since the
 * last one, so a counter never goes back.
 */
export function registerStateMetrics(registry: Registry, currentStack: () => ServingStack | null): void {
  const registers = [registry];
  const withStats = (read: (stack: ServingStack, stats: EngineStats) => void) => {
    const stack = currentStack();
    if (stack) read(stack, stack.scheduler.stats());
  };
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    read: (g: Gauge<string>, stack: ServingStack, stats: EngineStats) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        withStats((stack, stats) => read(this, stack, stats));
      },
    });
  const model = (stack: ServingStack) => ({ model_name: stack.modelName });

  gauge(
    'vllm:num_requests_running',
    'Number of requests in model execution batches.',
    ['model_name'],
    (g, s, st) => g.set(model(s), st.numRunningRequests),
  );
  gauge(
    'vllm:num_requests_waiting',
    'Number of requests waiting to be processed.',
    ['model_name'],
    (g, s, st) => g.set(model(s), st.numWaitingRequests),
  );
  // The pool is shared with adapters: KV use is the share of the pages KV could hold now (its
  // own plus the free ones) that it holds, so 1 means the next KV page needs a preemption. Idle
  // prefix-cached blocks count as free, as vLLM counts them (they are reclaimed on demand).
  const kvUsage = (stats: EngineStats) => {
    const total = stats.numKvPages + stats.numFreePages + stats.numPrefixCachedPages;
    return total === 0 ? 1 : stats.numKvPages / total;
  };
  gauge(
    'vllm:kv_cache_usage_perc',
    'KV-cache usage. 1 means 100 percent usage.',
    ['model_name'],
    (g, s, st) => g.set(model(s), kvUsage(st)),
  );
  gauge(
    'vllm:gpu_cache_usage_perc',
    'KV-cache usage. 1 means 100 percent usage (legacy name of vllm:kv_cache_usage_perc).',
    ['model_name'],
    (g, s, st) => g.set(model(s), kvUsage(st)),
  );
  gauge(
    'vllm:cache_config_info',
    'Information of the KV cache config: block_size tokens per block, num_gpu_blocks blocks the whole pool holds.',
    ['model_name', 'block_size', 'num_gpu_blocks'],
    (g, s, st) => {
      const pages = st.numFreePages + st.numKvPages + st.numPrefixCachedPages + st.numAdapterPages;
      g.set(
        {
          ...model(s),
          block_size: String(st.kvBlockSize),
          num_gpu_blocks: String(Math.floor(pages / st.kvPagesPerBlock)),
        },
        1,
      );
    },
  );
  // The gateway's endpoint picker takes the series with the largest value (the newest update)
  // and splits the adapter labels on commas; max_lora is --max-loras, as in vLLM.
  gauge(
    'vllm:lora_requests_info',
    'Running stats on LoRA requests; the value is the unix time of the update.',
    ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters'],
    (g, s, st) => {
      const inUse = s.scheduler.adaptersInUse();
      g.reset();
      g.set(
        {
          max_lora: String(st.maxLoras),
          running_lora_adapters: inUse.running.join(','),
          waiting_lora_adapters: inUse.waiting.join(','),
        },
        Date.now() / 1000,
      );
    },
  );

  gauge(
    'loom_pool_pages',
    'Pages of the unified pool by use: KV of running sequences, adapters, idle prefix-cached KV blocks (reclaimed on demand), free (the reserved zero page is not counted)',
    ['use'],
    (g, _s, st) => {
      g.set({ use: 'kv' }, st.numKvPages);
      g.set({ use: 'adapter' }, st.numAdapterPages);
      g.set({ use: 'prefix_cache' }, st.numPrefixCachedPages);
      g.set({ use: 'free' }, st.numFreePages);
    },
  );
  gauge('loom_pool_page_bytes', 'Bytes of one pool page (f32 elements of the hidden size)', [], (g, _s, st) =>
    g.set(st.pageBytes),
  );
  gauge('loom_sequences', 'Sequences (choices) by scheduler state', ['state'], (g, _s, st) => {
    g.set({ state: 'running' }, st.numRunning);
    g.set({ state: 'waiting' }, st.numWaiting);
  });
  gauge(
    'loom_lora_requests',
    'Requests per adapter by state (running: in the batch; waiting: queued), counted as vllm:num_requests_* are',
    ['adapter', 'state'],
    (g, s, st) => {
      g.reset();
      for (const { name } of s.scheduler.adapters.list()) {
        const counts = st.requestsByAdapter[name] ?? { running: 0, waiting: 0 };
        g.set({ adapter: name, state: 'running' }, counts.running);
        g.set({ adapter: name, state: 'waiting' }, counts.waiting);
      }
    },
  );
  gauge(
    'loom_lora_queue_wait_seconds',
    "Seconds the adapter's longest-waiting queued request has waited (0 when none waits): who the scheduler is passing over",
    ['adapter'],
    (g, s, st) => {
      g.reset();
      for (const { name } of s.scheduler.adapters.list())
        g.set({ adapter: name }, st.requestsByAdapter[name]?.maxWaitSeconds ?? 0);
    },
  );

  const total = (
    name: string,
    help: string,
    labelled: boolean,
    read: (stats: EngineStats) => number,
  ): void => {
    let seen = 0;
    new Counter({
      name,
      help,
      labelNames: labelled ? ['model_name'] : [],
      registers,
      collect() {
        withStats((stack, stats) => {
          const now = read(stats);
          this.inc(labelled ? model(stack) : {}, Math.max(0, now - seen));
          seen = Math.max(seen, now);
        });
      },
    });
  };
  total(
    'vllm:num_preemptions_total',
    'Cumulative number of preemptions from the engine.',
    true,
    (s) => s.numPreemptions,
  );
  total(
    'vllm:prefix_cache_queries_total',
    'Prefix cache queries, in terms of number of queried tokens.',
    true,
    (s) => s.numPrefixQueryTokens,
  );
  total(
    'vllm:prefix_cache_hits_total',
    'Prefix cache hits, in terms of number of cached tokens.',
    true,
    (s) => s.numPrefixHitTokens,
  );
  total(
    'loom_generated_tokens_total',
    'Tokens generated over all requests',
    false,
    (s) => s.numGeneratedTokens,
  );
  total('loom_engine_steps_total', 'Engine steps run', false, (s) => s.numSteps);
  total(
    'loom_preemptions_total',
    'Sequences preempted for KV pages (recomputed later)',
    false,
    (s) => s.numPreemptions,
  );
}
