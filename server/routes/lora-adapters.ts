import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { invalidRequest } from '../api-error.js';
import { insideLoraRoot, requireLoraRoot } from '../lora-root.js';
import { errorResponses } from '../schemas/responses.js';
import { namesBaseModel } from '../serving-stack.js';

const LoadRequestSchema = Type.Object(
  {
    lora_name: Type.String({ minLength: 1, maxLength: 255 }),
    lora_path: Type.String({ minLength: 1, maxLength: 4096 }),
    load_inplace: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const UnloadRequestSchema = Type.Object(
  {
    lora_name: Type.String({ minLength: 1, maxLength: 255 }),
    // vLLM accepts the adapter's integer id beside its name; Loom names adapters only.
    lora_int_id: Type.Optional(Type.Null()),
  },
  { additionalProperties: false },
);

/**
 * vLLM's runtime adapter management: POST /v1/load_lora_adapter and /v1/unload_lora_adapter,
 * answering plain-text success lines as vLLM does. Off unless --lora-root is set (vLLM gates it
 * behind an environment variable); paths must resolve, symlinks followed, inside that root.
 */
export const loraAdaptersRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/load_lora_adapter',
    { schema: { body: LoadRequestSchema, response: { 200: Type.String(), ...errorResponses } } },
    async (request, reply) => {
      const stack = app.loom.requireStack();
      const root = requireLoraRoot(stack);
      const { lora_name: name, lora_path: path, load_inplace: inPlace = false } = request.body;
      if (namesBaseModel(stack, name))
        throw invalidRequest(`"${name}" is the base model's name.`, 'lora_name', 'adapter_conflict');
      const dir = await insideLoraRoot(root, path, 'lora_path');
      await stack.scheduler.adapters.load(name, dir, inPlace);
      request.log.info({ adapter: name, dir, inPlace }, 'adapter loaded');
      return reply
        .type('text/plain; charset=utf-8')
        .send(`Success: LoRA adapter '${name}' added successfully.`);
    },
  );
  app.post(
    '/v1/unload_lora_adapter',
    { schema: { body: UnloadRequestSchema, response: { 200: Type.String(), ...errorResponses } } },
    async (request, reply) => {
      const stack = app.loom.requireStack();
      requireLoraRoot(stack);
      const name = request.body.lora_name;
      stack.scheduler.adapters.unload(name);
      request.log.info({ adapter: name }, 'adapter unloaded (requests in flight finish first)');
      return reply
        .type('text/plain; charset=utf-8')
        .send(`Success: LoRA adapter '${name}' removed successfully.`);
    },
  );
};
