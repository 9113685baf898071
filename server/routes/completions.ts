import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { TokenLogprobs } from '../../kernels/logprobs.js';
import { invalidRequest, notSupported } from '../api-error.js';
import type { FinishedChoice } from '../generation.js';
import {
  type CompletionLogprobs,
  checkNumTop,
  checkPromptLogprobs,
  type LogprobsAsked,
} from '../logprobs.js';
import { checkPromptChars } from '../request-limits.js';
import { checkTokenIds, truncatePrompt } from '../sampling-params.js';
import { type CompletionRequest, CompletionRequestSchema } from '../schemas/completion-request.js';
import { CompletionResponseSchema, errorResponses } from '../schemas/responses.js';
import { type ChoiceView, serveCompletion } from '../serve-completion.js';
import type { ServerState } from '../server-state.js';
import type { ServingStack } from '../serving-stack.js';

/** OpenAI's (and vLLM's) default for /v1/completions when max_tokens is left out. */
const DEFAULT_COMPLETION_TOKENS = 16;

/**
 * The prompts as token ids: a string, a token-id array, or a list of either (OpenAI's batch);
 * a string is encoded with the tokenizer's special tokens (BOS) unless add_special_tokens is
 * false; each is then cut to truncate_prompt_tokens.
 */
function promptsTokens(stack: ServingStack, body: CompletionRequest): number[][] {
  const prompt = body.prompt;
  const isBatch = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number';
  if (Array.isArray(prompt) && prompt.length === 0) throw invalidRequest('The prompt is empty.', 'prompt');
  const prompts = (isBatch ? prompt : [prompt]) as (string | number[])[];
  // Every prompt's size is checked before any is tokenized: a batch costs the event loop no more
  // than its longest legal prompts.
  prompts.forEach((single, p) => {
    const param = isBatch ? `prompt[${p}]` : 'prompt';
    if (typeof single === 'string') {
      if (single.length === 0) throw invalidRequest('The prompt is empty.', param);
      checkPromptChars(stack, single.length, param);
    } else {
      if (single.length === 0) throw invalidRequest('The prompt is empty.', param);
      checkTokenIds(single, stack.tokenizer.vocabSize, param);
    }
  });
  return prompts.map((single) =>
    truncatePrompt(
      typeof single === 'string' ? stack.tokenizer.encode(single, body.add_special_tokens ?? true) : single,
      body.truncate_prompt_tokens,
      stack.maxModelLen,
    ),
  );
}

function checkUnsupported(body: CompletionRequest): void {
  if (body.suffix) throw notSupported('suffix', 'suffix');
  if (body.best_of && body.best_of !== (body.n ?? 1)) throw notSupported('best_of', 'best_of other than n');
  if (body.max_tokens === 0 && body.echo !== true)
    throw invalidRequest('max_tokens must be at least 1, got 0.', 'max_tokens');
}

/**
 * vLLM's echo without generation (echo with max_tokens 0): one token is generated, as vLLM does,
 * and left out of the choice's text and logprobs, which hold the prompt alone; usage counts it,
 * as vLLM's does.
 */
function echoesOnly(body: CompletionRequest): boolean {
  return body.echo === true && body.max_tokens === 0;
}

/**
 * `logprobs: k` (0..--max-logprobs) lists k top tokens beside each sampled one; vLLM's `prompt_logprobs`
 * scores the prompt, and `echo` with `logprobs` does too (with k top tokens unless
 * prompt_logprobs says otherwise).
 */
function logprobsAsked(body: CompletionRequest, stack: ServingStack, maxLogprobs: number): LogprobsAsked {
  const numTop = body.logprobs == null ? null : checkNumTop(body.logprobs, 'logprobs', maxLogprobs);
  const numTopPrompt =
    body.prompt_logprobs != null
      ? checkPromptLogprobs(
          body.prompt_logprobs,
          body.stream === true,
          stack.tokenizer.vocabSize,
          maxLogprobs,
        )
      : body.echo === true
        ? numTop
        : null;
  return { numTop, numTopPrompt };
}

/**
 * The prompt's text as echo returns it: the string the client sent, or the tokens it ran decoded
 * (token ids sent, or a prompt truncate_prompt_tokens may have cut).
 */
function echoText(body: CompletionRequest, view: ChoiceView): string {
  const prompt = body.prompt;
  const single = Array.isArray(prompt) && typeof prompt[0] !== 'number' ? prompt[view.promptIndex] : prompt;
  return typeof single === 'string' && body.truncate_prompt_tokens == null
    ? single
    : view.tokenizer.decode(view.promptTokens);
}

/**
 * The prompt's entries of an echoed choice's `logprobs`: its first token has no logprob (nothing
 * comes before it), the others the scores the engine gave them (vLLM's prompt_logprobs).
 */
function promptEntries(view: ChoiceView, scored: readonly TokenLogprobs[] | null) {
  const scores: Array<TokenLogprobs | null> = [null, ...(scored ?? [])];
  while (scores.length < view.promptTokens.length) scores.push(null);
  return { tokenIds: view.promptTokens, scores };
}

/** A choice's (or one streamed delta's) `logprobs`, echoed prompt first where asked. */
function completionLogprobs(
  body: CompletionRequest,
  view: ChoiceView,
  out: Pick<FinishedChoice, 'tokenIds' | 'logprobs' | 'promptLogprobs'>,
  withPrompt: boolean,
): CompletionLogprobs | null {
  if (!view.logprobs) return null;
  const prompt =
    withPrompt && body.echo ? promptEntries(view, out.promptLogprobs) : { tokenIds: [], scores: [] };
  if (echoesOnly(body)) return view.logprobs.completion(prompt.tokenIds, prompt.scores);
  return view.logprobs.completion([...prompt.tokenIds, ...out.tokenIds], [...prompt.scores, ...out.logprobs]);
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
    (request, reply) => serveTextCompletion(app.loom, reply, request.body),
  );
};

/** One completion request, validated, answered (POST /v1/completions, and /invocations with a prompt). */
export function serveTextCompletion(state: ServerState, reply: FastifyReply, body: CompletionRequest) {
  return serveCompletion(state, reply, body, {
    idPrefix: 'cmpl',
    object: 'text_completion',
    chunkObject: 'text_completion',
    promptTokens: (stack, body) => {
      checkUnsupported(body);
      return promptsTokens(stack, body);
    },
    requestedMaxTokens: (body) => (echoesOnly(body) ? 1 : (body.max_tokens ?? null)),
    logprobsAsked,
    defaultMaxTokens: DEFAULT_COMPLETION_TOKENS,
    responseFields: () => ({}),
    choice: (outcome, view) => ({
      text: (body.echo ? echoText(body, view) : '') + (echoesOnly(body) ? '' : outcome.text),
      logprobs: completionLogprobs(body, view, outcome, true),
      finish_reason: outcome.finishReason,
      stop_reason: outcome.stop_reason,
      prompt_logprobs: view.promptLogprobs(outcome.promptLogprobs),
      ...(view.returnTokenIds
        ? {
            prompt_token_ids: [...view.promptTokens],
            token_ids: echoesOnly(body) ? [] : [...outcome.tokenIds],
          }
        : {}),
    }),
    deltaChoice: (index, delta, stopReason, view) => ({
      index,
      text:
        (body.echo && view.isFirstDelta ? echoText(body, view) : '') + (echoesOnly(body) ? '' : delta.text),
      logprobs: completionLogprobs(
        body,
        view,
        {
          tokenIds: delta.tokenIds,
          logprobs: delta.logprobs ?? [],
          promptLogprobs: delta.promptLogprobs ?? null,
        },
        view.isFirstDelta,
      ),
      finish_reason: delta.finishReason,
      stop_reason: stopReason,
      // A stream scores the prompt only with prompt_logprobs 0 (as vLLM allows it); vLLM
      // sends none, Loom sends them with the choice's first token.
      ...(delta.promptLogprobs ? { prompt_logprobs: view.promptLogprobs(delta.promptLogprobs) } : {}),
      // vLLM's return_token_ids: the prompt's with the choice's first chunk, each chunk's own.
      ...(view.returnTokenIds
        ? {
            ...(view.isFirstDelta ? { prompt_token_ids: [...view.promptTokens] } : {}),
            token_ids: echoesOnly(body) ? [] : [...delta.tokenIds],
          }
        : {}),
    }),
  });
}
