import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { invalidRequest } from '../api-error.js';
import { validated } from '../error-handler.js';
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from '../schemas/chat-request.js';
import { type CompletionRequest, CompletionRequestSchema } from '../schemas/completion-request.js';
import { type GenerateRequest, GenerateRequestSchema } from '../schemas/generate-request.js';
import { serveChatCompletion } from './chat-completions.js';
import { serveTextCompletion } from './completions.js';
import { serveCompatGenerate } from './text-generation.js';

/** SageMaker's multi-adapter header: the inference component's adapter, which the request runs on. */
const ADAPTER_HEADER = 'x-amzn-sagemaker-adapter-identifier';

/**
 * POST /invocations: SageMaker's one inference route, as vLLM serves it: a body with `messages`
 * is a chat completion, one with `prompt` a completion, and (as LoRAX serves it) one with
 * `inputs` LoRAX's generate; each answered, errors included, as its own route answers it. A
 * SageMaker adapter header picks the adapter (the body's `model`, or LoRAX's adapter_id), as
 * vLLM's SageMaker support injects it.
 */
async function invoke(request: FastifyRequest, reply: FastifyReply) {
  const state = request.server.loom;
  const body = request.body as Record<string, unknown>;
  const header = request.headers[ADAPTER_HEADER];
  const adapter = typeof header === 'string' && header !== '' ? header : null;
  if ('inputs' in body) {
    request.errorFormat = 'text-generation';
    if (adapter !== null) {
      const parameters = body.parameters;
      body.parameters = {
        ...(parameters && typeof parameters === 'object' ? parameters : {}),
        adapter_id: adapter,
      };
    }
    return serveCompatGenerate(
      state,
      reply,
      validated<GenerateRequest>(request, GenerateRequestSchema, body),
    );
  }
  if (adapter !== null) body.model = adapter;
  if ('messages' in body)
    return serveChatCompletion(
      state,
      reply,
      validated<ChatCompletionRequest>(request, ChatCompletionRequestSchema, body),
    );
  if ('prompt' in body)
    return serveTextCompletion(
      state,
      reply,
      validated<CompletionRequest>(request, CompletionRequestSchema, body),
    );
  throw invalidRequest(
    'Cannot find suitable handler for request. Expected one of: ChatCompletionRequest (messages), CompletionRequest (prompt), LoRAX GenerateRequest (inputs).',
  );
}

export const invocationsRoute: FastifyPluginAsync = async (app) => {
  app.post(
    '/invocations',
    {
      schema: { body: Type.Object({}, { description: 'a JSON object' }), response: { 200: Type.Unknown() } },
    },
    invoke,
  );
};
