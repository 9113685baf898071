import {
  type DtypeChoice,
  ENGINE_CHOICES,
  type EngineChoice,
  LORA_MODES,
  type LoraMode,
  ONNX_THREAD_CHOICES,
  type OnnxThreadChoice,
  type QuantizationChoice,
} from '../kernels/engine-factory.js';
import { DEFAULT_MAX_LOGPROBS, LOGPROBS_MODES, type LogprobsMode } from '../kernels/logprobs.js';
import { parsePoolSize } from '../memory/page-pool.js';
import { CHAT_CONTENT_FORMATS, type ChatContentFormat } from '../model/chat-template.js';
import { checkSamplingOverrides, type GenerationConfigSource } from '../model/generation-defaults.js';
import { DEFAULT_STREAM_STALL_TIMEOUT_MS } from '../scheduler/scheduler.js';
import {
  DEFAULT_SCHEDULING_POLICY,
  SCHEDULING_POLICIES,
  type SchedulingPolicyName,
} from '../scheduler/scheduling-policy.js';
import { DEFAULT_WATERMARK } from '../scheduler/watermark.js';
import { DEFAULT_CONNECTION_LIMITS, DEFAULT_MAX_N } from './app.js';
import { CliError } from './cli-error.js';
import { CLI_HELP } from './cli-help.js';
import { REASONING_PARSERS, type ReasoningParserName } from './reasoning.js';
import { TOOL_CALL_PARSERS, type ToolCallParserName } from './tool-parsers/parsers.js';
import {
  ALIASES,
  IGNORED_FLAGS,
  ignoredFlagNotice,
  type LogLevel,
  parseDtype,
  parseLogLevel,
  parseQuantization,
  UNSUPPORTED_FLAGS,
} from './vllm-flags.js';

export { CliError } from './cli-error.js';

/**
 * Long enough for a prefill chunk of hundreds of tokens on a CPU, short enough that every running
 * stream's next token is not held up for long, and that with --onnx-thread main (the step on the
 * server's thread) a request whose bytes arrive during a step is read well within Node's header
 * timeout (10 s).
 */
export const DEFAULT_MAX_STEP_SECONDS = 4;
/** The most --h11-max-incomplete-event-size may allow: the body's own ceiling (app.ts). */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/** One --lora-modules entry. */
export interface LoraModule {
  name: string;
  path: string;
  /** vLLM's JSON form may name the base model the adapter was trained for; it must be the one served. */
  baseModelName?: string;
}

/** Command-line flags, spelled as vLLM spells them where vLLM has the flag. */
export interface CliOptions {
  /** null: serve the embedded synthetic model (and its demo adapters unless --lora-modules is given). */
  model: string | null;
  loraModules: LoraModule[];
  /** --lora-dir: a folder whose sub-directories are adapters, registered by name, new ones on first use. */
  loraDir: string | null;
  /** --lora-root: runtime loads (/v1/load_lora_adapter) may read only below it; null turns them off. */
  loraRoot: string | null;
  /** --max-loras: adapters resident in the pool at once; null sizes it from the pool. */
  maxLoras: number | null;
  /** --max-cpu-loras: adapters kept in host RAM; null means --max-loras. */
  maxCpuLoras: number | null;
  /** --max-lora-rank: larger ranks are refused (nothing is padded to it); null is Loom's default. */
  maxLoraRank: number | null;
  /** --lora-mode: Loom's batched adapters, or the padded / merged baseline the S-LoRA benchmark compares. */
  loraMode: LoraMode;
  servedModelName: string | null;
  /** --served-model-name's further names (vLLM takes several: the first is the one answers give). */
  servedModelAliases: string[];
  host: string;
  port: number;
  /** --uds: serve on this Unix domain socket instead of --host/--port (vLLM's flag). */
  uds: string | null;
  maxModelLen: number | 'auto' | null;
  /** --disable-sliding-window: a sliding-window model's default context is its window (vLLM's flag). */
  disableSlidingWindow: boolean;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** --scheduling-policy: fcfs (separate prefill/decode steps, arrival order) or slora (the default). */
  schedulingPolicy: SchedulingPolicyName;
  /** --max-loras-per-batch: distinct adapters in one step; null follows --max-loras. */
  maxLorasPerBatch: number | null;
  /** --max-queue: waiting sequences beyond which requests are answered 429; null is Loom's default. */
  maxQueue: number | null;
  /** --slo-ttft: seconds; under slora, a request whose first token cannot come in time is refused early. */
  sloTtftSeconds: number | null;
  /** --max-step-time: seconds one engine step should take at most (the token budget shrinks to fit); null: off. */
  maxStepSeconds: number | null;
  engine: EngineChoice;
  /** --onnx-thread: the onnx engine's steps on a worker thread (default) or on the server's. */
  onnxThread: OnnxThreadChoice;
  /** --cache-packed-weights: the onnx engine's packed session kept on disk for the next start. */
  cachePackedWeights: boolean;
  dtype: DtypeChoice;
  /** --quantization / -q: int8 or int4 base weights made at load (onnx, webgpu); null: none. */
  quantization: QuantizationChoice | null;
  poolSize: string;
  chatTemplate: string | null;
  /** --tokenizer: the tokenizer's directory when it is not the model's; null: the model's. */
  tokenizer: string | null;
  /** --hf-config-path: the folder config.json is read from when it is not the model's (vLLM's flag). */
  hfConfigPath: string | null;
  /** --generation-config: where the sampling defaults come from (auto: the model's generation_config.json; vllm: none; a folder). */
  generationConfig: GenerationConfigSource;
  /** --override-generation-config: sampling defaults over those (vLLM's JSON object). */
  overrideGenerationConfig: Record<string, unknown>;
  seed: number | null;
  /** Seconds in-flight requests get to finish after SIGTERM/SIGINT before they are ended. */
  shutdownTimeoutSeconds: number;
  /** Seconds a stream whose client stopped reading stays paused before it is aborted. */
  streamStallTimeoutSeconds: number;
  maxN: number;
  /** --max-logprobs: most top tokens a row may list; -1: no cap. */
  maxLogprobs: number;
  /** --logprobs-mode: what sampled tokens' log-probabilities report (vLLM's values). */
  logprobsMode: LogprobsMode;
  /** --max-stored-responses: /v1/responses kept in memory for GET and previous_response_id (0: none). */
  maxStoredResponses: number;
  /** --reasoning-parser: a reasoning model's reasoning read apart from its answer (chat's `reasoning`). */
  reasoningParser: ReasoningParserName | null;
  maxConnections: number;
  timeoutKeepAliveSeconds: number;
  /** --h11-max-incomplete-event-size: bytes a request's line and headers may take. */
  maxHeaderBytes: number;
  /** --h11-max-header-count: headers a request may carry. */
  maxHeaderCount: number;
  /**
   * --api-key (one key or several, as vLLM's takes them), or $LOOM_API_KEY / $VLLM_API_KEY:
   * Bearer auth on everything but the probes, any of the keys accepted; empty: open.
   */
  apiKeys: string[];
  /** --ssl-keyfile / --ssl-certfile / --ssl-ca-certs / --ssl-cert-reqs: serve HTTPS (vLLM's flags); null: plain HTTP. */
  tls: TlsOptions | null;
  /** --allowed-origins: origins CORS allows ('*' for any); empty: CORS off. */
  allowedOrigins: string[];
  /** pino level: --log-level, else $LOG_LEVEL, else info. */
  logLevel: LogLevel;
  /** One info line per finished generation (--disable-log-requests turns it off). */
  logRequests: boolean;
  /** The periodic stats line while busy (--disable-log-stats turns it off). */
  logStats: boolean;
  /** --gpu-memory-utilization as given (it sets poolSize); main logs what it became. */
  gpuMemoryUtilization: number | null;
  /** Automatic prefix caching (vLLM's default; --no-enable-prefix-caching turns it off). */
  enablePrefixCaching: boolean;
  /** --enable-prompt-tokens-details: usage.prompt_tokens_details gives the prompt's cached tokens. */
  enablePromptTokensDetails: boolean;
  /** --enable-request-id-headers: every answer carries X-Request-Id. */
  enableRequestIdHeaders: boolean;
  /** --return-tokens-as-token-ids: log-probability tokens written token_id:<id> unless a request says otherwise. */
  returnTokensAsTokenIds: boolean;
  /** --trust-request-chat-template: a request's own chat_template is rendered (vLLM's flag; else refused). */
  trustRequestChatTemplate: boolean;
  /** --default-chat-template-kwargs: template variables every chat request gets unless it sets them. */
  defaultChatTemplateKwargs: Record<string, unknown>;
  /** --hf-overrides: config.json's keys replaced by these (vLLM's flag); --rope-scaling/--rope-theta merged in. */
  hfOverrides: Record<string, unknown>;
  /** --rope-scaling, --rope-theta: config.json's rope keys, over --hf-overrides's (vLLM's older flags). */
  ropeOverrides: Record<string, unknown>;
  /** --kv-cache-memory-bytes: the pool's size in bytes (vLLM's KV cache size; Loom's pool holds adapters too). */
  kvCacheMemoryBytes: number | null;
  /** --enable-force-include-usage: every stream ends with its usage, asked or not. */
  forceIncludeUsage: boolean;
  /** vLLM's development endpoints, on when VLLM_SERVER_DEV_MODE is a nonzero integer (vLLM's variable). */
  devEndpoints: boolean;
  /** One log line per request; off with --disable-uvicorn-access-log (vLLM's flag). */
  accessLog: boolean;
  /** --disable-access-log-for-endpoints: paths whose requests get no log line (vLLM's flag). */
  accessLogExcludedPaths: string[];
  /** --enable-tokenizer-info-endpoint: GET /tokenizer_info is served (vLLM's flag). */
  enableTokenizerInfoEndpoint: boolean;
  /** --exclude-tools-when-tool-choice-none: tool_choice "none" keeps the tools out of the prompt. */
  excludeToolsWhenToolChoiceNone: boolean;
  /** --chat-template-content-format: message content as a string, OpenAI's parts, or as the template reads it. */
  chatTemplateContentFormat: ChatContentFormat;
  /** --response-role: the role of a chat answer that follows a generation prompt (default assistant). */
  responseRole: string;
  /** --watermark-gamma: the green share of the vocabulary when a /generate request asks for LoRAX's watermark. */
  watermarkGamma: number;
  /** --watermark-delta: what a green token's logit gets added. */
  watermarkDelta: number;
  /** --enable-auto-tool-choice: tool_choice "auto" is served (it needs --tool-call-parser). */
  enableAutoToolChoice: boolean;
  /** --tool-call-parser: the model's own tool-call format, read out of its text for "auto". */
  toolCallParser: ToolCallParserName | null;
  /** --hide-adapter-paths, or an --api-key-less server: /v1/models shows no adapter paths. */
  hideAdapterPaths: boolean;
  /** Lines main logs at start: flags accepted for vLLM compatibility that change nothing. */
  notices: string[];
}

export type CliCommand =
  | { kind: 'serve'; options: CliOptions }
  | { kind: 'help'; text: string }
  | { kind: 'version' };

type Setter = (options: CliOptions, value: string, flag: string) => void;

/** Flags that take a value; --lora-modules and --served-model-name also take several (vLLM's nargs='+'). */
const VALUE_FLAGS: Record<string, Setter> = {
  '--model': (o, v) => {
    o.model = v;
  },
  '--tool-call-parser': (o, v, f) => {
    if (!(TOOL_CALL_PARSERS as readonly string[]).includes(v))
      throw new CliError(`${f} ${v}: Loom reads these tool-call formats: ${TOOL_CALL_PARSERS.join(', ')}`);
    o.toolCallParser = v as ToolCallParserName;
  },
  '--reasoning-parser': (o, v, f) => {
    o.reasoningParser = reasoningParser(o, v, f);
  },
  '--structured-outputs-config': (o, v, f) => {
    for (const [key, value] of Object.entries(jsonObject(v, f, '{"backend": "xgrammar"}')))
      structuredOutputsSetting(o, key, value, f);
  },
  '--structured-outputs-config.backend': (o, v, f) => {
    structuredOutputsSetting(o, 'backend', v, f);
  },
  '--lora-modules': (o, v, f) => {
    o.loraModules.push(parseLoraModule(v, f));
  },
  '--lora-dir': (o, v) => {
    o.loraDir = v;
  },
  '--lora-root': (o, v) => {
    o.loraRoot = v;
  },
  '--max-loras': (o, v, f) => {
    o.maxLoras = integer(v, f, 1);
  },
  '--max-cpu-loras': (o, v, f) => {
    o.maxCpuLoras = integer(v, f, 1);
  },
  '--max-lora-rank': (o, v, f) => {
    o.maxLoraRank = integer(v, f, 1);
  },
  '--lora-mode': (o, v, f) => {
    o.loraMode = oneOf(v, f, LORA_MODES);
  },
  '--served-model-name': (o, v, f) => {
    if (o.servedModelName === null) o.servedModelName = v;
    else if (v === o.servedModelName || o.servedModelAliases.includes(v))
      throw new CliError(`${f}: "${v}" is given twice`);
    else o.servedModelAliases.push(v);
  },
  '--host': (o, v) => {
    o.host = v;
  },
  '--port': (o, v, f) => {
    o.port = integer(v, f, 0, 65535);
  },
  '--uds': (o, v) => {
    o.uds = v;
  },
  '--max-model-len': (o, v, f) => {
    // vLLM's -1 and auto: the longest context the pool holds.
    o.maxModelLen =
      v.trim() === '-1' || v.trim().toLowerCase() === 'auto'
        ? 'auto'
        : integer(humanReadableInteger(v, f), f, 1);
  },
  '--max-num-seqs': (o, v, f) => {
    o.maxNumSeqs = integer(v, f, 1);
  },
  '--max-num-batched-tokens': (o, v, f) => {
    o.maxNumBatchedTokens = integer(humanReadableInteger(v, f), f, 1);
  },
  '--scheduling-policy': (o, v, f) => {
    o.schedulingPolicy = oneOf(v, f, SCHEDULING_POLICIES);
  },
  '--max-loras-per-batch': (o, v, f) => {
    o.maxLorasPerBatch = integer(v, f, 1);
  },
  '--max-queue': (o, v, f) => {
    o.maxQueue = integer(v, f, 1);
  },
  '--slo-ttft': (o, v, f) => {
    const seconds = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v.trim()) || !(seconds > 0))
      throw new CliError(`${f}: expected a positive number of seconds, got "${v}"`);
    o.sloTtftSeconds = seconds;
  },
  '--max-step-time': (o, v, f) => {
    const seconds = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v.trim()))
      throw new CliError(`${f}: expected a number of seconds (0 turns the bound off), got "${v}"`);
    o.maxStepSeconds = seconds > 0 ? seconds : null;
  },
  '--engine': (o, v, f) => {
    o.engine = oneOf(v, f, ENGINE_CHOICES);
  },
  '--onnx-thread': (o, v, f) => {
    o.onnxThread = oneOf(v, f, ONNX_THREAD_CHOICES);
  },
  '--dtype': (o, v, f) => {
    o.dtype = parseDtype(v, f);
  },
  '--quantization': (o, v, f) => {
    o.quantization = parseQuantization(v, f);
  },
  '--gpu-memory-utilization': (o, v, f) => {
    const fraction = Number(v);
    if (!/^\s*[0-9.]+\s*$/.test(v) || !(fraction > 0 && fraction <= 1))
      throw new CliError(`${f}: expected a fraction in (0, 1], got "${v}"`);
    o.gpuMemoryUtilization = fraction;
  },
  '--ssl-keyfile': (o, v) => {
    tlsOf(o).keyFile = v;
  },
  '--ssl-certfile': (o, v) => {
    tlsOf(o).certFile = v;
  },
  '--ssl-ca-certs': (o, v) => {
    tlsOf(o).caFile = v;
  },
  '--ssl-cert-reqs': (o, v, f) => {
    if (!['0', '1', '2'].includes(v.trim()))
      throw new CliError(`${f}: expected 0 (none), 1 (optional) or 2 (required), got "${v}"`);
    tlsOf(o).certReqs = Number(v.trim()) as 0 | 1 | 2;
  },
  '--disable-access-log-for-endpoints': (o, v, f) => {
    const paths = v
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    const bad = paths.find((p) => !p.startsWith('/'));
    if (bad !== undefined)
      throw new CliError(`${f}: "${bad}" is not a path (paths start with /, e.g. /health,/metrics)`);
    o.accessLogExcludedPaths = paths;
  },
  '--ssl-ciphers': (o, v) => {
    tlsOf(o).ciphers = v;
  },
  '--api-key': (o, v, f) => {
    o.apiKeys.push(apiKey(v, f));
  },
  '--allowed-origins': (o, v, f) => {
    o.allowedOrigins = parseAllowedOrigins(v, f);
  },
  '--log-level': (o, v, f) => {
    o.logLevel = parseLogLevel(v, f);
  },
  '--pool-size': (o, v, f) => {
    try {
      parsePoolSize(v, 1);
    } catch (error) {
      throw new CliError(`${f}: ${(error as Error).message}`);
    }
    o.poolSize = v;
  },
  '--chat-template': (o, v) => {
    o.chatTemplate = v;
  },
  '--tokenizer': (o, v) => {
    o.tokenizer = v;
  },
  '--hf-config-path': (o, v) => {
    o.hfConfigPath = v;
  },
  '--generation-config': (o, v) => {
    o.generationConfig = v;
  },
  '--default-chat-template-kwargs': (o, v, f) => {
    const kwargs = jsonObject(v, f, '{"enable_thinking": false}');
    if ('chat_template' in kwargs)
      throw new CliError(`${f}: a chat_template here is not a template variable; use --chat-template FILE`);
    o.defaultChatTemplateKwargs = kwargs;
  },
  '--hf-overrides': (o, v, f) => {
    o.hfOverrides = jsonObject(v, f, '{"max_position_embeddings": 8192}');
  },
  // vLLM's older spellings of two overrides; as in vLLM, they win over --hf-overrides's own.
  '--rope-scaling': (o, v, f) => {
    o.ropeOverrides.rope_scaling = jsonObject(v, f, '{"rope_type": "yarn", "factor": 4.0}');
  },
  '--rope-theta': (o, v, f) => {
    const theta = Number(v);
    if (!Number.isFinite(theta) || theta <= 0)
      throw new CliError(`${f}: expected a positive number, got "${v}"`);
    o.ropeOverrides.rope_theta = theta;
  },
  // LoRAX's launcher flags (TGI's): its watermark's green share and bias.
  '--watermark-gamma': (o, v, f) => {
    const gamma = Number(v);
    if (v.trim() === '' || !(gamma > 0 && gamma <= 1))
      throw new CliError(`${f}: expected a fraction in (0, 1], got "${v}"`);
    o.watermarkGamma = gamma;
  },
  '--watermark-delta': (o, v, f) => {
    const delta = Number(v);
    if (v.trim() === '' || !Number.isFinite(delta)) throw new CliError(`${f}: expected a number, got "${v}"`);
    o.watermarkDelta = delta;
  },
  '--kv-cache-memory-bytes': (o, v, f) => {
    o.kvCacheMemoryBytes = integer(humanReadableInteger(v, f), f, 1);
  },
  '--chat-template-content-format': (o, v, f) => {
    o.chatTemplateContentFormat = oneOf(v, f, CHAT_CONTENT_FORMATS);
  },
  '--override-generation-config': (o, v, f) => {
    const overrides = jsonObject(v, f, '{"temperature": 0.5}');
    const why = checkSamplingOverrides(overrides);
    if (why) throw new CliError(`${f}: ${why}`);
    o.overrideGenerationConfig = overrides;
  },
  '--seed': (o, v, f) => {
    o.seed = integer(v, f, 0, 2 ** 32 - 1);
  },
  '--shutdown-timeout': (o, v, f) => {
    o.shutdownTimeoutSeconds = integer(v, f, 0, 24 * 3600);
  },
  '--stream-stall-timeout': (o, v, f) => {
    o.streamStallTimeoutSeconds = integer(v, f, 1, 24 * 3600);
  },
  '--max-n': (o, v, f) => {
    o.maxN = integer(v, f, 1);
  },
  '--max-logprobs': (o, v, f) => {
    o.maxLogprobs = v.trim() === '-1' ? -1 : integer(v, f, 0);
  },
  '--response-role': (o, v, f) => {
    if (v.trim() === '') throw new CliError(`${f}: expected a role name`);
    o.responseRole = v;
  },
  '--logprobs-mode': (o, v, f) => {
    o.logprobsMode = oneOf(v, f, LOGPROBS_MODES);
  },
  '--max-stored-responses': (o, v, f) => {
    o.maxStoredResponses = integer(v, f, 0);
  },
  '--max-connections': (o, v, f) => {
    o.maxConnections = integer(v, f, 1);
  },
  '--timeout-keep-alive': (o, v, f) => {
    o.timeoutKeepAliveSeconds = integer(v, f, 1, 3600);
  },
  // vLLM's names for uvicorn's h11 parser limits; Node's parser has the same two.
  '--h11-max-incomplete-event-size': (o, v, f) => {
    o.maxHeaderBytes = integer(v, f, 1024, MAX_HEADER_BYTES);
  },
  '--h11-max-header-count': (o, v, f) => {
    o.maxHeaderCount = integer(v, f, 1, 100_000);
  },
};

/** Flags that take no value. */
const SWITCHES: Record<string, (options: CliOptions) => void> = {
  '--disable-log-requests': (o) => {
    o.logRequests = false;
  },
  '--enable-log-requests': (o) => {
    o.logRequests = true;
  },
  // vLLM's BooleanOptionalAction spelling of --disable-log-requests.
  '--no-enable-log-requests': (o) => {
    o.logRequests = false;
  },
  '--disable-log-stats': (o) => {
    o.logStats = false;
  },
  '--hide-adapter-paths': (o) => {
    o.hideAdapterPaths = true;
  },
  '--enable-prefix-caching': (o) => {
    o.enablePrefixCaching = true;
  },
  '--no-enable-prefix-caching': (o) => {
    o.enablePrefixCaching = false;
  },
  '--enable-prompt-tokens-details': (o) => {
    o.enablePromptTokensDetails = true;
  },
  '--enable-request-id-headers': (o) => {
    o.enableRequestIdHeaders = true;
  },
  '--return-tokens-as-token-ids': (o) => {
    o.returnTokensAsTokenIds = true;
  },
  '--trust-request-chat-template': (o) => {
    o.trustRequestChatTemplate = true;
  },
  '--enable-force-include-usage': (o) => {
    o.forceIncludeUsage = true;
  },
  '--cache-packed-weights': (o) => {
    o.cachePackedWeights = true;
  },
  '--disable-sliding-window': (o) => {
    o.disableSlidingWindow = true;
  },
  '--disable-uvicorn-access-log': (o) => {
    o.accessLog = false;
  },
  '--enable-ssl-refresh': (o) => {
    tlsOf(o).refresh = true;
  },
  '--enable-tokenizer-info-endpoint': (o) => {
    o.enableTokenizerInfoEndpoint = true;
  },
  '--exclude-tools-when-tool-choice-none': (o) => {
    o.excludeToolsWhenToolChoiceNone = true;
  },
  '--enable-auto-tool-choice': (o) => {
    o.enableAutoToolChoice = true;
  },
  '--enable-lora': (o) => {
    o.notices.push('--enable-lora: LoRA is always on in Loom; the flag changes nothing');
  },
};

function apiKey(value: string, flag: string): string {
  if (!value.trim()) throw new CliError(`${flag}: the key must not be empty`);
  return value;
}

function reasoningParser(o: CliOptions, value: string, flag: string): ReasoningParserName {
  if (!(REASONING_PARSERS as readonly string[]).includes(value))
    throw new CliError(
      `${flag} ${value}: Loom reads these reasoning formats: ${REASONING_PARSERS.join(', ')}`,
    );
  if (o.reasoningParser !== null && o.reasoningParser !== value)
    throw new CliError(`${flag} ${value}: the reasoning parser is already ${o.reasoningParser}`);
  return value as ReasoningParserName;
}

/** vLLM's structured-output backends: Loom's grammar engine stands in for each. */
const STRUCTURED_OUTPUT_BACKENDS = ['auto', 'xgrammar', 'guidance', 'outlines', 'lm-format-enforcer'];

/**
 * One key of vLLM's --structured-outputs-config: the backend (Loom's own grammar engine serves
 * every one, as a log line says), the reasoning parser (as --reasoning-parser), and the switches
 * at their defaults; a switch turned on that Loom does not have is refused by name.
 */
function structuredOutputsSetting(o: CliOptions, key: string, value: unknown, flag: string): void {
  const off = (why: string) => {
    if (value !== false)
      throw new CliError(`${flag}: ${key} ${JSON.stringify(value)} is not supported (${why})`);
  };
  switch (key) {
    case 'backend':
      if (typeof value !== 'string' || !STRUCTURED_OUTPUT_BACKENDS.includes(value))
        throw new CliError(`${flag}: backend must be one of ${STRUCTURED_OUTPUT_BACKENDS.join(', ')}`);
      o.notices.push(
        `${flag} backend ${value}: ignored, Loom's structured output has its own grammar engine`,
      );
      return;
    case 'reasoning_parser':
      if (typeof value !== 'string') throw new CliError(`${flag}: reasoning_parser must be a string`);
      o.reasoningParser = reasoningParser(o, value, `${flag} reasoning_parser`);
      return;
    case 'disable_fallback':
      if (typeof value !== 'boolean') throw new CliError(`${flag}: disable_fallback must be true or false`);
      o.notices.push(`${flag} disable_fallback: ignored, Loom has one grammar engine and falls back to none`);
      return;
    case 'disable_any_whitespace':
      off('set it per request: structured_outputs.disable_any_whitespace');
      return;
    case 'disable_additional_properties':
      off("Loom reads a schema's additionalProperties as JSON Schema does");
      return;
    case 'enable_in_reasoning':
      off("Loom's grammars start after the reasoning");
      return;
    default:
      throw new CliError(`${flag}: unknown key ${key}`);
  }
}

/** A flag's JSON object value, or a CliError that shows `example`. */
function jsonObject(value: string, flag: string, example: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new CliError(`${flag}: not JSON: ${value}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new CliError(`${flag}: expected a JSON object such as '${example}'`);
  return parsed as Record<string, unknown>;
}

/** vLLM's JSON list (["https://a.example"]) or a comma-separated list. */
export function parseAllowedOrigins(value: string, flag = '--allowed-origins'): string[] {
  let origins: unknown;
  if (value.trim().startsWith('[')) {
    try {
      origins = JSON.parse(value);
    } catch {
      throw new CliError(`${flag}: ${value} is not valid JSON`);
    }
  } else {
    origins = value.split(',').map((o) => o.trim());
  }
  if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string' || !o))
    throw new CliError(`${flag}: expected a list of origins, got ${value}`);
  for (const origin of origins as string[]) {
    if (origin !== '*' && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(origin))
      throw new CliError(`${flag}: "${origin}" is not an origin (scheme://host[:port], no path) or *`);
  }
  return origins as string[];
}

/** `value` if it is one of `choices`, else a CliError naming them. */
function oneOf<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value))
    throw new CliError(`${flag}: "${value}" is not one of ${choices.join(', ')}`);
  return value as T;
}

/**
 * vLLM's human-readable token counts (its --max-model-len and --max-num-batched-tokens take them):
 * k, m, g, t are powers of ten and may follow a decimal ("25.6k" = 25,600); K, M, G, T are powers
 * of two and follow whole numbers only ("32K" = 32,768). Anything else is returned as given.
 */
function humanReadableInteger(value: string, flag: string): string {
  const match = /^(\d+(?:\.\d+)?)([kmgtKMGT])$/.exec(value.trim());
  if (!match) return value;
  const [, number, suffix] = match;
  const decimal: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
  if (suffix in decimal) return String(Math.trunc(Number(number) * decimal[suffix]));
  if (number.includes('.'))
    throw new CliError(
      `${flag}: decimals are not allowed with binary suffixes like ${suffix}; did you mean ${number}${suffix.toLowerCase()}?`,
    );
  return String(Number(number) * { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[suffix]!);
}

function integer(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max)
    throw new CliError(`${flag}: expected an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

/** NAME=DIR, or vLLM's JSON form {"name": "...", "path": "...", "base_model_name": "..."}. */
export function parseLoraModule(value: string, flag = '--lora-modules'): LoraModule {
  if (value.trim().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new CliError(`${flag}: ${value} is not valid JSON`);
    }
    const { name, path, base_model_name: baseModelName, ...rest } = (parsed ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || !name || typeof path !== 'string' || !path)
      throw new CliError(`${flag}: JSON form needs string "name" and "path", got ${value}`);
    const unknown = Object.keys(rest);
    if (unknown.length) throw new CliError(`${flag}: unknown field "${unknown[0]}" in ${value}`);
    if (baseModelName === undefined || baseModelName === null) return { name, path };
    if (typeof baseModelName !== 'string')
      throw new CliError(`${flag}: "base_model_name" must be a string, got ${value}`);
    return { name, path, baseModelName };
  }
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new CliError(`${flag}: expected NAME=DIR, got "${value}"`);
  return { name: value.slice(0, eq), path: value.slice(eq + 1) };
}

/**
 * $LOOM_API_KEY, or vLLM's $VLLM_API_KEY: a deployment written for vLLM keeps its key (read by
 * no one, it would leave the server open without a word). Both set and different is an error.
 */
/** VLLM_SERVER_DEV_MODE as vLLM reads it: bool(int(value)), unset being 0. */
function devModeOf(env: NodeJS.ProcessEnv): boolean {
  const value = env.VLLM_SERVER_DEV_MODE;
  if (value === undefined || value.trim() === '') return false;
  if (!/^\s*[+-]?\d+\s*$/.test(value))
    throw new CliError(`VLLM_SERVER_DEV_MODE: expected an integer, got "${value}"`);
  return Number(value) !== 0;
}

function apiKeysOf(env: NodeJS.ProcessEnv): string[] {
  const loom = env.LOOM_API_KEY || null;
  const vllm = env.VLLM_API_KEY || null;
  if (loom && vllm && loom !== vllm)
    throw new CliError('LOOM_API_KEY and VLLM_API_KEY are both set, to different keys: set one');
  const key = loom ?? vllm;
  return key ? [key] : [];
}

export function defaultCliOptions(env: NodeJS.ProcessEnv = {}): CliOptions {
  return {
    model: null,
    loraModules: [],
    loraDir: null,
    loraRoot: null,
    maxLoras: null,
    maxCpuLoras: null,
    maxLoraRank: null,
    loraMode: 'batched',
    servedModelName: null,
    servedModelAliases: [],
    host: '127.0.0.1',
    port: env.PORT ? integer(env.PORT, 'PORT', 0, 65535) : 8000,
    uds: null,
    maxModelLen: null,
    disableSlidingWindow: false,
    maxNumSeqs: 64,
    maxNumBatchedTokens: 2048,
    schedulingPolicy: DEFAULT_SCHEDULING_POLICY,
    maxLorasPerBatch: null,
    maxQueue: null,
    sloTtftSeconds: null,
    maxStepSeconds: DEFAULT_MAX_STEP_SECONDS,
    engine: 'auto',
    onnxThread: 'worker',
    cachePackedWeights: false,
    dtype: 'auto',
    quantization: null,
    poolSize: '0.25',
    chatTemplate: null,
    tokenizer: null,
    hfConfigPath: null,
    generationConfig: 'auto',
    overrideGenerationConfig: {},
    seed: null,
    shutdownTimeoutSeconds: 30,
    streamStallTimeoutSeconds: DEFAULT_STREAM_STALL_TIMEOUT_MS / 1000,
    maxN: DEFAULT_MAX_N,
    maxLogprobs: DEFAULT_MAX_LOGPROBS,
    logprobsMode: 'raw_logprobs',
    maxStoredResponses: 0,
    reasoningParser: null,
    maxConnections: DEFAULT_CONNECTION_LIMITS.maxConnections,
    timeoutKeepAliveSeconds: DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs / 1000,
    maxHeaderBytes: DEFAULT_CONNECTION_LIMITS.maxHeaderBytes,
    maxHeaderCount: DEFAULT_CONNECTION_LIMITS.maxHeaderCount,
    apiKeys: apiKeysOf(env),
    tls: null,
    allowedOrigins: [],
    logLevel: env.LOG_LEVEL ? parseLogLevel(env.LOG_LEVEL, 'LOG_LEVEL') : 'info',
    logRequests: true,
    logStats: true,
    gpuMemoryUtilization: null,
    hideAdapterPaths: false,
    enablePrefixCaching: true,
    enablePromptTokensDetails: false,
    enableRequestIdHeaders: false,
    returnTokensAsTokenIds: false,
    trustRequestChatTemplate: false,
    defaultChatTemplateKwargs: {},
    hfOverrides: {},
    ropeOverrides: {},
    kvCacheMemoryBytes: null,
    forceIncludeUsage: false,
    enableTokenizerInfoEndpoint: false,
    accessLog: true,
    devEndpoints: devModeOf(env),
    accessLogExcludedPaths: [],
    excludeToolsWhenToolChoiceNone: false,
    chatTemplateContentFormat: 'auto',
    responseRole: 'assistant',
    watermarkGamma: DEFAULT_WATERMARK.gamma,
    watermarkDelta: DEFAULT_WATERMARK.delta,
    enableAutoToolChoice: false,
    toolCallParser: null,
    notices: [],
  };
}

/** vLLM's (uvicorn's) TLS flags: files are read by main, at start-up. */
export interface TlsOptions {
  keyFile: string | null;
  certFile: string | null;
  caFile: string | null;
  /** Python's ssl.CERT_NONE (0), CERT_OPTIONAL (1) or CERT_REQUIRED (2): clients' certificates. */
  certReqs: 0 | 1 | 2;
  /** --ssl-ciphers: the OpenSSL cipher list (Python's set_ciphers takes the same); null: Node's default. */
  ciphers: string | null;
  /** --enable-ssl-refresh: the files are read again when they change, for new connections. */
  refresh: boolean;
}

function tlsOf(o: CliOptions): TlsOptions {
  o.tls ??= { keyFile: null, certFile: null, caFile: null, certReqs: 0, ciphers: null, refresh: false };
  return o.tls;
}

/** Parses argv (without node and the script); throws CliError on anything it does not know. */
/** Whether `flag` is a switch (a flag that takes no value), Loom's own or an ignored vLLM one. */
export function isSwitch(flag: string): boolean {
  return flag in SWITCHES || IGNORED_FLAGS[flag]?.takesValue === false;
}

export function parseCliOptions(argv: readonly string[], env: NodeJS.ProcessEnv = {}): CliCommand {
  const options = defaultCliOptions(env);
  // --api-key's keys replace the environment's key; the flag's own values add up.
  const envApiKeys = options.apiKeys;
  options.apiKeys = [];
  let poolSizeGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = ALIASES[argv[i]] ?? argv[i];
    if (arg === '--help' || arg === '-h') return { kind: 'help', text: CLI_HELP };
    if (arg === '--version') return { kind: 'version' };
    if (!arg.startsWith('--')) {
      // vLLM's `vllm serve MODEL`: one positional argument is the model.
      if (options.model !== null) throw new CliError(`unexpected argument "${arg}" (see --help)`);
      options.model = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag === '--pool-size') poolSizeGiven = true;
    const ignored = IGNORED_FLAGS[flag];
    if (SWITCHES[flag] || (ignored && !ignored.takesValue)) {
      if (eq > 0) throw new CliError(`${flag} takes no value`);
      if (ignored) options.notices.push(ignoredFlagNotice(flag, null));
      else SWITCHES[flag](options);
      continue;
    }
    const set: Setter | undefined = ignored
      ? (o, v, f) => {
          o.notices.push(ignoredFlagNotice(f, v));
        }
      : VALUE_FLAGS[flag];
    if (!set && UNSUPPORTED_FLAGS[flag])
      throw new CliError(`${flag} is not supported: ${UNSUPPORTED_FLAGS[flag]}`);
    if (!set) throw new CliError(`unknown flag ${flag} (see --help)`);
    if (eq > 0) {
      set(options, arg.slice(eq + 1), flag);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) throw new CliError(`${flag} needs a value`);
    set(options, next, flag);
    i++;
    if (flag === '--lora-modules' || flag === '--served-model-name' || flag === '--api-key') {
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) set(options, argv[++i], flag);
    }
  }
  if (options.maxNumBatchedTokens < options.maxNumSeqs)
    throw new CliError(
      `--max-num-batched-tokens ${options.maxNumBatchedTokens} must be at least --max-num-seqs ${options.maxNumSeqs}`,
    );
  if (options.schedulingPolicy !== 'slora') {
    // Only slora clusters and aborts: a flag the policy would ignore is refused instead.
    const policy = options.schedulingPolicy;
    if (options.maxLorasPerBatch !== null)
      throw new CliError(
        `--max-loras-per-batch needs --scheduling-policy slora (${policy} does not cluster by adapter)`,
      );
    if (options.sloTtftSeconds !== null)
      throw new CliError(`--slo-ttft needs --scheduling-policy slora (${policy} never aborts early)`);
  }
  options.hfOverrides = { ...options.hfOverrides, ...options.ropeOverrides };
  // vLLM opens /v1/load_lora_adapter to any path under this variable; Loom to --lora-root's alone.
  const runtimeUpdating = (env.VLLM_ALLOW_RUNTIME_LORA_UPDATING ?? '').trim().toLowerCase();
  if ((runtimeUpdating === '1' || runtimeUpdating === 'true') && options.loraRoot === null)
    options.notices.push(
      'VLLM_ALLOW_RUNTIME_LORA_UPDATING is set, but Loom loads adapters at run time only from under --lora-root DIR: without it, /v1/load_lora_adapter stays off',
    );
  if (options.kvCacheMemoryBytes !== null) {
    if (poolSizeGiven)
      throw new CliError('--kv-cache-memory-bytes and --pool-size both size the pool: give one of them');
    // As in vLLM, the byte count wins over --gpu-memory-utilization (which it then ignores).
    if (options.gpuMemoryUtilization !== null)
      options.notices.push('--gpu-memory-utilization: ignored, --kv-cache-memory-bytes sizes the pool');
    options.gpuMemoryUtilization = null;
    options.poolSize = String(options.kvCacheMemoryBytes);
  }
  if (options.gpuMemoryUtilization !== null) {
    if (poolSizeGiven)
      throw new CliError('--gpu-memory-utilization and --pool-size both size the pool: give one of them');
    // A fraction as --pool-size reads one ("1" alone would be one byte).
    options.poolSize = options.gpuMemoryUtilization.toFixed(6);
  }
  if (options.enableAutoToolChoice && options.toolCallParser === null)
    throw new CliError(
      '--enable-auto-tool-choice needs --tool-call-parser (the format the model writes its calls in)',
    );
  if (options.apiKeys.length === 0) options.apiKeys = envApiKeys;
  if (options.apiKeys.length === 0) options.hideAdapterPaths = true;
  const tls = options.tls;
  if (tls && (tls.keyFile === null || tls.certFile === null))
    throw new CliError('HTTPS needs both --ssl-keyfile and --ssl-certfile');
  if (tls && tls.certReqs !== 0 && tls.caFile === null)
    throw new CliError('--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs (the CA that signs client certificates)');
  const names = new Set<string>();
  for (const { name } of options.loraModules) {
    if (names.has(name)) throw new CliError(`--lora-modules: adapter name "${name}" is given twice`);
    if (name === options.servedModelName || options.servedModelAliases.includes(name))
      throw new CliError(`--lora-modules: adapter name "${name}" is one of --served-model-name's names`);
    names.add(name);
  }
  return { kind: 'serve', options };
}
