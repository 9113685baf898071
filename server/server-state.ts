import { DEFAULT_MAX_LOGPROBS } from '../kernels/logprobs.js';
import type { ChatContentFormat } from '../model/chat-template.js';
import { serviceUnavailable } from './api-error.js';
import type { ReasoningParserName } from './reasoning.js';
import type { RequestMetrics } from './request-metrics.js';
import { ResponseStore } from './response-store.js';
import type { ServingStack } from './serving-stack.js';
import type { ToolCallParserName } from './tool-parsers/parsers.js';

export type ServerPhase = 'starting' | 'serving' | 'draining' | 'closing';

export interface ServerSettings {
  /** /v1/models gives ids where it would give server paths (--hide-adapter-paths). */
  hideAdapterPaths: boolean;
  /** One info line per finished generation (off with --disable-log-requests). */
  logRequests: boolean;
  /** usage.prompt_tokens_details gives {cached_tokens} (--enable-prompt-tokens-details). */
  promptTokensDetails: boolean;
  /** Most top tokens a row may list (--max-logprobs, vLLM's; -1: no cap). */
  maxLogprobs: number;
  /** tool_choice "auto" reads calls with this (--enable-auto-tool-choice --tool-call-parser); null: "auto" is refused. */
  toolCallParser: ToolCallParserName | null;
  /** /v1/responses answers kept in memory (--max-stored-responses); 0: none. */
  maxStoredResponses: number;
  /** --reasoning-parser: a reasoning model's reasoning is read apart from its answer; null: none. */
  reasoningParser: ReasoningParserName | null;
  /** --return-tokens-as-token-ids: return_tokens_as_token_ids's default (vLLM's flag); absent: false. */
  returnTokensAsTokenIds?: boolean;
  /** --response-role: a chat answer's role after a generation prompt; absent: assistant. */
  responseRole?: string;
  /** --trust-request-chat-template: a request's own chat_template is rendered; absent: refused. */
  trustRequestChatTemplate?: boolean;
  /** --default-chat-template-kwargs: template variables every chat request gets unless it sets them. */
  defaultChatTemplateKwargs?: Readonly<Record<string, unknown>>;
  /** --enable-force-include-usage: every stream ends with its usage, asked or not. */
  forceIncludeUsage?: boolean;
  /** --exclude-tools-when-tool-choice-none: tool_choice "none" keeps the tools out of the prompt. */
  excludeToolsWhenToolChoiceNone?: boolean;
  /** --chat-template-content-format: how message content reaches the template; absent: auto. */
  chatTemplateContentFormat?: ChatContentFormat;
  /** --watermark-gamma / --watermark-delta: LoRAX's watermark when a request asks for it; absent: TGI's 0.5 and 2. */
  watermark?: { gamma: number; delta: number };
}

/**
 * The app's lifecycle: 'starting' until the serving stack is attached (main listens first so
 * health probes see 503 instead of a refused connection while weights load), 'serving', then
 * 'draining' from the first shutdown signal (no new work, in-flight requests run on), then
 * 'closing' (whatever still runs is ended). It also tracks every request in flight, streaming
 * or not, which the HTTP server cannot end by itself: draining waits for them, closing ends them.
 */
export class ServerState {
  private currentPhase: ServerPhase = 'starting';
  private currentStack: ServingStack | null = null;
  private readonly inFlight = new Set<() => void>();
  private readonly idleWaiters = new Set<() => void>();
  private closed = false;

  /**
   * @param maxN the most choices (`n`) one request may ask for (--max-n).
   * @param requestMetrics times every request the routes submit (null: none are recorded).
   * @param settings what the API shows of the server, and what it logs.
   */
  constructor(
    readonly maxN: number,
    readonly requestMetrics: RequestMetrics | null = null,
    readonly settings: ServerSettings = {
      hideAdapterPaths: false,
      logRequests: false,
      promptTokensDetails: false,
      maxLogprobs: DEFAULT_MAX_LOGPROBS,
      toolCallParser: null,
      maxStoredResponses: 0,
      reasoningParser: null,
    },
  ) {
    this.responses = settings.maxStoredResponses > 0 ? new ResponseStore(settings.maxStoredResponses) : null;
  }

  /** Stored /v1/responses answers (--max-stored-responses), or null when none are kept. */
  readonly responses: ResponseStore | null;

  get phase(): ServerPhase {
    return this.currentPhase;
  }

  /** Draining or closing: answers carry `Connection: close` and new work is refused. */
  get isShuttingDown(): boolean {
    return this.currentPhase === 'draining' || this.currentPhase === 'closing';
  }

  /** The stack, for tests and metrics; null while starting. */
  get stack(): ServingStack | null {
    return this.currentStack;
  }

  attach(stack: ServingStack): void {
    if (this.currentPhase !== 'starting') throw new Error(`cannot attach a stack while ${this.currentPhase}`);
    this.currentStack = stack;
    this.currentPhase = 'serving';
    const metrics = this.requestMetrics;
    if (metrics) stack.scheduler.subscribe?.((event) => metrics.observe(stack.modelName, event));
  }

  /** The stack a request may use, or a 503 that says why there is none. */
  requireStack(): ServingStack {
    if (this.isShuttingDown) throw serviceUnavailable('server_shutting_down', 'The server is shutting down.');
    if (!this.currentStack)
      throw serviceUnavailable('server_starting', 'The server is still loading the model.', 5);
    return this.currentStack;
  }

  /**
   * Registers a request in flight with its `end` (aborts its generation so its response ends with
   * a shutdown error); returns the function that unregisters it once its response is done.
   */
  track(end: () => void): () => void {
    this.inFlight.add(end);
    return () => {
      this.inFlight.delete(end);
      if (this.inFlight.size === 0) for (const wake of [...this.idleWaiters]) wake();
    };
  }

  get numInFlight(): number {
    return this.inFlight.size;
  }

  /** Resolves once no request is in flight (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.idleWaiters.delete(wake);
        resolve();
      };
      this.idleWaiters.add(wake);
    });
  }

  /** Stops admitting new work; requests in flight go on. /health answers 503 "draining". */
  beginDraining(): void {
    if (this.currentPhase !== 'closing') this.currentPhase = 'draining';
  }

  /** Stops admitting and ends every request in flight (each `end` aborts its generation). */
  beginClosing(): void {
    this.currentPhase = 'closing';
    for (const end of [...this.inFlight]) end();
  }

  /** Closes the stack once, if one was attached. */
  async close(): Promise<void> {
    this.currentPhase = 'closing';
    if (this.closed) return;
    this.closed = true;
    await this.currentStack?.close();
  }
}
