import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { LOOM_VERSION } from '../version.js';

const VersionSchema = Type.Object({ version: Type.String() });

/**
 * vLLM's small probes: /version, and /ping (SageMaker's health check, GET or POST), which answers
 * as /health does (200 while serving, 503 while loading, shutting down or after an engine
 * failure) with an empty body.
 */
export const serverInfoRoute: FastifyPluginAsync = async (app) => {
  app.get('/version', { schema: { response: { 200: VersionSchema } } }, async () => ({
    version: LOOM_VERSION,
  }));

  const ping = async (_request: unknown, reply: FastifyReply) => {
    const isServing = app.loom.phase === 'serving' && !app.loom.stack?.scheduler.health();
    return reply.code(isServing ? 200 : 503).send();
  };
  app.get('/ping', ping);
  app.post('/ping', ping);
};
