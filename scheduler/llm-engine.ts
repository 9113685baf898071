import { totalmem } from 'node:os';
import { basename } from 'node:path';
import type { Engine, EngineFailure } from '../kernels/engine.js';
import {
  createEngine,
  type DtypeChoice,
  devicePoolBytes,
  type EngineChoice,
  type LoraMode,
  type OnnxThreadChoice,
  type QuantizationChoice,
} from '../kernels/engine-factory.js';
import type { LogprobsMode } from '../kernels/logprobs.js';
import { adapterPageCount, pagesForModuleRanks, pagesForTargets } from '../memory/adapter-layout.js';
import {
  AdapterError,
  type AdapterFiles,
  type AdapterInfo,
  AdapterRegistry,
  type RegistryCounters,
} from '../memory/adapter-registry.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool, parsePoolSize } from '../memory/page-pool.js';
import { findInAdapterFolder, listAdapterFolder } from '../model/adapter-folder.js';
import { AdapterReader } from '../model/adapter-reader.js';
import { summarizeAdapter } from '../model/adapter-summary.js';
import { IncrementalDecoder } from '../model/incremental-decoder.js';
import { contextLengthProblem, type LlamaConfig } from '../model/llama-config.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import { type FileReadProgress, type LoadedModel, loadModel } from '../model/load-model.js';
import { StartupError } from '../model/startup-error.js';
import type { Clock } from './clock.js';
import { EngineLoop } from './engine-loop.js';
import { mulberry32Words } from './prng.js';
import type { GenerationRequest, GenerationStream } from './request.js';
import {
  DEFAULT_STREAM_STALL_TIMEOUT_MS,
  MAX_UNREAD_DELTAS_PER_CHOICE,
  type SchedulerStats,
} from './scheduler.js';
import type { SchedulerEventSink } from './scheduler-events.js';
import {
  DEFAULT_SCHEDULING_POLICY,
  fcfsPolicy,
  priorityPolicy,
  type SchedulingPolicy,
  type SchedulingPolicyName,
  sloraPolicy,
} from './scheduling-policy.js';

/** Enough to queue several full batches; beyond it a client is better told to retry. */
export const DEFAULT_MAX_WAITING = 1024;
/** How long a request may be passed over for adapter clustering when no TTFT objective is set. */
export const DEFAULT_MAX_WAIT_MS = 5000;
/** Loom gathers LoRA rows by rank and never pads, so a large default rank cap costs nothing. */
export const DEFAULT_MAX_LORA_RANK = 512;

export interface LlmEngineOptions {
  modelDir: string;
  /** The base model's id in the API; no adapter may take it. */
  servedModelName: string | null;
  /** Adapters registered at start-up (configs read, weights on first use). */
  loraModules: ReadonlyArray<{ name: string; path: string }>;
  /** --lora-dir: every sub-directory with an adapter_config.json is an adapter; new ones register on first use. */
  loraDir?: string | null;
  /**
   * Whether adapters may be loaded at run time (the server's --lora-root); default true. With it
   * false and no --lora-modules or --lora-dir, no adapter can ever be served, and the engine is
   * built without LoRA machinery (createEngine's servesAdapters).
   */
  runtimeAdapterLoads?: boolean;
  /**
   * The context length; null: the model's max_position_embeddings; 'auto' (vLLM's -1): the longest
   * context one sequence can hold in the pool, up to that.
   */
  maxModelLen: number | 'auto' | null;
  /**
   * vLLM's --disable-sliding-window: a model with a sliding window serves at most that many tokens
   * of context unless maxModelLen says otherwise (Loom's attention has no window either way).
   */
  disableSlidingWindow?: boolean;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  engine: EngineChoice;
  dtype?: DtypeChoice;
  /** --quantization: int8/int4 base weights made at load (onnx and webgpu engines). */
  quantization?: QuantizationChoice | null;
  /** Cap on one webgpu scratch buffer: tests force allocation failures with it. */
  webgpuMaxScratchBytes?: number;
  poolSize: string;
  /** --gpu-memory-utilization, when it gave poolSize: refused on a hardware WebGPU adapter (kernels/engine-factory.ts). */
  gpuMemoryUtilization?: number | null;
  chatTemplateFile: string | null;
  /** --tokenizer: the tokenizer's directory, when it is not the model's (vLLM's flag). */
  tokenizerDir?: string | null;
  /** vLLM's --hf-config-path: the folder config.json is read from instead of the model's. */
  hfConfigDir?: string | null;
  /** --hf-overrides: config.json's keys replaced by these (vLLM's flag). */
  hfOverrides?: Readonly<Record<string, unknown>> | null;
  /** --seed: seeds of requests that bring none; null draws them at random. */
  seed: number | null;
  /** Waiting sequences beyond which requests are refused with 503 (default DEFAULT_MAX_WAITING). */
  maxWaiting?: number;
  /** --max-loras: resident adapters at once (default: as many of the largest as fit the pool beside one full context). */
  maxLoras?: number | null;
  /** --max-cpu-loras: host copies kept (default --max-loras). */
  maxCpuLoras?: number | null;
  /** --max-lora-rank (default DEFAULT_MAX_LORA_RANK). */
  maxLoraRank?: number | null;
  /** --scheduling-policy (default slora). */
  schedulingPolicy?: SchedulingPolicyName;
  /** --max-loras-per-batch: distinct adapters in one step under slora (default --max-loras). */
  maxLorasPerBatch?: number | null;
  /** --slo-ttft in seconds: under slora, requests whose first token cannot come in time are refused early. */
  sloTtftSeconds?: number | null;
  /** --max-step-time in seconds: a step's token budget shrinks to fit it (scheduler/step-budget.ts); null or absent: off. */
  maxStepSeconds?: number | null;
  /** --stream-stall-timeout in seconds: a request paused by a consumer that stopped reading is aborted after this. */
  streamStallTimeoutSeconds?: number;
  /** The scheduler's clock (default the process's monotonic clock). */
  clock?: Clock;
  events?: SchedulerEventSink;
  /** Automatic prefix caching (--enable-prefix-caching; default on, as vLLM's). */
  enablePrefixCaching?: boolean;
  /** --lora-mode (default 'batched'); 'padded' pads to the largest registered rank, which then caps later loads. */
  loraMode?: LoraMode;
  /** --onnx-thread (default 'worker'): whether the onnx engine steps on a thread of its own. */
  onnxThread?: OnnxThreadChoice;
  /** --cache-packed-weights: the onnx engine keeps its packed session on disk for the next start. */
  cachePackedWeights?: boolean;
  /** --logprobs-mode (default raw_logprobs): what sampled tokens' log-probabilities report. */
  logprobsMode?: LogprobsMode;
}

/** Structured progress lines (pino's signature, so Fastify's logger fits). */
export interface ProgressLog {
  info(fields: Record<string, unknown>, message: string): void;
}

export interface EngineStats extends SchedulerStats {
  pageBytes: number;
  numPages: number;
  numRegisteredAdapters: number;
  numResidentAdapters: number;
  /** Resident adapters whose pages are consecutive (the webgpu engine addresses them by first page). */
  numContiguousAdapters: number;
  /** Adapters in the onnx engine's stacked LoRA slots (0 on other engines). */
  numStackedAdapters: number;
  /** Bytes of adapter weights held in host RAM, in their files' dtypes. */
  adapterHostBytes: number;
  maxLoras: number;
  adapterCounters: Readonly<RegistryCounters>;
}

const BYTES_PER_ELEMENT = 4;
/** Engines keep the pool in one Float32Array, which holds at most 2^32 elements. */
const MAX_POOL_BYTES = 2 ** 32 * BYTES_PER_ELEMENT;
/** Adapter configs read at once while registering a folder of thousands. */
const INSPECT_CONCURRENCY = 16;

/**
 * The composition root (nano-vllm's LLMEngine): model → pool → engine → adapter registry →
 * scheduler, built in one place. The server sees only this object's generation service:
 * submit, stats, health and adapter administration.
 */
export class LlmEngine {
  private constructor(
    readonly model: Omit<LoadedModel, 'weights'>,
    readonly maxModelLen: number,
    readonly engine: Engine,
    private readonly pool: PagePool,
    private readonly registry: AdapterRegistry,
    private readonly scheduler: EngineLoop,
    private readonly listeners: Set<SchedulerEventSink>,
    /** False when no adapter source was given: the engine has no LoRA machinery (LlmEngineOptions.runtimeAdapterLoads). */
    readonly servesAdapters: boolean,
  ) {}

  /** Receives every scheduler event (metrics read requests' timings from them); returns the unsubscribe. */
  subscribe(listener: SchedulerEventSink): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  static async create(options: LlmEngineOptions, log: ProgressLog): Promise<LlmEngine> {
    log.info({ dir: options.modelDir }, 'loading model');
    const loadStarted = performance.now();
    const model = await loadModel(options.modelDir, {
      chatTemplateFile: options.chatTemplateFile ?? undefined,
      tokenizerDir: options.tokenizerDir ?? undefined,
      configDir: options.hfConfigDir ?? undefined,
      hfOverrides: options.hfOverrides ?? undefined,
      onFileRead: (read) => log.info(weightFileLine(read), 'weights file read and checked'),
      // The mapped linear weights are checked on a worker while the engine is built.
      linearWeightCheck: 'background',
    });
    log.info({ seconds: round((performance.now() - loadStarted) / 1000) }, 'weights read');
    const { config, tokenizer } = model;
    const asked = options.maxModelLen === 'auto' ? null : options.maxModelLen;
    let maxModelLen = asked ?? config.maxPositionEmbeddings;
    // auto never asks past a sliding window: Loom's attention has none (contextLengthProblem).
    // Nor does vLLM's --disable-sliding-window, which caps the default context at the window.
    const capAtWindow = options.maxModelLen === 'auto' || (options.disableSlidingWindow && asked === null);
    if (capAtWindow && config.slidingWindow !== null)
      maxModelLen = Math.min(maxModelLen, config.slidingWindow);
    if (maxModelLen > config.maxPositionEmbeddings) {
      throw new StartupError(
        `--max-model-len ${maxModelLen} exceeds the model's max_position_embeddings ${config.maxPositionEmbeddings}`,
      );
    }
    const windowProblem = contextLengthProblem(config, maxModelLen);
    if (windowProblem) throw new StartupError(`${model.configFile}: ${windowProblem}`);
    let poolSize = options.poolSize;
    let hostFraction = options.gpuMemoryUtilization ?? null;
    if (hostFraction !== null) {
      const device = devicePoolBytes(options.engine, hostFraction, config, totalmem(), undefined, {
        dtype: options.dtype ?? 'auto',
        quantization: options.quantization ?? null,
      });
      if (device) {
        if (device.bytes <= 0)
          throw new StartupError(
            `--gpu-memory-utilization ${hostFraction}: ${hostFraction} of the GPU's ${device.deviceBytes} bytes (${device.source}) leaves no pool beside the model's ${device.weightBytes} bytes of weights`,
          );
        log.info(
          {
            deviceBytes: device.deviceBytes,
            source: device.source,
            weightBytes: device.weightBytes,
            poolBytes: device.bytes,
          },
          '--gpu-memory-utilization: the pool is that fraction of the GPU memory less the weights (and at most that fraction of host memory)',
        );
        poolSize = String(device.bytes);
        hostFraction = null;
      }
    }
    const pool = createPool(config, poolSize, log);
    const kvCache = new KvCache(pool, kvLayout(config), {
      prefixCaching: options.enablePrefixCaching ?? true,
    });
    // As vLLM does: refuse to start when one full-length sequence cannot fit, so a valid request
    // is never refused for a prompt the pool could never hold.
    if (options.maxModelLen === 'auto') {
      // vLLM's auto-fit: the longest context whose one sequence the pool holds.
      const fits = (tokens: number) => kvCache.pagesNeeded(-1, tokens) <= pool.numFree;
      let low = 0;
      let high = maxModelLen;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if (fits(mid)) low = mid;
        else high = mid - 1;
      }
      if (low === 0)
        throw new StartupError(
          `--max-model-len auto: the pool (--pool-size ${options.poolSize}) holds no sequence at all; raise --pool-size`,
        );
      if (low < maxModelLen)
        log.info(
          { maxModelLen: low, limit: maxModelLen },
          '--max-model-len auto: the longest context the pool holds',
        );
      maxModelLen = low;
    }
    const pagesForFullContext = kvCache.pagesNeeded(-1, maxModelLen);
    if (pagesForFullContext > pool.numFree) {
      throw new StartupError(
        `--pool-size ${options.poolSize}: the pool has ${pool.numFree} pages; one sequence of --max-model-len ${maxModelLen} tokens needs ${pagesForFullContext} (raise --pool-size or lower --max-model-len)`,
      );
    }

    const reader = new AdapterReader(config);
    const files = adapterFiles(config, reader, options.loraDir ?? null);
    const started = performance.now();
    const adapters = await inspectStartupAdapters(options, files, options.servedModelName ?? model.name);
    log.info(
      { adapters: adapters.length, seconds: round((performance.now() - started) / 1000) },
      'adapters registered (configs checked; weights load on first use)',
    );
    const loraMode = options.loraMode ?? 'batched';
    const maxLoraRank =
      loraMode === 'padded' && adapters.length
        ? Math.max(...adapters.map((a) => a.rank))
        : (options.maxLoraRank ?? DEFAULT_MAX_LORA_RANK);
    const largest = Math.max(
      1,
      ...adapters.map((a) => a.numPages),
      ...(adapters.length ? [] : [pagesForTargets(config, Math.min(maxLoraRank, 16), allModules(config))]),
    );
    const maxLoras =
      options.maxLoras ?? Math.max(1, Math.floor((pool.numFree - pagesForFullContext) / largest));
    const maxCpuLoras = options.maxCpuLoras ?? maxLoras;
    if (maxCpuLoras < maxLoras)
      throw new StartupError(`--max-cpu-loras ${maxCpuLoras} must be at least --max-loras ${maxLoras}`);

    const policy = policyFor(options, maxLoras);

    log.info({ engine: options.engine, pages: pool.numPages, pageSize: pool.pageSize }, 'creating engine');
    const engineStarted = performance.now();
    const servesAdapters =
      options.loraModules.length > 0 || Boolean(options.loraDir) || options.runtimeAdapterLoads !== false;
    if (!servesAdapters)
      log.info(
        {},
        'no adapter source (--lora-modules, --lora-dir, --lora-root): the engine is built without LoRA layers',
      );
    const engine: Engine = await createEngine(options.engine, model.weights, pool, {
      dtype: options.dtype ?? 'auto',
      onnxThread: options.onnxThread,
      cachePackedWeights: options.cachePackedWeights,
      // Loaded for the engine alone: the worker takes the arrays rather than a copy of them.
      handOverWeights: true,
      servesAdapters,
      quantization: options.quantization ?? null,
      modelDir: model.dir,
      loraMode,
      padLoraRankTo: maxLoraRank,
      log: (message) => log.info({ engine: options.engine }, message),
      webgpuMaxScratchBytes: options.webgpuMaxScratchBytes,
      gpuMemoryUtilization: hostFraction,
    });
    log.info(
      {
        engine: engine.kind,
        ...(engine.kind === 'onnx' ? { onnxThread: engine.ownThread ? 'worker' : 'main' } : {}),
        seconds: round((performance.now() - engineStarted) / 1000),
      },
      'engine created',
    );
    const checkStarted = performance.now();
    try {
      await model.linearWeightsChecked;
    } catch (error) {
      await engine.close();
      throw error;
    }
    log.info(
      { waitedSeconds: round((performance.now() - checkStarted) / 1000) },
      'linear weights checked (finite, within ±2^64)',
    );
    const registry = new AdapterRegistry(
      pool,
      engine,
      files,
      { maxLoras, maxCpuLoras, maxLoraRank, pagesForFullContext },
      config,
    );
    try {
      for (const a of adapters) await registry.register(a.name, a.path, a);
    } catch (error) {
      await engine.close();
      throw error instanceof AdapterError ? new StartupError(`--lora-modules: ${error.message}`) : error;
    }
    const listeners = new Set<SchedulerEventSink>();
    const scheduler = new EngineLoop({
      engine,
      logprobsMode: options.logprobsMode ?? 'raw_logprobs',
      kvCache,
      adapters: registry,
      // The tokenizer alone: a closure over `model` would keep its f32 weights alive, which an
      // engine storing quantized or f16 weights has no use for.
      newDecoder: ({ skipSpecialTokens }) => new IncrementalDecoder(tokenizer, skipSpecialTokens),
      eosTokenIds: config.eosTokenIds,
      limits: {
        maxNumSeqs: options.maxNumSeqs,
        maxNumBatchedTokens: options.maxNumBatchedTokens,
        maxModelLen,
        maxWaiting: options.maxWaiting ?? DEFAULT_MAX_WAITING,
        ...(engine.runLimits ? { maxChunkTokens: engine.runLimits.maxTokensPerSequence } : {}),
      },
      policy,
      sloTtftMs: options.sloTtftSeconds ? options.sloTtftSeconds * 1000 : null,
      maxStepMs: options.maxStepSeconds ? options.maxStepSeconds * 1000 : null,
      backpressure: {
        maxUnreadPerChoice: MAX_UNREAD_DELTAS_PER_CHOICE,
        stallTimeoutMs:
          options.streamStallTimeoutSeconds === undefined
            ? DEFAULT_STREAM_STALL_TIMEOUT_MS
            : options.streamStallTimeoutSeconds * 1000,
      },
      clock: options.clock,
      events: (event) => {
        options.events?.(event);
        for (const listener of listeners) listener(event);
      },
      drawSeed: options.seed === null ? undefined : mulberry32Words(options.seed),
    });
    log.info(
      {
        engine: engine.kind,
        adapters: adapters.length,
        maxLoras,
        freePages: pool.numFree,
        maxModelLen,
        schedulingPolicy: policy.name,
        prefixCaching: kvCache.prefixCache !== null,
        maxStepSeconds: options.maxStepSeconds ?? null,
        sloTtftSeconds: options.sloTtftSeconds ?? null,
      },
      'engine ready',
    );
    // Adapters will be read: the reader's thread starts now rather than inside the first request.
    if (adapters.length > 0 || options.loraDir) reader.start();
    const { weights: _weights, ...described } = model;
    return new LlmEngine(
      described,
      maxModelLen,
      engine,
      pool,
      registry,
      scheduler,
      listeners,
      servesAdapters,
    );
  }

  submit(request: GenerationRequest): GenerationStream {
    return this.scheduler.submit(request);
  }

  stats(): EngineStats {
    const adapters = this.registry.list();
    return {
      ...this.scheduler.stats(),
      pageBytes: this.pool.pageSize * BYTES_PER_ELEMENT,
      numPages: this.pool.numPages,
      numRegisteredAdapters: adapters.length,
      numResidentAdapters: this.registry.numResident,
      numContiguousAdapters: adapters.filter((a) => a.isContiguous).length,
      numStackedAdapters: this.engine.numStackedAdapters ?? 0,
      adapterHostBytes: this.registry.hostBytes,
      maxLoras: this.registry.limits.maxLoras,
      adapterCounters: { ...this.registry.counters },
    };
  }

  /** The failure that stopped the engine for good (device lost), or null while it can run. */
  health(): EngineFailure | null {
    return this.engine.fatalFailure?.() ?? null;
  }

  /** Adapter administration: resolving request names, listing, runtime load and unload. */
  readonly adapters = {
    resolve: (name: string): Promise<boolean> => this.registry.resolve(name),
    list: (): AdapterInfo[] => this.registry.list(),
    load: async (name: string, path: string, inPlace: boolean): Promise<void> => {
      if (!this.servesAdapters)
        throw new AdapterError(
          `adapter "${name}": this engine was started without adapters (no --lora-modules, --lora-dir or --lora-root), so it has no LoRA layers to load one into`,
          'invalid',
        );
      return this.registry.load(name, path, inPlace);
    },
    unload: (name: string): void => this.registry.unload(name),
  };

  /** Which adapters the queues need now (running, and waiting in queue order). */
  adaptersInUse(): { running: string[]; waiting: string[] } {
    return this.scheduler.adaptersInUse();
  }

  /** vLLM's reset_prefix_cache (Scheduler.resetPrefixCache): blocks dropped, null without prefix caching. */
  resetPrefixCache(): Promise<number | null> {
    return this.scheduler.scheduler.resetPrefixCache();
  }

  async close(): Promise<void> {
    await this.scheduler.close();
    await this.registry.close();
    await this.engine.close();
  }
}

/**
 * The batch policy --scheduling-policy names. Under slora a request waits at most half the TTFT
 * objective (or DEFAULT_MAX_WAIT_MS without one) before it goes first whatever its adapter.
 */
function policyFor(options: LlmEngineOptions, maxLoras: number): SchedulingPolicy {
  const name = options.schedulingPolicy ?? DEFAULT_SCHEDULING_POLICY;
  if (name !== 'slora') {
    if (options.maxLorasPerBatch || options.sloTtftSeconds)
      throw new StartupError('--max-loras-per-batch and --slo-ttft need --scheduling-policy slora');
    return name === 'fcfs' ? fcfsPolicy : priorityPolicy;
  }
  const slo = options.sloTtftSeconds;
  return sloraPolicy({
    maxLorasPerBatch: options.maxLorasPerBatch ?? maxLoras,
    maxWaitMs: slo ? (slo * 1000) / 2 : DEFAULT_MAX_WAIT_MS,
  });
}

const MB = 1e6;

/** A start-up progress line for one safetensors file: sizes in MB, read speed, what stays mapped. */
function weightFileLine(read: FileReadProgress): Record<string, unknown> {
  return {
    file: basename(read.file),
    tensors: read.tensors,
    mb: round(read.bytes / MB),
    seconds: round(read.seconds),
    mbPerSecond: read.seconds > 0 ? Math.round(read.bytes / MB / read.seconds) : null,
    fileBackedMb: round(read.fileBackedBytes / MB),
    fileBackedChecked: read.fileBackedChecked,
  };
}

function createPool(config: LlamaConfig, poolSize: string, log: ProgressLog): PagePool {
  const pageSize = config.hiddenSize;
  const requestedBytes = parseFlag('--pool-size', () => parsePoolSize(poolSize, totalmem()));
  const poolBytes = Math.min(requestedBytes, MAX_POOL_BYTES);
  if (poolBytes < requestedBytes)
    log.info({ requestedBytes, poolBytes }, 'pool size capped at what one f32 array can hold');
  return parseFlag(
    '--pool-size',
    () => new PagePool(Math.floor(poolBytes / (pageSize * BYTES_PER_ELEMENT)), pageSize),
  );
}

/** model/'s loaders bound to the base model, as the registry reads adapters. */
function adapterFiles(config: LlamaConfig, reader: AdapterReader, loraDir: string | null): AdapterFiles {
  return {
    async inspect(path) {
      const summary = await summarizeAdapter(path, config);
      return { rank: summary.rank, numPages: pagesForModuleRanks(config, summary.ranks) };
    },
    read: (name, path) => reader.read(name, path),
    pagesOf: (adapter) => adapterPageCount(config, adapter),
    lazyPath: loraDir === null ? undefined : (name) => findInAdapterFolder(loraDir, name),
    close: () => reader.close(),
  };
}

interface InspectedAdapter {
  name: string;
  path: string;
  rank: number;
  numPages: number;
}

/** --lora-modules, then --lora-dir's folders: configs checked in parallel, no weights read. */
async function inspectStartupAdapters(
  options: LlmEngineOptions,
  files: AdapterFiles,
  baseName: string,
): Promise<InspectedAdapter[]> {
  const sources = [...options.loraModules];
  if (options.loraDir) {
    const given = new Set(sources.map((s) => s.name));
    for (const found of await listAdapterFolder(options.loraDir))
      if (!given.has(found.name)) sources.push(found);
  }
  for (const { name } of sources) {
    if (name === baseName)
      throw new StartupError(`--lora-modules: adapter name "${name}" is the base model's name`);
  }
  const inspected: InspectedAdapter[] = new Array(sources.length);
  let next = 0;
  const worker = async () => {
    while (next < sources.length) {
      const i = next++;
      const { name, path } = sources[i];
      inspected[i] = { name, path, ...(await files.inspect(path)) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY, sources.length) }, worker));
  return inspected;
}

function allModules(config: LlamaConfig): (typeof TARGET_MODULES)[number][][] {
  return Array.from({ length: config.numLayers }, () => [...TARGET_MODULES]);
}

/** Turns a flag parser's plain Error into a start-up line that names the flag. */
function parseFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new StartupError(`${flag}: ${(error as Error).message}`);
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
