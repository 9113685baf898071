import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import type { ServerState } from './server-state.js';

/** vLLM logs its engine stats every 10 s. */
export const STATS_INTERVAL_MS = 10_000;

interface Totals {
  at: number;
  promptTokens: number;
  generatedTokens: number;
  preemptions: number;
  prefixQueries: number;
  prefixHits: number;
}

/** Prompt tokens counted so far (vllm:prompt_tokens_total over every label). */
async function promptTokensTotal(registry: Registry): Promise<number> {
  const metric = registry.getSingleMetric('vllm:prompt_tokens_total');
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

/**
 * vLLM's periodic stats line, while there is work: prompt and generation throughput over the
 * interval, requests running and waiting, and how full the page pool is (KV and adapters). An
 * idle server writes nothing. Returns the function that stops it.
 */
export function startStatsLog(
  state: ServerState,
  registry: Registry,
  log: FastifyBaseLogger,
  intervalMs = STATS_INTERVAL_MS,
): () => void {
  let last: Totals | null = null;
  let isBusy = false;
  const tick = async () => {
    const stack = state.stack;
    if (!stack || isBusy) return;
    isBusy = true;
    try {
      const stats = stack.scheduler.stats();
      const now: Totals = {
        at: performance.now(),
        promptTokens: await promptTokensTotal(registry),
        generatedTokens: stats.numGeneratedTokens,
        preemptions: stats.numPreemptions,
        prefixQueries: stats.numPrefixQueryTokens,
        prefixHits: stats.numPrefixHitTokens,
      };
      const previous = last;
      last = now;
      if (!previous) return;
      const seconds = (now.at - previous.at) / 1000;
      const generated = now.generatedTokens - previous.generatedTokens;
      const prompted = now.promptTokens - previous.promptTokens;
      const hasWork =
        stats.numRunningRequests + stats.numWaitingRequests > 0 || generated > 0 || prompted > 0;
      if (!hasWork) return;
      const percent = (pages: number) => Math.round((1000 * pages) / stats.numPages) / 10;
      const queried = now.prefixQueries - previous.prefixQueries;
      // vLLM's "Prefix cache hit rate" over the interval: cached prompt tokens among those looked up.
      const prefixHitPercent =
        queried > 0 ? Math.round((1000 * (now.prefixHits - previous.prefixHits)) / queried) / 10 : 0;
      log.info(
        {
          promptTokensPerSecond: Math.round((10 * prompted) / seconds) / 10,
          generationTokensPerSecond: Math.round((10 * generated) / seconds) / 10,
          running: stats.numRunningRequests,
          waiting: stats.numWaitingRequests,
          runningSequences: stats.numRunning,
          waitingSequences: stats.numWaiting,
          poolUsePercent: percent(stats.numPages - stats.numFreePages - stats.numPrefixCachedPages),
          kvCachePercent: percent(stats.numKvPages),
          prefixCachedPercent: percent(stats.numPrefixCachedPages),
          prefixCacheHitPercent: prefixHitPercent,
          adapterPagesPercent: percent(stats.numAdapterPages),
          residentAdapters: stats.numResidentAdapters,
          preemptions: now.preemptions - previous.preemptions,
        },
        'engine stats',
      );
    } finally {
      isBusy = false;
    }
  };
  const timer = setInterval(() => {
    tick().catch((error: unknown) => log.warn({ err: error }, 'stats line failed'));
  }, intervalMs);
  timer.unref();
  void tick();
  return () => clearInterval(timer);
}
