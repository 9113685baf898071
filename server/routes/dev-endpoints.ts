import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { errorResponses } from '../schemas/responses.js';

/** FastAPI's bool query values (what vLLM's `reset_running_requests: bool = Query(False)` takes). */
const QueryBool = Type.Union(
  ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off', 'True', 'False'].map((v) => Type.Literal(v)),
);
const isTrue = (value: string | undefined) =>
  value !== undefined && ['true', '1', 'yes', 'on', 'True'].includes(value);

/**
 * vLLM's development endpoints, served as vLLM serves them only with VLLM_SERVER_DEV_MODE set (RL
 * trainers call them around weight updates):
 *
 * - POST /reset_prefix_cache: nothing cached so far is reused (Scheduler.resetPrefixCache), an
 *   empty 200 once done. `reset_running_requests=true` makes vLLM recompute its running requests
 *   too; Loom's running sequences keep their KV, since nothing they were computed with can have
 *   changed (an adapter replaced in place retires its own blocks, and Loom's base weights never
 *   change while it serves), so the answer is the same. `reset_external` resets a KV connector's
 *   cache, and Loom has none.
 * - GET /is_sleeping: false, always (Loom has no sleep mode: --enable-sleep-mode is refused).
 */
export const devEndpointsRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/reset_prefix_cache',
    {
      schema: {
        querystring: Type.Object({
          reset_running_requests: Type.Optional(QueryBool),
          reset_external: Type.Optional(QueryBool),
        }),
        response: errorResponses,
      },
    },
    async (request, reply) => {
      const dropped = await app.loom.requireStack().scheduler.resetPrefixCache();
      request.log.info(
        {
          droppedBlocks: dropped,
          resetRunningRequests: isTrue(request.query.reset_running_requests),
          resetExternal: isTrue(request.query.reset_external),
        },
        dropped === null ? 'prefix cache reset asked for: prefix caching is off' : 'prefix cache reset',
      );
      // vLLM answers with an empty 200.
      return reply.code(200).send('' as never);
    },
  );

  app.get(
    '/is_sleeping',
    { schema: { response: { 200: Type.Object({ is_sleeping: Type.Boolean() }) } } },
    async () => ({
      is_sleeping: false,
    }),
  );
};
