import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { GenerationDelta } from '../../scheduler/request.js';
import { invalidRequest, notSupported } from '../api-error.js';
import { Generation, sendEventStream } from '../generation.js';
import { newRequestId } from '../request-id.js';
import { checkTokenIds, resolveAdapter, samplingParams } from '../sampling-params.js';
import { type CompletionRequest, CompletionRequestSchema } from '../schemas/completion-request.js';
import { CompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import type { ServingStack } from '../serving-stack.js';

/** OpenAI's (and vLLM's) default for /v1/completions when max_tokens is left out. */
const DEFAULT_COMPLETION_TOKENS = 16;

/** The prompt as token ids: a string is encoded with the tokenizer's special tokens (BOS). */
function promptTokens(stack: ServingStack, prompt: CompletionRequest['prompt']): number[] {
  let single: string | number[] = prompt as string | number[];
  if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number') {
    if (prompt.length > 1)
      throw invalidRequest(
        'Only one prompt per request is supported; send one request per prompt.',
        'prompt',
      );
    single = prompt[0] as string | number[];
  }
  if (typeof single === 'string') {
    if (single.length === 0) throw invalidRequest('The prompt is empty.', 'prompt');
    return stack.tokenizer.encode(single, true);
  }
  checkTokenIds(single, stack.tokenizer.vocabSize, 'prompt');
  return single;
}

function checkUnsupported(body: CompletionRequest): void {
  if (body.logprobs !== undefined && body.logprobs !== null) throw notSupported('logprobs', 'logprobs');
  if (body.echo) throw notSupported('echo', 'echo');
  if (body.suffix) throw notSupported('suffix', 'suffix');
  if (body.best_of && body.best_of !== (body.n ?? 1)) throw notSupported('best_of', 'best_of other than n');
}

export const completionsRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/completions',
    {
      schema: {
        body: CompletionRequestSchema,
        response: { 200: CompletionResponseSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const stack = app.loom.requireStack();
      const body = request.body;
      const adapter = resolveAdapter(stack, body.model);
      checkUnsupported(body);
      const prompt = promptTokens(stack, body.prompt);
      const sampling = samplingParams(stack, body, {
        numPromptTokens: prompt.length,
        requestedMaxTokens: body.max_tokens ?? null,
        defaultMaxTokens: DEFAULT_COMPLETION_TOKENS,
      });
      const id = newRequestId('cmpl');
      const created = Math.floor(Date.now() / 1000);
      const generation = await Generation.start(
        stack,
        { requestId: id, promptTokens: prompt, adapter, sampling },
        reply,
      );
      const head = { id, object: 'text_completion' as const, created, model: body.model };

      if (!body.stream) {
        const choices = await generation.collect(sampling.n);
        return {
          ...head,
          choices: choices.map((c, index) => ({
            index,
            text: c.text,
            logprobs: null,
            finish_reason: c.finishReason,
          })),
          usage: generation.usage,
        };
      }
      const includeUsage = body.stream_options?.include_usage === true;
      const chunk = (delta: GenerationDelta) => ({
        ...head,
        choices: [
          { index: delta.index, text: delta.text, logprobs: null, finish_reason: delta.finishReason },
        ],
        ...(includeUsage ? { usage: null } : {}),
      });
      async function* events() {
        for await (const delta of generation.deltas()) {
          if (delta.text || delta.finishReason) yield chunk(delta);
        }
        if (includeUsage) yield { ...head, choices: [], usage: generation.usage };
      }
      return sendEventStream(reply, app.loom, generation, events());
    },
  );
};
