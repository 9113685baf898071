import type { FastifyPluginAsync } from 'fastify';
import { HealthSchema } from '../schemas/responses.js';

/**
 * 200 while serving; 503 while the model loads, the server shuts down, or the engine has failed
 * for good (device lost: `reason` says so), so load balancers stop sending.
 */
export const healthRoute: FastifyPluginAsync = async (app) => {
  app.get(
    '/health',
    { schema: { response: { 200: HealthSchema, 503: HealthSchema } } },
    async (_request, reply) => {
      const phase = app.loom.phase;
      const failure = phase === 'serving' ? app.loom.stack?.scheduler.health() : null;
      if (failure) return reply.code(503).send({ status: 'engine_failed', reason: failure.clientMessage });
      return reply.code(phase === 'serving' ? 200 : 503).send({ status: phase });
    },
  );
};
