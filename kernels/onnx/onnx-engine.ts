import './no-telemetry.js';
import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type AdapterLayout, writeScaledAdapterRows } from '../../memory/adapter-layout.js';
import { type KvLayout, kvLayout } from '../../memory/kv-layout.js';
import type { PagePool } from '../../memory/page-pool.js';
import { readF32Sync } from '../../model/file-backed-weights.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { type RopeRotation, ropeRotation } from '../../model/rope-frequencies.js';
import type { StoredLoraAdapter } from '../../model/stored-adapter.js';
import { type Engine, type EngineRunLimits, logitRows, type StepPlan, sequenceLogitRows } from '../engine.js';
import { decodeWeightBytes, isQuantized, type WeightFormat } from '../weight-quantization.js';
import {
  type EncodedWeight,
  type ExternalWeightData,
  encodeBaseWeight,
  fusedWeightName,
  fuseEncodedWeights,
  weightLocation,
} from './base-weights.js';
import { float16Tensor } from './float16-tensor.js';
import {
  buildStepGraph,
  FUSED_MODULE_GROUPS,
  isGemmWeight,
  loraRowReads,
  poolViewName,
  STEP_OUTPUTS,
  WEIGHT_NAMES,
  type WeightFileLocation,
  type WeightFiles,
  type WeightMode,
} from './llama-graph.js';
import { LoraSlotStack } from './lora-slot-stack.js';
import { createPackedSession } from './packed-session-cache.js';
import { packStep, writeNewKv } from './step-feeds.js';
import { splitPlan } from './step-split.js';
import {
  readWeightCache,
  type WeightCacheLocation,
  weightCacheFile,
  weightCacheLocations,
  writeWeightCache,
} from './weight-cache.js';

/**
 * Stacked slot rows per module and layer: 32 sequences of distinct adapters of mean rank 32 (the
 * trace's mixed ranks 8–64). Memory is touched only as rows are used, and placement keeps the
 * used rows low (lora-slot-stack.ts).
 */
export const DEFAULT_STACK_ROWS = 1024;

export interface OnnxEngineOptions {
  /** onnxruntime's intra-op threads; default: every core. */
  threads?: number;
  /** Longest piece of a prompt one run takes (attention memory grows with its square); default 512. */
  maxChunkTokens?: number;
  /**
   * 'prepacked' (default): Gemm weights are initializers read from host memory, prepacked once
   * by onnxruntime (its packed copy costs their size again); batched decode Gemms run 1.4–1.8×
   * faster. One session, with LoRA inputs on every module, so the packed copy exists once.
   * 'inputs': weights are fed every run (no extra memory, slower Gemms); one small session per
   * set of adapter-targeted modules, built on first use.
   */
  weights?: 'prepacked' | 'inputs';
  /**
   * With 'prepacked' weights: the modules the graph carries LoRA for, default all seven (adapters
   * come and go at run time). A step whose adapter targets another module is refused. [] builds
   * the graph without a LoRA node or input: the floor bench/onnx-step-overhead.ts measures against.
   */
  loraModules?: readonly TargetModule[];
  /**
   * Rows of the stacked LoRA slots per module and layer (lora-slot-stack.ts), shared by the ranks
   * of the adapters recent steps used: default DEFAULT_STACK_ROWS (1,024); memory is rows ×
   * Σ(in + out features) × layers × 4 bytes (3.2 GB at the TinyLlama shape), touched only as rows
   * are used. 0: every adapter is gathered from its pages each step.
   */
  stackRows?: number;
  /**
   * The padded baseline (--lora-mode padded, PEFT-style): no stacked slots, and every adapter's
   * rows padded to this rank in one batched matmul per module. Unset: Loom's own path.
   */
  padLoraRankTo?: number;
  /**
   * Storage of the base model's linear weights (lm_head included), made at load from the f32
   * weights: f32 (default), f16, bf16, or block-quantized int8/int4 (../weight-quantization.ts,
   * base-weights.ts). Embeddings, norms, the page pool and LoRA weights stay f32. Anything but
   * f32 needs `weights: 'prepacked'`.
   */
  weightFormat?: WeightFormat;
  /**
   * Where encoded (non-f32) weights are kept between starts, keyed by the checkpoint's identity
   * (weight-cache.ts); unset: encoded at every start.
   */
  weightCache?: WeightCacheLocation;
  /**
   * With 'prepacked' weights: where the step graph's session, its packed weights included, is
   * saved, so the next start maps it instead of packing again (packed-session-cache.ts: a few
   * seconds and ~0.4 GB anonymous at the TinyLlama shape instead of ~10 s and 4.4 GB, for about
   * twice the weights' size on disk); unset: packed at every start. Not for int8/int4 (see the
   * constructor).
   */
  packedSessionCache?: WeightCacheLocation;
  /**
   * With 'prepacked' weights: whether onnxruntime repacks the Gemm weights into its own copy at
   * load (default true). false keeps F32 safetensors weights in their memory-mapped files
   * (no anonymous copy at all, start-up in about a second) at some decode speed; see
   * bench/results/startup.md.
   */
  prepackWeights?: boolean;
  /**
   * Whether onnxruntime's intra-op threads spin between ops and after a run (its default) instead
   * of sleeping; default false. Spinning saves a wake-up per parallel op on an idle machine, but
   * where cores are shared (the JS thread, other sessions, other processes) the spinning thread
   * takes the core the others need: on a loaded 2-core machine decode batch 1 went from
   * 438–894 ms to 201–334 ms a step without it (bench/results/onnx-decode-profile-*.md).
   */
  spinThreads?: boolean;
}

/**
 * The onnxruntime-node CPU engine: one `session.run` per step over a graph of the whole model
 * (llama-graph.ts). The page pool, embeddings and norms enter every run as tensors that wrap the
 * host Float32Arrays (onnxruntime-node hands a typed array's memory to ORT without copying); the
 * Gemm weights are prepacked initializers by default (see OnnxEngineOptions.weights). The graph
 * bytes stay a few KB whatever the model's size, so building a session is quick.
 */
export class OnnxEngine implements Engine {
  readonly kind = 'onnx' as const;
  readonly config: LlamaConfig;
  readonly kvLayout: KvLayout;
  /** Page storage: pool.numPages · pageSize f32, page 0 all zeros. */
  private readonly storage: Float32Array;
  /** Pool and the weights that are inputs: the same tensors every run. */
  private readonly fixedFeeds: Record<string, ort.Tensor>;
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly rope: RopeRotation;
  private readonly sessionOptions: ort.InferenceSession.SessionOptions;
  private readonly weightMode: WeightMode;
  /** In 'prepacked' mode the single graph's LoRA modules (all of them unless told otherwise). */
  private readonly fixedLoraModules: readonly TargetModule[] | undefined;
  readonly weightFormat: WeightFormat;
  /** What became of the encoded-weight cache at creation (read, mapped, written), for the log. */
  weightCacheNote: string | null = null;
  /** What became of the packed-session cache (mapped, saved, not saved and why), for the log. */
  packedCacheNote: string | null = null;
  private readonly packedSessionCache: WeightCacheLocation | undefined;
  private readonly maxChunkTokens: number;
  readonly runLimits: EngineRunLimits;
  /** Adapters of recent steps, stacked for the graph's LoRA slots. */
  private readonly stack: LoraSlotStack;
  private readonly padLoraRankTo: number | undefined;
  /** External data onnxruntime maps from files: F32 safetensors, or the encoded-weight cache. */
  private weightFiles: MappedWeightFiles | undefined;
  private closed = false;

  private constructor(
    weights: ModelWeights,
    readonly pool: PagePool,
    opts: OnnxEngineOptions,
  ) {
    this.config = weights.config;
    this.kvLayout = kvLayout(weights.config);
    if (pool.pageSize !== this.kvLayout.pageSize)
      throw new Error(`pool page size ${pool.pageSize} is not the hidden size ${this.kvLayout.pageSize}`);
    this.maxChunkTokens = opts.maxChunkTokens ?? 512;
    // step-split.ts stays as the safety net for plans that ignore this (and pads mixed batches apart).
    this.runLimits = { maxTokensPerSequence: this.maxChunkTokens };
    this.padLoraRankTo = opts.padLoraRankTo;
    this.storage = new Float32Array(pool.numPages * pool.pageSize);
    this.rope = ropeRotation(weights.config);
    this.stack = new LoraSlotStack(this.storage, weights.config, opts.stackRows ?? DEFAULT_STACK_ROWS);
    this.weightMode = (opts.weights ?? 'prepacked') === 'prepacked' ? 'external' : 'inputs';
    this.weightFormat = opts.weightFormat ?? 'f32';
    if (this.weightMode === 'inputs' && this.weightFormat !== 'f32')
      throw new Error(`${this.weightFormat} weights need the onnx engine's prepacked weights, not 'inputs'`);
    if (this.weightMode === 'inputs' && opts.loraModules)
      throw new Error(
        "loraModules applies to the onnx engine's prepacked weights, not 'inputs' (which builds a graph per set of targeted modules)",
      );
    const external = (name: string) => this.weightMode === 'external' && isGemmWeight(name);
    // Only f32 weights are read straight from their files; other formats are encoded from the arrays.
    this.weightFiles =
      this.weightMode === 'external' && this.weightFormat === 'f32'
        ? mappableWeightFiles(weights)
        : undefined;
    // Gemm weights are initializers, never feeds: their arrays are not even touched here (an F32
    // one left in its file would be read into memory by its property getter).
    this.fixedFeeds = weightTensors(weights, external);
    // The pool, and the same storage viewed as the narrower rows LoRA reads gather (loraRowReads).
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(this.config, m);
      for (const features of [inFeatures, outFeatures]) {
        const { width } = loraRowReads(features, pool.pageSize);
        const rows = (pool.numPages * pool.pageSize) / width;
        this.fixedFeeds[poolViewName(width, pool.pageSize)] = new ort.Tensor('float32', this.storage, [
          rows,
          width,
        ]);
      }
    }
    this.fixedLoraModules = this.weightMode === 'external' ? (opts.loraModules ?? TARGET_MODULES) : undefined;
    this.sessionOptions = {
      intraOpNumThreads: opts.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    };
    const sessionConfig: Record<string, string> = {};
    if (opts.prepackWeights === false) sessionConfig.disable_prepacking = '1';
    if (!opts.spinThreads) sessionConfig['intra_op.allow_spinning'] = '0';
    if (this.weightMode === 'external') this.encodeWeights(gemmWeightSources(weights), opts.weightCache);
    const cachesPacked =
      opts.packedSessionCache && this.weightMode === 'external' && opts.prepackWeights !== false;
    // Probed with onnxruntime 1.30: MatMulNBits sessions loaded from their saved model give NaN
    // logits, f32 and f16 ones the same logits to the bit (test/kernels/onnx-packed-session-cache.test.ts).
    if (cachesPacked && isQuantized(this.weightFormat))
      this.packedCacheNote = `packed weights not cached for ${this.weightFormat}: onnxruntime ${ort.env.versions.common} loads its saved MatMulNBits session wrongly (NaN logits); the codes are mapped from the encoded-weight cache`;
    else if (opts.packedSessionCache && !cachesPacked)
      this.packedCacheNote = `packed weights not cached: ${this.weightMode === 'inputs' ? 'the weights are fed to every run (--lora-mode merged), so nothing is packed' : 'prepacking is off'}`;
    this.packedSessionCache =
      cachesPacked && !isQuantized(this.weightFormat) ? opts.packedSessionCache : undefined;
    if (this.weightFiles)
      sessionConfig.model_external_initializers_file_folder_path = this.weightFiles.folder;
    if (Object.keys(sessionConfig).length > 0) this.sessionOptions.extra = { session: sessionConfig };
  }

  /**
   * Non-f32 Gemm weights in the form the session takes them (base-weights.ts): quantized ones in
   * a cache file onnxruntime maps (read back, or encoded and written now), so no copy of them
   * stays in this process's memory; in memory (externalData) where there is no cache or it cannot
   * be written; f16/bf16 tiles as fixed feeds.
   */
  private encodeWeights(
    sources: ReadonlyMap<string, GemmWeightSource>,
    cache: WeightCacheLocation | undefined,
  ): void {
    const mapped = this.weightFiles?.locations;
    const names = [...sources.keys()].filter((name) => !mapped?.has(weightLocation(name)));
    // Quantized modules that share an input are one MatMulNBits in the graph (fusedQuantizedLinear).
    const fusedGroups = isQuantized(this.weightFormat)
      ? Array.from({ length: this.config.numLayers }, (_, l) =>
          FUSED_MODULE_GROUPS.map((group) => group.map((m) => WEIGHT_NAMES.linear(l, m))),
        ).flat()
      : [];
    const fusedNames = new Set(fusedGroups.flat());
    const entryNames = [...names.filter((n) => !fusedNames.has(n)), ...fusedGroups.map(fusedWeightName)];
    const encodeAll = (): Map<string, EncodedWeight> => {
      const all = new Map<string, EncodedWeight>();
      for (const name of names) {
        const { outFeatures, inFeatures, read } = sources.get(name)!;
        all.set(name, encodeBaseWeight(name, read(), outFeatures, inFeatures, this.weightFormat));
      }
      for (const group of fusedGroups) {
        const parts = fuseEncodedWeights(
          group,
          group.map((name) => all.get(name)!),
        );
        for (const name of group) all.delete(name);
        all.set(fusedWeightName(group), { kind: 'external', parts });
      }
      return all;
    };
    const file = cache && this.weightFormat !== 'f32' ? weightCacheFile(cache, this.weightFormat) : null;
    // Quantized parts are initializers onnxruntime can map; f16 tiles are feeds, read into memory.
    const mapsFile = file !== null && isQuantized(this.weightFormat);
    const mapFrom = (path: string) => {
      const locations = weightCacheLocations(path, entryNames);
      if (locations) this.weightFiles = { folder: dirname(path), locations };
      return locations !== null;
    };
    if (file && mapsFile && mapFrom(file)) {
      this.weightCacheNote = `${this.weightFormat} weights mapped from ${file}`;
      return;
    }
    const cached = file && !mapsFile ? readWeightCache(file, entryNames) : null;
    if (file && cached) {
      this.weightCacheNote = `${this.weightFormat} weights read from ${file}`;
      this.useEncoded(cached);
      return;
    }
    const encoded = encodeAll();
    if (file) {
      try {
        writeWeightCache(file, encoded);
      } catch (error) {
        this.weightCacheNote = `${this.weightFormat} weights encoded; could not write ${file}: ${(error as Error).message}`;
        this.useEncoded(encoded);
        return;
      }
      this.weightCacheNote = `${this.weightFormat} weights encoded and written to ${file}`;
      if (mapsFile && mapFrom(file)) {
        this.weightCacheNote += ', then mapped from it';
        return;
      }
    }
    this.useEncoded(encoded);
  }

  /** Encoded weights handed to the session in memory: initializer bytes, or f16 tiles fed each run. */
  private useEncoded(encoded: ReadonlyMap<string, EncodedWeight>): void {
    const externalData: ExternalWeightData[] = [];
    for (const e of encoded.values()) {
      if (e.kind === 'float16-inputs')
        for (const tile of e.tiles) this.fixedFeeds[tile.name] = float16Tensor(tile.data, tile.dims);
      else externalData.push(...e.parts);
    }
    this.sessionOptions.externalData = externalData;
  }

  /** Builds the engine and its first session (in 'inputs' mode, LoRA variants come when needed). */
  static async create(
    weights: ModelWeights,
    pool: PagePool,
    opts: OnnxEngineOptions = {},
  ): Promise<OnnxEngine> {
    const engine = new OnnxEngine(weights, pool, opts);
    await engine.session(engine.fixedLoraModules ?? []);
    // onnxruntime copied what externalData handed it (and packed it); the one prepacked session is
    // never built again, so the engine lets go of those host arrays: weights converted from F16/BF16
    // files (4 GB at TinyLlama's size) are freed once the caller drops the model too.
    if (engine.fixedLoraModules) engine.sessionOptions.externalData = undefined;
    return engine;
  }

  /**
   * The modules the prepacked step graph has LoRA on ([]: a graph without LoRA nodes, for a server
   * that can serve no adapter); undefined in 'inputs' mode, which builds a graph per step's modules.
   */
  get graphLoraModules(): readonly TargetModule[] | undefined {
    return this.fixedLoraModules;
  }

  /**
   * One `session.run` for the plan, unless padding would blow up attention (a long prompt next to
   * decodes, or a prompt past maxChunkTokens): then a few runs, see step-split.ts.
   */
  async step(plan: StepPlan): Promise<Float32Array> {
    if (this.closed) throw new Error('onnx engine is closed');
    const parts = splitPlan(plan, this.maxChunkTokens);
    // One stack step for every part: a part's new adapters do not take the rows of another's.
    const stackStep = this.stack.beginStep(plan.sequences.flatMap((s) => (s.adapter ? [s.adapter] : [])));
    const isWhole = parts.length === 1 && parts[0].origin.every((o, i) => o === i);
    if (isWhole) return this.run(plan, stackStep);
    const vocab = this.config.vocabSize;
    const rowsOf = plan.sequences.map((): Float32Array[] => []);
    for (const part of parts) {
      const logits = await this.run(part.plan, stackStep);
      let row = 0;
      part.plan.sequences.forEach((s, i) => {
        const n = sequenceLogitRows(s);
        rowsOf[part.origin[i]].push(logits.subarray(row * vocab, (row + n) * vocab));
        row += n;
      });
    }
    const out = new Float32Array(logitRows(plan) * vocab);
    let off = 0;
    for (const chunks of rowsOf) {
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
    }
    return out;
  }

  private async run(plan: StepPlan, stackStep: number): Promise<Float32Array> {
    const vocab = this.config.vocabSize;
    if (plan.sequences.every((s) => s.tokens.length === 0)) return new Float32Array(0);
    const packed = packStep(
      plan,
      this.config,
      this.kvLayout,
      this.rope,
      this.stack,
      this.fixedLoraModules,
      this.padLoraRankTo,
      stackStep,
    );
    const session = await this.session(packed.loraModules);
    // Each graph variant declares only the pool views its LoRA modules read.
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) feeds[name] = packed.feeds[name] ?? this.fixedFeeds[name];
    const out = await session.run(feeds);
    const kvNew = out[STEP_OUTPUTS.kvNew].data as Float32Array;
    writeNewKv(this.storage, this.kvLayout, plan, packed.numTokens, kvNew);
    const logits = out[STEP_OUTPUTS.logits].data as Float32Array;
    return packed.numLogitRows === 0 ? new Float32Array(0) : logits.subarray(0, packed.numLogitRows * vocab);
  }

  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    // Forgotten first: a write that fails part-way leaves nothing of the old weights stacked.
    this.stack.forget(layout);
    this.stack.noteWrite(layout, writeScaledAdapterRows(this.storage, this.pool.pageSize, layout, adapter));
  }

  releaseAdapter(layout: AdapterLayout): void {
    this.stack.forget(layout);
  }

  /** Adapters in the stacked slots now (copied from their pages, read in place by the steps). */
  get numStackedAdapters(): number {
    return this.stack.numStacked;
  }

  /** The modules in whose stacked slots the adapter is now (the others gather it, or it lacks them). */
  stackedModulesOf(layout: AdapterLayout): TargetModule[] {
    return TARGET_MODULES.filter((m) => this.stack.rowsOf(layout, m) > 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of sessions) await (await s).release();
  }

  /** Number of graph variants built so far (one per set of LoRA-targeted modules). */
  get numSessions(): number {
    return this.sessions.size;
  }

  private session(loraModules: readonly TargetModule[]): Promise<ort.InferenceSession> {
    const key = loraModules.join(',');
    let session = this.sessions.get(key);
    if (!session) {
      const bytes = buildStepGraph(
        this.config,
        this.kvLayout,
        loraModules,
        this.weightMode,
        this.weightFiles?.locations,
        this.weightFormat,
      );
      session = this.packedSessionCache
        ? this.createPackedSession(bytes, loraModules)
        : ort.InferenceSession.create(bytes, this.sessionOptions);
      // A failed build is not cached: the next step retries it.
      session.catch(() => this.sessions.delete(key));
      this.sessions.set(key, session);
    }
    return session;
  }

  private async createPackedSession(
    graph: Uint8Array,
    loraModules: readonly TargetModule[],
  ): Promise<ort.InferenceSession> {
    const { session, note } = await createPackedSession({
      location: this.packedSessionCache!,
      weightFormat: this.weightFormat,
      loraModules,
      graph,
      options: this.sessionOptions,
      // The weights as the graph holds them, and their packed copy beside them.
      expectedBytes: 2 * decodeWeightBytes(this.config, this.weightFormat),
    });
    this.packedCacheNote = note;
    return session;
  }
}

interface MappedWeightFiles {
  /** onnxruntime's external-initializer folder: the checkpoint's directory, or the cache's. */
  folder: string;
  /** Keyed by in-memory external-data path (base-weights.ts's WeightFiles). */
  locations: WeightFiles;
}

/**
 * The Gemm weights onnxruntime can read straight from the model's F32 safetensors files (it
 * memory-maps external data that sits in a file, and copies what it is handed in memory):
 * every file-backed one in the folder of the first. None when the weights were made in memory.
 */
function mappableWeightFiles(weights: ModelWeights): MappedWeightFiles | undefined {
  const refs = [...(weights.files ?? [])].filter(([name, ref]) => isGemmWeight(name) && ref.dtype === 'F32');
  if (refs.length === 0) return undefined;
  const folder = dirname(refs[0][1].file);
  const locations = new Map<string, WeightFileLocation>();
  for (const [name, ref] of refs) {
    if (dirname(ref.file) === folder)
      locations.set(weightLocation(name), { location: basename(ref.file), offset: ref.offset });
  }
  return { folder, locations };
}

/** A Gemm weight's shape and how to get its f32 values. */
interface GemmWeightSource {
  outFeatures: number;
  inFeatures: number;
  /**
   * The values: an F32 weight left in its safetensors file is read into a new array that only the
   * caller holds (the model's property getter would keep its copy for good); others are the
   * model's own arrays.
   */
  read: () => Float32Array;
}

/** The model's Gemm weights (linear layers and lm_head) by graph name, none of them read yet. */
function gemmWeightSources(weights: ModelWeights): Map<string, GemmWeightSource> {
  const c = weights.config;
  const sources = new Map<string, GemmWeightSource>();
  const add = (name: string, outFeatures: number, inFeatures: number, own: () => Float32Array) => {
    const ref = weights.files?.get(name);
    const read = ref?.dtype === 'F32' ? () => readF32Sync(ref) : own;
    sources.set(name, { outFeatures, inFeatures, read });
  };
  add(WEIGHT_NAMES.lmHead, c.vocabSize, c.hiddenSize, () => weights.lmHead);
  weights.layers.forEach((layer, l) => {
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(c, m);
      add(WEIGHT_NAMES.linear(l, m), outFeatures, inFeatures, () => layer.linear[m]);
    }
  });
  return sources;
}

/**
 * Zero-copy tensors over the model's weights, named as the step graph names them; those for
 * which `skip` holds are left out without reading their arrays (which may be file-backed).
 */
function weightTensors(weights: ModelWeights, skip: (name: string) => boolean): Record<string, ort.Tensor> {
  const c = weights.config;
  const feeds: Record<string, ort.Tensor> = {};
  const add = (name: string, data: () => Float32Array, dims: number[]) => {
    if (!skip(name)) feeds[name] = new ort.Tensor('float32', data(), dims);
  };
  add(WEIGHT_NAMES.embedTokens, () => weights.embedTokens, [c.vocabSize, c.hiddenSize]);
  add(WEIGHT_NAMES.finalNorm, () => weights.finalNorm, [c.hiddenSize]);
  add(WEIGHT_NAMES.lmHead, () => weights.lmHead, [c.vocabSize, c.hiddenSize]);
  weights.layers.forEach((layer, l) => {
    add(WEIGHT_NAMES.inputNorm(l), () => layer.inputNorm, [c.hiddenSize]);
    add(WEIGHT_NAMES.postAttentionNorm(l), () => layer.postAttentionNorm, [c.hiddenSize]);
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(c, m);
      add(WEIGHT_NAMES.linear(l, m), () => layer.linear[m], [outFeatures, inFeatures]);
    }
  });
  return feeds;
}
