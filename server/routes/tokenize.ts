import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { chatPromptOptions, chatPromptTokens } from '../chat-prompt.js';
import { checkPromptChars } from '../request-limits.js';
import { checkTokenIds, resolveAdapter } from '../sampling-params.js';
import { errorResponses } from '../schemas/responses.js';
import {
  DetokenizeRequestSchema,
  DetokenizeResponseSchema,
  TokenizeRequestSchema,
  TokenizeResponseSchema,
} from '../schemas/tokenize-request.js';
import type { ServingStack } from '../serving-stack.js';
import { checkedTools } from '../tool-calls.js';

/** vLLM checks `model` when given (unknown → 404); the tokenizer is the base model's for every adapter. */
async function checkModel(stack: ServingStack, model: string | undefined): Promise<void> {
  if (model !== undefined) await resolveAdapter(stack, model);
}

/**
 * vLLM's /tokenize and /detokenize, with the tokenizer and chat template generation uses, so a
 * client can count a prompt's tokens exactly as the server will. Unlike generation, a prompt
 * longer than the context is still counted (vLLM does the same); only the text bound that keeps
 * tokenizing cheap applies.
 */
export const tokenizeRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/tokenize',
    { schema: { body: TokenizeRequestSchema, response: { 200: TokenizeResponseSchema, ...errorResponses } } },
    async (request) => {
      const stack = app.loom.requireStack();
      const body = request.body;
      await checkModel(stack, body.model);
      let tokens: number[];
      if ('messages' in body) {
        tokens = chatPromptTokens(stack, body.model ?? stack.modelName, body.messages, {
          ...chatPromptOptions(body),
          tools: checkedTools(body.tools, stack.tokenizer),
        });
      } else {
        checkPromptChars(stack, body.prompt.length, 'prompt');
        tokens = stack.tokenizer.encode(body.prompt, body.add_special_tokens ?? true);
      }
      return { count: tokens.length, max_model_len: stack.maxModelLen, tokens };
    },
  );

  app.post(
    '/detokenize',
    {
      schema: {
        body: DetokenizeRequestSchema,
        response: { 200: DetokenizeResponseSchema, ...errorResponses },
      },
    },
    async (request) => {
      const stack = app.loom.requireStack();
      await checkModel(stack, request.body.model);
      checkTokenIds(request.body.tokens, stack.tokenizer.vocabSize, 'tokens');
      // As vLLM (HF's decode default): special tokens are written out, so a round trip keeps BOS.
      return { prompt: stack.tokenizer.decode(request.body.tokens, false) };
    },
  );
};
