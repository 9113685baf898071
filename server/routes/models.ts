import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { modelNotFound } from '../api-error.js';
import { errorResponses, ModelCardSchema, ModelListSchema } from '../schemas/responses.js';
import { namesBaseModel, type ServingStack } from '../serving-stack.js';

function card(stack: ServingStack, id: string, root: string, parent: string | null) {
  return {
    id,
    object: 'model' as const,
    created: stack.createdAt,
    owned_by: 'loom',
    root,
    parent,
    max_model_len: stack.maxModelLen,
    permission: [],
  };
}

/**
 * The base model's card, then one card per adapter whose parent is the base. vLLM's `root` is
 * the model's directory or the adapter's path. Hidden adapter paths give the adapter's id
 * instead, as OpenAI's `root` does; the base model's directory stays (clients such as
 * bench:serve read its tokenizer there, and it names the one model every client is served).
 */
function cards(stack: ServingStack, hideAdapterPaths: boolean) {
  return [
    // vLLM lists each of the base model's names; adapters name the first as their parent.
    ...[stack.modelName, ...(stack.modelAliases ?? [])].map((name) =>
      card(stack, name, stack.modelDir, null),
    ),
    ...stack.scheduler.adapters
      .list()
      .map((a) => card(stack, a.name, hideAdapterPaths ? a.name : a.path, stack.modelName)),
  ];
}

/** vLLM's model list, and OpenAI's retrieve-model (GET /v1/models/{id}: one card, or 404). */
export const modelsRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/models', { schema: { response: { 200: ModelListSchema, ...errorResponses } } }, async () => {
    return {
      object: 'list' as const,
      data: cards(app.loom.requireStack(), app.loom.settings.hideAdapterPaths),
    };
  });

  app.get(
    '/v1/models/*',
    {
      schema: {
        // Adapter names may hold slashes ("org/adapter"), so the id is the rest of the path.
        params: Type.Object({ '*': Type.String() }),
        response: { 200: ModelCardSchema, ...errorResponses },
      },
    },
    async (request) => {
      const id = request.params['*'];
      const stack = app.loom.requireStack();
      // An adapter in --lora-dir not yet used is registered now, as a completion naming it would.
      if (!namesBaseModel(stack, id)) await stack.scheduler.adapters.resolve(id);
      const found = cards(stack, app.loom.settings.hideAdapterPaths).find((c) => c.id === id);
      if (!found) throw modelNotFound(id);
      return found;
    },
  );
};
