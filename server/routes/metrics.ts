import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { installAdapterMetrics } from './adapter-metrics.js';

/**
 * GET /metrics in Prometheus text format: the unified pool's use (ARCHITECTURE.md: "/metrics
 * shows its use"), the scheduler's queues and totals, and HTTP answers by route and status.
 * One registry per app, so several apps in one process (tests) never share series. Installed
 * on the root instance rather than registered as an encapsulated plugin, because its
 * onResponse hook must see every route's answers.
 */
export function installMetrics(app: FastifyInstance): void {
  const registry = new Registry();
  const stats = () => app.loom.stack?.scheduler.stats() ?? null;

  new Gauge({
    name: 'loom_pool_pages',
    help: 'Pages of the unified pool by use (the reserved zero page is not counted)',
    labelNames: ['use'],
    registers: [registry],
    collect() {
      const s = stats();
      if (!s) return;
      this.set({ use: 'kv' }, s.numKvPages);
      this.set({ use: 'adapter' }, s.numAdapterPages);
      this.set({ use: 'free' }, s.numFreePages);
    },
  });
  new Gauge({
    name: 'loom_pool_page_bytes',
    help: 'Bytes of one pool page (f32 elements of the hidden size)',
    registers: [registry],
    collect() {
      const s = stats();
      if (s) this.set(s.pageBytes);
    },
  });
  new Gauge({
    name: 'loom_sequences',
    help: 'Sequences (choices) by scheduler state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const s = stats();
      if (!s) return;
      this.set({ state: 'running' }, s.numRunning);
      this.set({ state: 'waiting' }, s.numWaiting);
    },
  });
  const totals: [string, string, (s: NonNullable<ReturnType<typeof stats>>) => number][] = [
    ['loom_generated_tokens_total', 'Tokens generated over all requests', (s) => s.numGeneratedTokens],
    ['loom_engine_steps_total', 'Engine steps run', (s) => s.numSteps],
    [
      'loom_preemptions_total',
      'Sequences preempted for KV pages (recomputed later)',
      (s) => s.numPreemptions,
    ],
  ];
  for (const [name, help, read] of totals) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const s = stats();
        if (!s) return;
        this.reset();
        this.inc(read(s));
      },
    });
  }
  installAdapterMetrics(registry, () => app.loom.stack?.scheduler ?? null);
  const answers = new Counter({
    name: 'loom_http_responses_total',
    help: 'HTTP responses by route and status code',
    labelNames: ['route', 'status'],
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    answers.inc({ route: request.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
