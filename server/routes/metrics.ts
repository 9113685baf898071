import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { registerStateMetrics } from '../state-metrics.js';
import { installAdapterMetrics } from './adapter-metrics.js';

/**
 * GET /metrics in Prometheus text format: vLLM's series (names, types, label `model_name`) so
 * vLLM dashboards and the inference gateway read Loom as they read vLLM, and Loom's own (pool
 * pages by owner, adapter residency, loads and evictions, HTTP answers). `registry` is the app's own, so several
 * apps in one process (tests) never share series; request timings are registered on it by
 * RequestMetrics. Installed on the root instance rather than as an encapsulated plugin,
 * because its onResponse hook must see every route's answers.
 */
export function installMetrics(app: FastifyInstance, registry: Registry): void {
  registerStateMetrics(registry, () => app.loom.stack);
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
