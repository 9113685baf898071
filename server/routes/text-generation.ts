import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { TokenLogprobs } from '../../kernels/logprobs.js';
import { IncrementalDecoder } from '../../model/incremental-decoder.js';
import type { FinishReason } from '../../scheduler/request.js';
import { ApiError, invalidRequest } from '../api-error.js';
import { type EventStreamFormat, type FinishedChoice, Generation, sendEventStream } from '../generation.js';
import { removeMergedAdapters } from '../merged-adapters.js';
import { randomHex } from '../request-id.js';
import { type GenerateRequest, GenerateRequestSchema } from '../schemas/generate-request.js';
import { MAX_STOP_STRINGS } from '../schemas/sampling-fields.js';
import type { ServerState } from '../server-state.js';
import type { ServingStack, ServingTokenizer } from '../serving-stack.js';
import { textGenerationErrorBody } from '../text-generation-errors.js';
import { readTextGeneration, type TextGenerationRun } from '../text-generation-params.js';
import { LOOM_VERSION } from '../version.js';

/** LoRAX's stream: one `data: {json}` per token, an error as its body, nothing after the last. */
const TEXT_GENERATION_EVENTS: EventStreamFormat = {
  frame: (event) => `data: ${JSON.stringify(event)}\n\n`,
  error: (body) => `data: ${JSON.stringify(textGenerationErrorBody(500, body.error))}\n\n`,
  end: null,
};

/** LoRAX's finish reasons; a choice the scheduler ended early is LoRAX's incomplete generation. */
function finishReasonOf(
  reason: FinishReason | null,
  stopReason: string | number | undefined,
): 'length' | 'eos_token' | 'stop_sequence' {
  if (reason === 'length') return 'length';
  if (reason === 'stop') return typeof stopReason === 'string' ? 'stop_sequence' : 'eos_token';
  throw new ApiError(500, 'server_error', 'incomplete_generation', 'Incomplete generation');
}

/** How one request's tokens are written: TGI's token objects, with their texts decoded as TGI does. */
class TokenWriter {
  private readonly pieces: IncrementalDecoder;
  private readonly specials: ReadonlyArray<Uint8Array | null>;

  constructor(
    private readonly tokenizer: ServingTokenizer,
    private readonly run: TextGenerationRun,
  ) {
    // Each token's own text, special tokens included (TGI's decode_token), whatever the output text skips.
    this.pieces = new IncrementalDecoder(
      { decodeRaw: (ids, skip) => tokenizer.decode(ids, skip), cleansUpSpaces: false },
      false,
    );
    this.specials = tokenizer.tokenBytes();
  }

  private textOf(id: number): string {
    return this.tokenizer.decode([id], false);
  }

  /** A generated token: id, text, log-probability, whether it is special, its alternatives. */
  token(id: number, scores: TokenLogprobs | undefined) {
    const alternatives = this.run.alternatives;
    return {
      id,
      text: this.pieces.push(id),
      logprob: scores ? scores.logprob : null,
      special: this.specials[id] === null,
      ...(alternatives > 0 && scores
        ? {
            alternative_tokens: Array.from(scores.topIds.subarray(0, alternatives), (alt, i) => ({
              id: alt,
              text: this.textOf(alt),
              logprob: scores.topLogprobs[i],
            })),
          }
        : {}),
      skipped: false,
    };
  }

  /** TGI's top_tokens of one step: its top_n_tokens most likely tokens. */
  topTokens(scores: TokenLogprobs | undefined) {
    if (!scores) return [];
    return Array.from(scores.topIds.subarray(0, this.run.topTokens), (id, i) => ({
      id,
      text: this.textOf(id),
      logprob: scores.topLogprobs[i],
      special: this.specials[id] === null,
    }));
  }

  /** decoder_input_details: every prompt token, the first with no log-probability (nothing precedes it). */
  prefill(prompt: readonly number[], scored: readonly TokenLogprobs[] | null) {
    if (!scored) return [];
    return prompt.map((id, i) => ({
      id,
      text: this.textOf(id),
      logprob: i === 0 ? null : (scored[i - 1]?.logprob ?? null),
    }));
  }
}

/** Mean log-probability of a choice's tokens: how LoRAX ranks best_of's sequences. */
function meanLogprob(choice: FinishedChoice): number {
  if (choice.logprobs.length === 0) return Number.NEGATIVE_INFINITY;
  return choice.logprobs.reduce((sum, t) => sum + t.logprob, 0) / choice.logprobs.length;
}

/** LoRAX's response headers that say what ran: the model, and the adapter and its source. */
function identityHeaders(reply: FastifyReply, stack: ServingStack, run: TextGenerationRun, inputs: string) {
  reply.header('x-model-id', stack.modelName);
  reply.header('x-compute-characters', String([...inputs].length));
  if (run.adapter !== null) {
    reply.header('x-adapter-id', run.adapterLabel ?? run.adapter);
    reply.header('x-adapter-source', run.adapterSource ?? 'hub');
  }
}

async function startRun(state: ServerState, reply: FastifyReply, body: GenerateRequest, streams: boolean) {
  const stack = state.requireStack();
  const run = await readTextGeneration(state, stack, body, streams);
  const times = { start: performance.now(), scheduled: null as number | null };
  const generation = await Generation.start(
    stack,
    state,
    {
      requestId: `generate-${randomHex()}`,
      promptTokens: run.tokens,
      adapter: run.adapter,
      sampling: run.sampling,
      onScheduled: () => {
        times.scheduled = performance.now();
      },
    },
    reply,
    state.requestMetrics,
  );
  identityHeaders(reply, stack, run, body.inputs);
  return { stack, run, generation, times };
}

/** POST /generate (and / without stream): the whole text, with details when asked. */
async function generate(state: ServerState, reply: FastifyReply, body: GenerateRequest) {
  const p = body.parameters ?? {};
  const { stack, run, generation, times } = await startRun(state, reply, body, false);
  const choices = await generation.collect(run.bestOf);
  const best = choices.reduce((a, b) => (meanLogprob(b) > meanLogprob(a) ? b : a));
  const prefix = p.return_full_text ? body.inputs : '';
  const writer = () => new TokenWriter(stack.tokenizer, run);
  const sequence = (choice: FinishedChoice) => {
    const tokens = writer();
    return {
      generated_text: prefix + choice.text,
      finish_reason: finishReasonOf(choice.finishReason, choice.stopReason),
      generated_tokens: choice.tokenIds.length,
      seed: run.seed,
      prefill: p.decoder_input_details ? tokens.prefill(run.tokens, choices[0].promptLogprobs) : [],
      tokens: choice.tokenIds.map((id, i) => tokens.token(id, choice.logprobs[i])),
      ...(run.topTokens > 0 ? { top_tokens: choice.logprobs.map((scores) => tokens.topTokens(scores)) } : {}),
    };
  };
  const promptTokens = generation.usage.prompt_tokens;
  const end = performance.now();
  const scheduled = times.scheduled ?? times.start;
  reply.header('x-prompt-tokens', String(promptTokens));
  reply.header('x-generated-tokens', String(best.tokenIds.length));
  reply.header('x-total-tokens', String(promptTokens + best.tokenIds.length));
  reply.header('x-total-time', String(Math.round(end - times.start)));
  reply.header('x-queue-time', String(Math.round(scheduled - times.start)));
  reply.header('x-inference-time', String(Math.round(end - scheduled)));
  reply.header('x-time-per-token', String(Math.round((end - scheduled) / Math.max(1, best.tokenIds.length))));
  const main = sequence(best);
  if (!(p.details || p.decoder_input_details)) return { generated_text: main.generated_text };
  const { generated_text, ...details } = main;
  return {
    generated_text,
    details: {
      ...details,
      prompt_tokens: promptTokens,
      skipped_tokens: 0,
      ...(run.bestOf > 1 ? { best_of_sequences: choices.filter((c) => c !== best).map(sequence) } : {}),
    },
  };
}

/** POST /generate_stream (and / with stream): one event per token, the last with the whole text. */
async function generateStream(state: ServerState, reply: FastifyReply, body: GenerateRequest) {
  const p = body.parameters ?? {};
  const { stack, run, generation } = await startRun(state, reply, body, true);
  const tokens = new TokenWriter(stack.tokenizer, run);
  async function* events() {
    let text = '';
    let held: Record<string, unknown> | null = null;
    let finish: ReturnType<typeof finishReasonOf> | null = null;
    for await (const delta of generation.deltas()) {
      text += delta.text;
      const ready: object[] = [];
      delta.tokenIds.forEach((id, i) => {
        if (held) ready.push(held);
        const scores = delta.logprobs?.[i];
        held = {
          token: tokens.token(id, scores),
          ...(run.topTokens > 0 ? { top_tokens: tokens.topTokens(scores) } : {}),
          generated_text: null,
          details: null,
        };
      });
      yield* ready;
      if (delta.finishReason) finish = finishReasonOf(delta.finishReason, delta.stopReason);
    }
    // A stream shutdown ended gets its error event from sendEventStream.
    if (!held || !finish) return;
    const last: Record<string, unknown> = held;
    last.generated_text = (p.return_full_text ? body.inputs : '') + text;
    if (p.details)
      last.details = {
        finish_reason: finish,
        prompt_tokens: generation.usage.prompt_tokens,
        generated_tokens: generation.usage.completion_tokens,
        seed: run.seed,
      };
    yield last;
  }
  return sendEventStream(reply, generation, events(), TEXT_GENERATION_EVENTS);
}

/**
 * LoRAX's compat route (POST /, and /invocations with `inputs`), the one its Python client calls:
 * a stream with `stream: true`, else the whole answer in a one-element array.
 */
export async function serveCompatGenerate(state: ServerState, reply: FastifyReply, body: GenerateRequest) {
  if (body.stream) return generateStream(state, reply, body);
  return [await generate(state, reply, body)];
}

/** LoRAX's /info: what is served and its limits (LoRAX's launcher settings Loom has no equal of are left out). */
function info(state: ServerState) {
  const stack = state.requireStack();
  return {
    model_id: stack.modelName,
    model_sha: null,
    model_pipeline_tag: 'text-generation',
    max_concurrent_requests: stack.maxNumSeqs + stack.maxWaiting,
    max_best_of: state.maxN,
    max_stop_sequences: MAX_STOP_STRINGS,
    max_input_length: stack.maxModelLen - 1,
    max_total_tokens: stack.maxModelLen,
    version: LOOM_VERSION,
    sha: null,
    docker_label: null,
    request_logger_url: null,
  };
}

/**
 * LoRAX's REST API (text-generation-inference's, with LoRAX's adapter fields): POST /generate,
 * /generate_stream, and / (its clients' route: either, by `stream`, the whole answer in a
 * one-element array), and GET /info. The request's adapter_id picks the adapter
 * (server/text-generation-params.ts); errors come in LoRAX's shape, validation errors as 422.
 */
export const textGenerationRoute: FastifyPluginAsyncTypebox = async (app) => {
  const config = { errorFormat: 'text-generation' as const };
  const schema = { body: GenerateRequestSchema, response: { 200: Type.Unknown() } };
  app.post('/generate', { config, schema }, (request, reply) => {
    if (request.body.stream)
      throw invalidRequest('/generate does not stream: use /generate_stream.', 'stream');
    return generate(app.loom, reply, request.body);
  });
  app.post('/generate_stream', { config, schema }, (request, reply) => {
    if (request.body.stream === false)
      throw invalidRequest('/generate_stream always streams: use /generate.', 'stream');
    return generateStream(app.loom, reply, request.body);
  });
  app.post('/', { config, schema }, (request, reply) => serveCompatGenerate(app.loom, reply, request.body));
  app.get('/info', { config }, async () => info(app.loom));
  app.addHook('onClose', async () => {
    if (app.loom.stack) await removeMergedAdapters(app.loom.stack);
  });
};
