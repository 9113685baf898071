import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { LOOM_VERSION } from '../version.js';

const VersionSchema = Type.Object({ version: Type.String() });
const LoadSchema = Type.Object({ server_load: Type.Integer() });

/**
 * vLLM's small probes: /version, /load (generation requests in flight, streaming ones included,
 * as vLLM counts them with --enable-server-load-tracking; Loom always counts), and /ping (SageMaker's health check, GET or POST), which answers
 * as /health does (200 while serving, 503 while loading, shutting down or after an engine
 * failure) with an empty body; GET / answers the same, as LoRAX's and TGI's health probe.
 */
export const serverInfoRoute: FastifyPluginAsync = async (app) => {
  app.get('/version', { schema: { response: { 200: VersionSchema } } }, async () => ({
    version: LOOM_VERSION,
  }));

  app.get('/load', { schema: { response: { 200: LoadSchema } } }, async () => ({
    server_load: app.loom.numInFlight,
  }));

  const ping = async (_request: unknown, reply: FastifyReply) => {
    const isServing = app.loom.phase === 'serving' && !app.loom.stack?.scheduler.health();
    return reply.code(isServing ? 200 : 503).send();
  };
  app.get('/ping', ping);
  // LoRAX's and TGI's health probe is GET / (their POST / generates: routes/text-generation.ts).
  app.get('/', ping);
  app.post('/ping', ping);
};
