import { totalmem } from 'node:os';
import type { Engine } from '../kernels/engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool, parsePoolSize } from '../memory/page-pool.js';
import { IncrementalDecoder } from '../model/incremental-decoder.js';
import { loadAdapter } from '../model/load-adapter.js';
import { loadModel } from '../model/load-model.js';
import type { GenerationRequest, GenerationStream } from '../scheduler/request.js';
import { Scheduler, type SchedulerStats } from '../scheduler/scheduler.js';
import { createEngine, type DtypeChoice, type EngineChoice } from './engine-factory.js';
import { seededDraws } from './seed-source.js';
import { StartupError } from './startup-error.js';

/** What the HTTP layer needs from the tokenizer: text in, ids out, chat rendering. */
export interface ServingTokenizer {
  readonly vocabSize: number;
  /** Characters of the longest token's text: a prompt longer than maxModelLen × this cannot fit. */
  readonly longestTokenChars: number;
  readonly hasChatTemplate: boolean;
  encode(text: string, addSpecialTokens?: boolean): number[];
  applyChatTemplate(messages: { role: string; content: string }[], addGenerationPrompt?: boolean): string;
}

/** The scheduler as the HTTP layer sees it. */
export interface GenerationService {
  submit(request: GenerationRequest): GenerationStream;
  stats(): SchedulerStats;
  close(): Promise<void>;
}

export interface ServedAdapter {
  name: string;
  path: string;
}

/**
 * Everything a running server serves: built once at start-up by buildServingStack, or by a
 * test from fakes. The pool is here only so tests and metrics can watch page use; routes
 * never touch it.
 */
export interface ServingStack {
  /** The base model's id in the API (--served-model-name or the directory's name). */
  readonly modelName: string;
  readonly modelDir: string;
  readonly maxModelLen: number;
  readonly maxNumSeqs: number;
  /** Waiting sequences past which the scheduler refuses with 503: a request with more choices can never fit. */
  readonly maxWaiting: number;
  readonly adapters: readonly ServedAdapter[];
  readonly tokenizer: ServingTokenizer;
  readonly scheduler: GenerationService;
  readonly pool: PagePool;
  /**
   * The engine, for tests and for health: `fatalFailure()` says when it can run no more steps
   * (device lost). Routes never call it. Absent in stacks of fakes.
   */
  readonly engine?: Engine;
  /** Unix seconds the stack came up: the model cards' `created`. */
  readonly createdAt: number;
  close(): Promise<void>;
}

export interface StackOptions {
  modelDir: string;
  loraModules: readonly ServedAdapter[];
  servedModelName: string | null;
  maxModelLen: number | null;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  engine: EngineChoice;
  /** --dtype (default auto). */
  dtype?: DtypeChoice;
  /** Cap on one webgpu scratch buffer: tests force allocation failures with it. */
  webgpuMaxScratchBytes?: number;
  poolSize: string;
  chatTemplateFile: string | null;
  /** --seed: seeds of requests that bring none; null draws them at random. */
  seed: number | null;
  /** Waiting sequences beyond which requests are refused with 503 (default DEFAULT_MAX_WAITING). */
  maxWaiting?: number;
}

/** Enough to queue several full batches; beyond it a client is better told to retry. */
export const DEFAULT_MAX_WAITING = 1024;

/** Structured progress lines (pino's signature, so Fastify's logger fits). */
export interface ProgressLog {
  info(fields: Record<string, unknown>, message: string): void;
}

const BYTES_PER_ELEMENT = 4;
/** Engines keep the pool in one Float32Array, which holds at most 2^32 elements. */
const MAX_POOL_BYTES = 2 ** 32 * BYTES_PER_ELEMENT;

export async function buildServingStack(options: StackOptions, log: ProgressLog): Promise<ServingStack> {
  log.info({ dir: options.modelDir }, 'loading model');
  const model = await loadModel(options.modelDir, {
    chatTemplateFile: options.chatTemplateFile ?? undefined,
  });
  const { config } = model;
  const maxModelLen = options.maxModelLen ?? config.maxPositionEmbeddings;
  if (maxModelLen > config.maxPositionEmbeddings) {
    throw new StartupError(
      `--max-model-len ${maxModelLen} exceeds the model's max_position_embeddings ${config.maxPositionEmbeddings}`,
    );
  }
  const adapters = [];
  for (const { name, path } of options.loraModules) {
    if (name === (options.servedModelName ?? model.name)) {
      throw new StartupError(`--lora-modules: adapter name "${name}" is the base model's name`);
    }
    log.info({ adapter: name, dir: path }, 'loading adapter');
    adapters.push(await loadAdapter(name, path, config));
  }

  const pageSize = config.hiddenSize;
  const requestedBytes = parseFlag('--pool-size', () => parsePoolSize(options.poolSize, totalmem()));
  const poolBytes = Math.min(requestedBytes, MAX_POOL_BYTES);
  if (poolBytes < requestedBytes)
    log.info({ requestedBytes, poolBytes }, 'pool size capped at what one f32 array can hold');
  const pool = parseFlag(
    '--pool-size',
    () => new PagePool(Math.floor(poolBytes / (pageSize * BYTES_PER_ELEMENT)), pageSize),
  );
  const kvCache = new KvCache(pool, kvLayout(config));
  const adapterPages = adapters.reduce((sum, a) => sum + adapterPageCount(config, a), 0);
  // As vLLM does: refuse to start when one full-length sequence cannot fit beside the
  // adapters, so a valid request is never refused for a prompt the pool could never hold.
  const pagesForFullContext = kvCache.pagesNeeded(-1, maxModelLen);
  if (adapterPages + pagesForFullContext > pool.numFree) {
    throw new StartupError(
      `--pool-size ${options.poolSize}: the pool has ${pool.numFree} pages; the adapters take ${adapterPages} and one sequence of --max-model-len ${maxModelLen} tokens needs ${pagesForFullContext} more (raise --pool-size or lower --max-model-len)`,
    );
  }

  log.info({ engine: options.engine, pages: pool.numPages, pageSize }, 'creating engine');
  const engine: Engine = await createEngine(options.engine, model.weights, pool, {
    dtype: options.dtype ?? 'auto',
    log: (message) => log.info({ engine: options.engine }, message),
    webgpuMaxScratchBytes: options.webgpuMaxScratchBytes,
  });
  const layouts = new Map<string, AdapterLayout>();
  for (const adapter of adapters) {
    const layout = layoutAdapter(
      config,
      adapter,
      pool.allocate(adapterPageCount(config, adapter), 'adapter'),
    );
    engine.writeAdapter(layout, adapter);
    layouts.set(adapter.name, layout);
  }
  const scheduler = new Scheduler({
    engine,
    kvCache,
    adapters: (name: string) => layouts.get(name) ?? null,
    newDecoder: () => new IncrementalDecoder(model.tokenizer),
    eosTokenIds: config.eosTokenIds,
    limits: {
      maxNumSeqs: options.maxNumSeqs,
      maxNumBatchedTokens: options.maxNumBatchedTokens,
      maxModelLen,
      maxWaiting: options.maxWaiting ?? DEFAULT_MAX_WAITING,
    },
    drawSeed: options.seed === null ? undefined : seededDraws(options.seed),
  });
  log.info(
    { engine: engine.kind, adapters: adapters.length, freePages: pool.numFree, maxModelLen },
    'engine ready',
  );

  return {
    modelName: options.servedModelName ?? model.name,
    modelDir: model.dir,
    maxModelLen,
    maxNumSeqs: options.maxNumSeqs,
    maxWaiting: options.maxWaiting ?? DEFAULT_MAX_WAITING,
    adapters: options.loraModules.map(({ name, path }) => ({ name, path })),
    tokenizer: model.tokenizer,
    scheduler,
    pool,
    engine,
    createdAt: Math.floor(Date.now() / 1000),
    async close() {
      await scheduler.close();
      await engine.close();
    },
  };
}

/** Turns a flag parser's plain Error into a start-up line that names the flag. */
function parseFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new StartupError(`${flag}: ${(error as Error).message}`);
  }
}
