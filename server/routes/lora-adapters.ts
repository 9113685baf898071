import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ApiError, invalidRequest } from '../api-error.js';
import { errorResponses } from '../schemas/responses.js';
import { namesBaseModel, type ServingStack } from '../serving-stack.js';

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
      const dir = await insideRoot(root, path);
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

function requireLoraRoot(stack: ServingStack): string {
  if (stack.loraRoot === null)
    throw new ApiError(
      403,
      'invalid_request_error',
      'runtime_lora_disabled',
      'Runtime adapter loading is off; start the server with --lora-root DIR to allow it.',
    );
  return stack.loraRoot;
}

/** The adapter directory, resolved (symlinks included) and checked to lie inside `root`. */
async function insideRoot(root: string, path: string): Promise<string> {
  const realRoot = await realpath(root);
  const wanted = isAbsolute(path) ? path : resolve(realRoot, path);
  let real: string;
  try {
    real = await realpath(wanted);
  } catch {
    throw invalidRequest(`The adapter path ${path} does not exist.`, 'lora_path', 'invalid_adapter');
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel))
    throw new ApiError(
      403,
      'invalid_request_error',
      'path_outside_lora_root',
      `The adapter path ${path} is outside --lora-root.`,
      'lora_path',
    );
  return real;
}
