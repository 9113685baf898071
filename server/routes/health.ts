import type { FastifyPluginAsync } from 'fastify';
import { HealthSchema } from '../schemas/responses.js';

/** 200 while serving; 503 while the model loads or the server shuts down (load balancers stop sending). */
export const healthRoute: FastifyPluginAsync = async (app) => {
  app.get(
    '/health',
    { schema: { response: { 200: HealthSchema, 503: HealthSchema } } },
    async (_request, reply) => {
      const phase = app.loom.phase;
      return reply.code(phase === 'serving' ? 200 : 503).send({ status: phase });
    },
  );
};
