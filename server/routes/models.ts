import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, ModelListSchema } from '../schemas/responses.js';

/** vLLM's model list: the base model's card, then one card per adapter whose parent is the base. */
export const modelsRoute: FastifyPluginAsync = async (app) => {
  app.get('/v1/models', { schema: { response: { 200: ModelListSchema, ...errorResponses } } }, async () => {
    const stack = app.loom.requireStack();
    const card = (id: string, root: string, parent: string | null) => ({
      id,
      object: 'model',
      created: stack.createdAt,
      owned_by: 'loom',
      root,
      parent,
      max_model_len: stack.maxModelLen,
      permission: [],
    });
    return {
      object: 'list',
      data: [
        card(stack.modelName, stack.modelDir, null),
        ...stack.scheduler.adapters.list().map((a) => card(a.name, a.path, stack.modelName)),
      ],
    };
  });
};
