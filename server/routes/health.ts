import type { FastifyPluginAsync } from 'fastify';

/** 200 while serving; 503 while the model loads or the server shuts down (load balancers stop sending). */
export const healthRoute: FastifyPluginAsync = async (app) => {
  app.get('/health', async (_request, reply) => {
    const phase = app.loom.phase;
    return reply.code(phase === 'serving' ? 200 : 503).send({ status: phase });
  });
};
