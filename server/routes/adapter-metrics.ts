import { Counter, Gauge, type Registry } from 'prom-client';
import { ADAPTER_TIERS, type RegistryCounters } from '../../memory/adapter-registry.js';
import type { GenerationService } from '../serving-stack.js';

/**
 * Adapter residency as routers and dashboards need it: where each registered adapter is now
 * (vLLM shows only which adapters are active, so an affinity router is near random at low load),
 * and the registry's loads, evictions and prefetch hits as counters.
 */
export function installAdapterMetrics(registry: Registry, service: () => GenerationService | null): void {
  new Gauge({
    name: 'loom_lora_adapter_loaded',
    help: 'Per adapter: 1 on the tier that holds its weights now (pool, host RAM or disk only), 0 on the others',
    labelNames: ['adapter', 'tier'],
    registers: [registry],
    collect() {
      const s = service();
      if (!s) return;
      // Unloaded adapters disappear from the output instead of lingering with their last value.
      this.reset();
      for (const adapter of s.adapters.list())
        for (const tier of ADAPTER_TIERS)
          this.set({ adapter: adapter.name, tier }, adapter.tier === tier ? 1 : 0);
    },
  });
  const gauges: [string, string, (s: ReturnType<GenerationService['stats']>) => number][] = [
    ['loom_lora_adapters_registered', 'Adapters registered (any tier)', (s) => s.numRegisteredAdapters],
    ['loom_lora_adapters_resident', 'Adapters resident in the page pool', (s) => s.numResidentAdapters],
    [
      'loom_lora_adapters_contiguous',
      'Resident adapters on consecutive pages (the webgpu engine addresses them by first page, without a page list)',
      (s) => s.numContiguousAdapters,
    ],
    [
      'loom_lora_adapters_stacked',
      "Adapters in the onnx engine's stacked LoRA slots, read in place by every step (0 on other engines)",
      (s) => s.numStackedAdapters,
    ],
    ['loom_lora_max_resident', 'Adapters allowed in the pool at once (--max-loras)', (s) => s.maxLoras],
    [
      'loom_lora_host_bytes',
      "Bytes of adapter weights held in host RAM (in their files' dtypes)",
      (s) => s.adapterHostBytes,
    ],
  ];
  for (const [name, help, read] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const s = service();
        if (s) this.set(read(s.stats()));
      },
    });
  }
  const counters: [string, string, keyof RegistryCounters][] = [
    ['loom_lora_disk_loads_total', 'Adapters read from disk into host RAM', 'numDiskLoads'],
    ['loom_lora_pool_loads_total', 'Adapters written from host RAM into pool pages', 'numPoolLoads'],
    [
      'loom_lora_overlapped_pool_loads_total',
      'Pool writes done while an engine step ran (prefetch)',
      'numOverlappedPoolLoads',
    ],
    ['loom_lora_evictions_total', 'Idle adapters evicted from the pool', 'numEvictions'],
    [
      'loom_lora_prefetch_hits_total',
      'Requests whose adapter was resident when first scheduled',
      'numPrefetchHits',
    ],
    [
      'loom_lora_prefetch_misses_total',
      'Requests whose adapter had to be copied into the pool before their first step',
      'numPrefetchMisses',
    ],
    [
      'loom_lora_blocking_copy_seconds_total',
      'Seconds the step loop waited on adapter copies into the pool',
      'blockingCopySeconds',
    ],
    [
      'loom_lora_read_wait_seconds_total',
      'Seconds the step loop sat idle because every waiting request’s adapter was still being read from disk',
      'readWaitSeconds',
    ],
  ];
  for (const [name, help, key] of counters) {
    // The registry's counters only grow; the metric mirrors them at scrape time.
    let reported = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const s = service();
        if (!s) return;
        const now = s.stats().adapterCounters[key];
        if (now > reported) this.inc(now - reported);
        reported = now;
      },
    });
  }
}
