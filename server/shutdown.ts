import type { FastifyInstance } from 'fastify';

/** How long ended requests get to write their last bytes before the listener closes anyway. */
const FLUSH_GRACE_MS = 2000;

function wait(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

/**
 * Graceful shutdown, one rule for streaming and non-streaming requests: stop admitting at once
 * (/health 503 "draining", new work 503 with `Connection: close`, the listener stays open so
 * probes see it), let requests in flight finish for up to `timeoutMs`, then end the rest (a
 * stream gets a final error event and [DONE], a non-streaming request a 503), close the
 * listener and the serving stack (engine memory, native sessions).
 */
export async function drainAndClose(app: FastifyInstance, timeoutMs: number): Promise<void> {
  const state = app.loom;
  state.beginDraining();
  app.log.info({ inFlight: state.numInFlight, timeoutSeconds: timeoutMs / 1000 }, 'draining');
  // Idle keep-alive connections would otherwise sit until their timeout.
  app.server.closeIdleConnections();
  if ((await Promise.race([state.whenIdle(), wait(timeoutMs)])) === 'timeout') {
    app.log.warn({ inFlight: state.numInFlight }, 'shutdown timeout: ending requests still in flight');
    state.beginClosing();
    await Promise.race([state.whenIdle(), wait(FLUSH_GRACE_MS)]);
  }
  await app.close();
  app.log.info('shut down');
}
