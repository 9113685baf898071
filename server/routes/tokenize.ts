import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notSupported } from '../api-error.js';
import { chatPromptOptions, chatPromptTokens } from '../chat-prompt.js';
import { validated } from '../error-handler.js';
import { requestChatTemplate } from '../request-chat-template.js';
import { checkPromptChars } from '../request-limits.js';
import { checkTokenIds, resolveAdapter } from '../sampling-params.js';
import { eitherErrorResponses, errorResponses } from '../schemas/responses.js';
import {
  DetokenizeRequestSchema,
  DetokenizeResponseSchema,
  TokenizeChatSchema,
  TokenizeInputsSchema,
  TokenizePromptSchema,
  TokenizeRequestSchema,
  TokenizeResponseSchema,
  TokenizerInfoResponseSchema,
} from '../schemas/tokenize-request.js';
import type { ServingStack } from '../serving-stack.js';
import { checkedTools } from '../tool-calls.js';

/** vLLM checks `model` when given (unknown → 404); the tokenizer is the base model's for every adapter. */
async function checkModel(stack: ServingStack, model: string | undefined): Promise<void> {
  if (model !== undefined) await resolveAdapter(stack, model);
}

/**
 * LoRAX's /tokenize: each token's id, vocabulary entry and span of the text in characters (HF's
 * encode_char_offsets, model/token-offsets.ts).
 */
function loraxTokens(stack: ServingStack, text: string, addSpecialTokens: boolean) {
  checkPromptChars(stack, text.length, 'inputs');
  const ids = stack.tokenizer.encode(text, addSpecialTokens);
  const offsets = stack.tokenizer.charOffsets(text, ids);
  if (!offsets)
    throw notSupported(
      'inputs',
      "token offsets for this text with this model's tokenizer: its tokens cannot be placed in the text (a normalizer that rewrites the text, or a decoder whose pieces are not bytes)",
    );
  const texts = stack.tokenizer.idsToTokens(ids);
  return ids.map((id, i) => ({ id, text: texts[i], start: offsets[i][0], stop: offsets[i][1] }));
}

/**
 * vLLM's /tokenize and /detokenize, with the tokenizer and chat template generation uses, so a
 * client can count a prompt's tokens exactly as the server will. Unlike generation, a prompt
 * longer than the context is still counted (vLLM does the same); only the text bound that keeps
 * tokenizing cheap applies. A body with `inputs` is LoRAX's /tokenize, answered (errors too) as
 * LoRAX answers it.
 */
export const tokenizeRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/tokenize',
    {
      schema: {
        body: TokenizeRequestSchema,
        response: { 200: TokenizeResponseSchema, ...eitherErrorResponses },
      },
      // The body's keys pick its form, checked alone first, so an error names that form's fields.
      preValidation: async (request) => {
        const body = request.body as Record<string, unknown> | null;
        if (!body || typeof body !== 'object' || Array.isArray(body)) return;
        if ('inputs' in body) {
          request.errorFormat = 'text-generation';
          validated(request, TokenizeInputsSchema, body);
        } else if ('messages' in body) validated(request, TokenizeChatSchema, body);
        else validated(request, TokenizePromptSchema, body);
      },
    },
    async (request) => {
      const stack = app.loom.requireStack();
      const body = request.body;
      if ('inputs' in body) return loraxTokens(stack, body.inputs, body.add_special_tokens ?? true);
      await checkModel(stack, body.model);
      let tokens: number[];
      if ('messages' in body) {
        const { tokenizer, templateKwargs } = requestChatTemplate(stack.tokenizer, app.loom.settings, body);
        tokens = chatPromptTokens(stack, body.model ?? stack.modelName, body.messages, {
          ...chatPromptOptions(body),
          templateKwargs,
          tools: checkedTools(body.tools, tokenizer),
          tokenizer,
          contentFormat: app.loom.settings.chatTemplateContentFormat,
        });
      } else {
        checkPromptChars(stack, body.prompt.length, 'prompt');
        tokens = stack.tokenizer.encode(body.prompt, body.add_special_tokens ?? true);
      }
      return {
        count: tokens.length,
        max_model_len: stack.maxModelLen,
        tokens,
        token_strs: body.return_token_strs ? stack.tokenizer.idsToTokens(tokens) : null,
      };
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

/**
 * vLLM's GET /tokenizer_info (model/tokenizer-info.ts), registered, as vLLM registers it, only
 * under --enable-tokenizer-info-endpoint: a 404 otherwise.
 */
export const tokenizerInfoRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/tokenizer_info',
    { schema: { response: { 200: TokenizerInfoResponseSchema, ...errorResponses } } },
    async () => app.loom.requireStack().tokenizer.tokenizerInfo(),
  );
};
