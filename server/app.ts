import type { Server } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { Registry } from 'prom-client';
import { DEFAULT_MAX_LOGPROBS } from '../kernels/logprobs.js';
import type { ChatContentFormat } from '../model/chat-template.js';
import { ApiError } from './api-error.js';
import { installApiKey } from './api-key.js';
import { clientErrorHandler } from './client-errors.js';
import { installCors } from './cors.js';
import { installErrorHandlers } from './error-handler.js';
import type { ReasoningParserName } from './reasoning.js';
import { randomHex } from './request-id.js';
import { limitBody, maxBodyBytes } from './request-limits.js';
import { installRequestLog } from './request-log.js';
import { RequestMetrics } from './request-metrics.js';
import { chatCompletionsRoute } from './routes/chat-completions.js';
import { completionsRoute } from './routes/completions.js';
import { devEndpointsRoute } from './routes/dev-endpoints.js';
import { healthRoute } from './routes/health.js';
import { invocationsRoute } from './routes/invocations.js';
import { loraAdaptersRoute } from './routes/lora-adapters.js';
import { messagesRoute } from './routes/messages.js';
import { installMetrics } from './routes/metrics.js';
import { modelsRoute } from './routes/models.js';
import { responsesRoute } from './routes/responses.js';
import { serverInfoRoute } from './routes/server-info.js';
import { textGenerationRoute } from './routes/text-generation.js';
import { tokenizeRoute, tokenizerInfoRoute } from './routes/tokenize.js';
import { ServerState } from './server-state.js';
import type { ServingStack } from './serving-stack.js';
import { startStatsLog } from './stats-log.js';
import type { ToolCallParserName } from './tool-parsers/parsers.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Lifecycle, the serving stack once attached, open streams. */
    loom: ServerState;
  }
}

export interface AppOptions {
  /** Attach now (tests); main attaches later with `app.loom.attach` so /health answers while loading. */
  stack?: ServingStack;
  logger?: FastifyServerOptions['logger'];
  /** Largest request body in bytes; default: what the longest prompt the model's context takes needs (maxBodyBytes). */
  bodyLimit?: number;
  /** Largest `n` (choices of one request), --max-n. */
  maxN?: number;
  connections?: Partial<ConnectionLimits>;
  /** --api-key: Bearer auth on everything but the probes, any of the keys (server/api-key.ts); absent: open. */
  apiKey?: string | readonly string[] | null;
  /** --allowed-origins: CORS for these origins ('*': any); absent or empty: CORS off. */
  allowedOrigins?: readonly string[];
  /** /v1/models shows names, not server paths (--hide-adapter-paths; the default without --api-key). */
  hideAdapterPaths?: boolean;
  /** One info line per finished generation (default true; --disable-log-requests). */
  logRequests?: boolean;
  /** usage.prompt_tokens_details gives {cached_tokens} (--enable-prompt-tokens-details; default null). */
  promptTokensDetails?: boolean;
  /** --enable-request-id-headers: every answer carries X-Request-Id (the client's, else a fresh one). */
  requestIdHeaders?: boolean;
  /** --ssl-*: serve HTTPS with this key and certificate (client certificates asked, or required, against ca). */
  https?: {
    key: Buffer;
    cert: Buffer;
    ca?: Buffer;
    requestCert: boolean;
    rejectUnauthorized: boolean;
  } | null;
  /** --max-logprobs: most top tokens a row may list (default vLLM's 20; -1: no cap). */
  maxLogprobs?: number;
  /** --max-stored-responses: /v1/responses answers kept for GET and previous_response_id (default 0: none). */
  maxStoredResponses?: number;
  /** --reasoning-parser: a reasoning model's reasoning read apart from its answer; default none. */
  reasoningParser?: ReasoningParserName | null;
  /** --return-tokens-as-token-ids: return_tokens_as_token_ids's default. */
  returnTokensAsTokenIds?: boolean;
  /** --trust-request-chat-template: a request's own chat_template is rendered; default refused. */
  trustRequestChatTemplate?: boolean;
  /** --default-chat-template-kwargs: template variables every chat request gets unless it sets them. */
  defaultChatTemplateKwargs?: Record<string, unknown>;
  /** --enable-force-include-usage: every stream ends with its usage. */
  forceIncludeUsage?: boolean;
  /** vLLM's development endpoints (VLLM_SERVER_DEV_MODE): /reset_prefix_cache, /is_sleeping; default off. */
  devEndpoints?: boolean;
  /** One log line per request (default); false: --disable-uvicorn-access-log. */
  accessLog?: boolean;
  /** --disable-access-log-for-endpoints: paths whose requests get no log line. */
  accessLogExcludedPaths?: readonly string[];
  /** --enable-tokenizer-info-endpoint: GET /tokenizer_info is served (default not: 404). */
  tokenizerInfoEndpoint?: boolean;
  /** --exclude-tools-when-tool-choice-none: tool_choice "none" keeps the tools out of the prompt. */
  excludeToolsWhenToolChoiceNone?: boolean;
  /** --chat-template-content-format: how message content reaches the template (default auto). */
  chatTemplateContentFormat?: ChatContentFormat;
  /** --watermark-gamma / --watermark-delta: LoRAX's watermark (default TGI's 0.5 and 2). */
  watermark?: { gamma: number; delta: number };
  /** --response-role: a chat answer's role after a generation prompt (default assistant). */
  responseRole?: string;
  /** Reads tool calls out of free text for tool_choice "auto" (--enable-auto-tool-choice --tool-call-parser); default none. */
  toolCallParser?: ToolCallParserName | null;
  /** Period of the stats line while busy, in ms (main: 10 s; --disable-log-stats: null); default none. */
  statsIntervalMs?: number | null;
}

/**
 * Sockets are cut rather than held: slow senders (a byte at a time, "slowloris") and idle
 * keep-alive connections cost a descriptor each, and past the process's descriptor limit
 * every new client gets ECONNRESET.
 */
export interface ConnectionLimits {
  /** A request's headers must arrive within this (408 and close otherwise). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this; a response may take longer. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (--timeout-keep-alive). */
  keepAliveTimeoutMs: number;
  /** Connections past this are refused at accept (--max-connections). */
  maxConnections: number;
  /**
   * A request's line and headers may take this many bytes (--h11-max-incomplete-event-size; the
   * rest is a 431). Node's default: vLLM's 8 MiB would let each connection hold that much unparsed.
   */
  maxHeaderBytes: number;
  /** A request may carry this many headers (--h11-max-header-count, vLLM's default 256; more: 431). */
  maxHeaderCount: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 256,
};
export const DEFAULT_MAX_N = 16;
/** Fastify's own ceiling: the model-derived limit (preParsing) is the one that usually applies. */
const BODY_CEILING_BYTES = 64 * 1024 * 1024;

/**
 * The HTTP app as a plain factory: tests call it and use `inject` or listen on port 0; main
 * owns the process around it. Fastify's own 503-on-close answers in its own JSON shape, so
 * it is off and ServerState answers OpenAI-style instead.
 */
export function buildApp(options: AppOptions = {}): FastifyInstance {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connections };
  // Node checks the header and request deadlines on this period (default 30 s, which would
  // let a slow sender stay three times its deadline).
  const deadlines = {
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    maxHeaderSize: limits.maxHeaderBytes,
  };
  // An HTTPS app is the same app on another kind of server (https.createServer takes the same
  // deadlines): routes, hooks and limits do not change.
  const server = options.https ? { https: { ...options.https, ...deadlines } } : { http: deadlines };
  const app = Fastify({
    ...server,
    logger: options.logger ?? false,
    // server/request-log.ts writes one line per request instead, probes at debug.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: Math.min(options.bodyLimit ?? BODY_CEILING_BYTES, BODY_CEILING_BYTES),
    return503OnClosing: false,
    clientErrorHandler: clientErrorHandler(limits.maxHeaderBytes),
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    ajv: {
      // Wrong types are the client's error to hear about, not to have guessed ("5" is not 5).
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, verbose: true },
    },
  } as FastifyHttpOptions<Server>).withTypeProvider<TypeBoxTypeProvider>();
  app.server.maxConnections = limits.maxConnections;
  // Node drops the headers past maxHeadersCount without a word; one past the limit is kept so
  // that a request over it is seen, and refused, rather than quietly cut (an Authorization lost).
  app.server.maxHeadersCount = limits.maxHeaderCount + 1;

  const registry = new Registry();
  const state = new ServerState(options.maxN ?? DEFAULT_MAX_N, new RequestMetrics(registry), {
    hideAdapterPaths: options.hideAdapterPaths ?? false,
    logRequests: options.logRequests ?? true,
    promptTokensDetails: options.promptTokensDetails ?? false,
    maxLogprobs: options.maxLogprobs ?? DEFAULT_MAX_LOGPROBS,
    toolCallParser: options.toolCallParser ?? null,
    maxStoredResponses: options.maxStoredResponses ?? 0,
    reasoningParser: options.reasoningParser ?? null,
    returnTokensAsTokenIds: options.returnTokensAsTokenIds ?? false,
    trustRequestChatTemplate: options.trustRequestChatTemplate ?? false,
    defaultChatTemplateKwargs: options.defaultChatTemplateKwargs ?? {},
    forceIncludeUsage: options.forceIncludeUsage ?? false,
    excludeToolsWhenToolChoiceNone: options.excludeToolsWhenToolChoiceNone ?? false,
    chatTemplateContentFormat: options.chatTemplateContentFormat ?? 'auto',
    responseRole: options.responseRole ?? 'assistant',
    watermark: options.watermark,
  });
  if (options.stack) state.attach(options.stack);
  app.decorate('loom', state);
  installErrorHandlers(app);
  // Before anything else reads the headers (CORS, the API key).
  app.addHook('onRequest', async (request) => {
    const count = request.raw.rawHeaders.length / 2;
    if (count > limits.maxHeaderCount)
      throw new ApiError(
        431,
        'invalid_request_error',
        'request_header_fields_too_large',
        `the request has more than ${limits.maxHeaderCount} headers, the most this server accepts (--h11-max-header-count)`,
      );
  });
  // vLLM's --disable-uvicorn-access-log: no line per request at all.
  if (options.accessLog ?? true) installRequestLog(app, new Set(options.accessLogExcludedPaths ?? []));
  installMetrics(app, registry);
  // CORS first: a preflight carries no credentials and is answered before auth.
  if (options.allowedOrigins?.length) installCors(app, options.allowedOrigins);
  const apiKeys = typeof options.apiKey === 'string' ? [options.apiKey] : (options.apiKey ?? []);
  if (apiKeys.length > 0) installApiKey(app, apiKeys);

  // New work is refused before its body is read while the model loads or the server drains.
  app.addHook('onRequest', async (request) => {
    // POST /ping is a probe (SageMaker's), answered by its route whatever the phase.
    if (request.method === 'POST' && request.url !== '/ping') state.requireStack();
  });
  app.addHook('preParsing', async (request, _reply, payload) => {
    const stack = state.stack;
    if (!stack) return payload;
    return limitBody(payload, options.bodyLimit ?? maxBodyBytes(stack), request.headers['content-length']);
  });
  if (options.requestIdHeaders)
    app.addHook('onSend', async (request, reply) => {
      const given = request.headers['x-request-id'];
      reply.header('x-request-id', typeof given === 'string' && given !== '' ? given : randomHex());
    });
  // While shutting down, every answer tells the client not to reuse its connection.
  app.addHook('onSend', async (_request, reply) => {
    if (state.isShuttingDown) reply.header('connection', 'close');
  });
  app.addHook('preClose', async () => {
    state.beginClosing();
  });
  // A keep-alive connection whose last response finishes during shutdown would hold the
  // listener open until its keep-alive timeout: close it as soon as it is idle.
  app.addHook('onResponse', async () => {
    if (state.isShuttingDown) setImmediate(() => app.server.closeIdleConnections());
  });
  if (options.statsIntervalMs) {
    const stopStats = startStatsLog(state, registry, app.log, options.statsIntervalMs);
    app.addHook('onClose', async () => stopStats());
  }
  app.addHook('onClose', async () => {
    await state.close();
  });

  app.register(healthRoute);
  app.register(modelsRoute);
  app.register(completionsRoute);
  app.register(chatCompletionsRoute);
  app.register(responsesRoute);
  app.register(messagesRoute);
  app.register(loraAdaptersRoute);
  app.register(serverInfoRoute);
  app.register(tokenizeRoute);
  app.register(textGenerationRoute);
  app.register(invocationsRoute);
  if (options.tokenizerInfoEndpoint) app.register(tokenizerInfoRoute);
  if (options.devEndpoints) app.register(devEndpointsRoute);
  return app;
}
