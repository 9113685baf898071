import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { Registry } from 'prom-client';
import { installErrorHandlers } from './error-handler.js';
import { RequestMetrics } from './request-metrics.js';
import { chatCompletionsRoute } from './routes/chat-completions.js';
import { completionsRoute } from './routes/completions.js';
import { healthRoute } from './routes/health.js';
import { loraAdaptersRoute } from './routes/lora-adapters.js';
import { installMetrics } from './routes/metrics.js';
import { modelsRoute } from './routes/models.js';
import { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Lifecycle, the serving stack once attached, open streams. */
    loom: ServerState;
  }
}

export interface AppOptions {
  /** Attach now (tests); main attaches later with `app.loom.attach` so /health answers while loading. */
  stack?: ServingStack;
  logger?: FastifyServerOptions['logger'];
  /** Largest request body in bytes (a long prompt as token ids is big JSON). */
  bodyLimit?: number;
}

/**
 * The HTTP app as a plain factory: tests call it and use `inject` or listen on port 0; main
 * owns the process around it. Fastify's own 503-on-close answers in its own JSON shape, so
 * it is off and ServerState answers OpenAI-style instead.
 */
export function buildApp(options: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 16 * 1024 * 1024,
    return503OnClosing: false,
    ajv: {
      // Wrong types are the client's error to hear about, not to have guessed ("5" is not 5).
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, verbose: true },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const registry = new Registry();
  const state = new ServerState(new RequestMetrics(registry));
  if (options.stack) state.attach(options.stack);
  app.decorate('loom', state);
  installErrorHandlers(app);
  installMetrics(app, registry);

  app.addHook('preClose', async () => {
    state.beginClosing();
  });
  // A keep-alive connection whose last response finishes during shutdown would hold the
  // listener open until its keep-alive timeout: close it as soon as it is idle.
  app.addHook('onResponse', async () => {
    if (state.phase === 'closing') setImmediate(() => app.server.closeIdleConnections());
  });
  app.addHook('onClose', async () => {
    await state.close();
  });

  app.register(healthRoute);
  app.register(modelsRoute);
  app.register(completionsRoute);
  app.register(chatCompletionsRoute);
  app.register(loraAdaptersRoute);
  return app;
}
