import type { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import type { ModelWeights } from '../model/model-weights.js';
import { StartupError } from '../model/startup-error.js';
import type { Engine } from './engine.js';
import type { OnnxEngineOptions } from './onnx/onnx-engine.js';
import type { StorageDtype } from './webgpu/buffers.js';
import type { WebGpuAdapterSummary, WebGpuContext } from './webgpu/device.js';
import { type DeviceMemoryProbes, readDeviceMemory } from './webgpu/device-memory.js';
import { layerLinearBytes, type WeightFormat, weightBytes } from './weight-quantization.js';

export const ENGINE_CHOICES = ['auto', 'onnx', 'reference', 'webgpu'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

/**
 * --dtype: storage of the linear weights on the engine (compute and the page pool stay f32):
 * f32, f16 and bf16 on webgpu and onnx (kernels/onnx/base-weights.ts; webgpu reads bf16 as the top
 * half of an f32, kernels/webgpu/gemm.ts).
 */
export const DTYPE_CHOICES = ['auto', 'f32', 'f16', 'bf16'] as const;
export type DtypeChoice = (typeof DTYPE_CHOICES)[number];

/**
 * --quantization: weight-only quantization of the base model's linear weights, made at load from
 * the checkpoint (block-wise, one scale per block; kernels/weight-quantization.ts): onnx runs the
 * codes with MatMulNBits, webgpu dequantizes the same codes in its gemm kernels; reference refuses.
 */
export const QUANTIZATION_CHOICES = ['int8', 'int4'] as const;
export type QuantizationChoice = (typeof QUANTIZATION_CHOICES)[number];

/**
 * --lora-mode: Loom's batched adapters (default), or a baseline the S-LoRA benchmark compares
 * against: `padded` (every adapter padded to the largest rank in one batched matmul, PEFT-style)
 * or `merged` (one adapter merged into the base weights at a time, swapped as needed: a server
 * without multi-adapter batching). The baselines run on the CPU engines.
 */
export const LORA_MODES = ['batched', 'padded', 'merged'] as const;
export type LoraMode = (typeof LORA_MODES)[number];

/**
 * --onnx-thread: where the onnx engine runs its steps. `worker` (default): on a thread of its own
 * (onnx/onnx-worker-engine.ts), so the server's event loop stays free during a step; `main`: on
 * the server's thread, as before (onnxruntime-node's run then holds the loop for the whole step).
 * `--lora-mode merged` always runs on the main thread (it rewrites the weights there).
 */
export const ONNX_THREAD_CHOICES = ['worker', 'main'] as const;
export type OnnxThreadChoice = (typeof ONNX_THREAD_CHOICES)[number];

export interface EngineFactoryOptions {
  dtype: DtypeChoice;
  /** Default 'worker'. */
  onnxThread?: OnnxThreadChoice;
  /**
   * Whether the caller hands the weights to the engine and reads them no more: the onnx engine's
   * worker then takes their buffers instead of a copy (default false).
   */
  handOverWeights?: boolean;
  /**
   * Whether any adapter can ever be served (default true). False when the server has no adapter
   * source (no --lora-modules, --lora-dir or --lora-root): the onnx engine then builds its step
   * graph without LoRA nodes, whose Ifs and inputs cost a base step ~10 % at batch 1 (3.2 ms of
   * 31.2 at TinyLlama's shape, int8: bench/onnx-step-overhead.ts --shape tinyllama), as vLLM
   * without --enable-lora has no LoRA layers.
   */
  servesAdapters?: boolean;
  /** Default none: weights stored as --dtype says. */
  quantization?: QuantizationChoice | null;
  /**
   * The checkpoint's folder: the onnx engine keeps its encoded (f16/bf16/int8/int4) weights in
   * $XDG_CACHE_HOME/loom keyed by it, so the next start reads them. Unset: encoded every start.
   */
  modelDir?: string;
  /**
   * With modelDir: the onnx engine saves its session, packed weights included, in the same cache
   * and maps it at the next start instead of packing again (packed-session-cache.ts); f32, f16 and
   * bf16 only. Default off: it costs about twice the weights' size on disk.
   */
  cachePackedWeights?: boolean;
  /** Default 'batched'. */
  loraMode?: LoraMode;
  /** With loraMode 'padded': the rank every adapter is padded to. */
  padLoraRankTo?: number;
  /** One line for each choice the operator did not spell out (what auto picked, and why). */
  log: (message: string) => void;
  /** Cap on one scratch buffer of the webgpu engine (tests force allocation failures with it). */
  webgpuMaxScratchBytes?: number;
  /**
   * --gpu-memory-utilization, when it sized the pool (as that fraction of host memory): right for
   * the CPU engines and a software adapter, whose device memory is host memory; refused on a
   * hardware adapter, whose memory size WebGPU does not report (deviceMemoryFractionProblem).
   */
  gpuMemoryUtilization?: number | null;
}

/**
 * The pool --gpu-memory-utilization gives where the engine may run on a GPU: that fraction of the
 * GPU's memory as the operating system reports it (WebGPU has no memory query: Dawn's node
 * bindings give vendor, description and limits, and Dawn's memory-heap query is not exposed to
 * JavaScript), less the model's weights as the webgpu engine stores them (deviceWeightBytes) —
 * vLLM's meaning, the fraction is the engine's whole share of the GPU. The pool also lives in host
 * memory (the engines keep its host copy), so it is held to the same fraction of host memory. Null
 * for the CPU engines or where no GPU reports a size (then the fraction is of host memory, and a
 * hardware adapter refuses it).
 */
export function devicePoolBytes(
  choice: EngineChoice,
  fraction: number,
  config: LlamaConfig,
  hostBytes: number,
  probes?: DeviceMemoryProbes,
  storage: { dtype: DtypeChoice; quantization: QuantizationChoice | null } = {
    dtype: 'auto',
    quantization: null,
  },
): { bytes: number; deviceBytes: number; weightBytes: number; source: string } | null {
  if (choice === 'onnx' || choice === 'reference') return null;
  const memory = readDeviceMemory(probes);
  if (!memory) return null;
  const weightBytes = deviceWeightBytes(config, storage.dtype, storage.quantization);
  const bytes = Math.min(Math.floor(fraction * memory.bytes) - weightBytes, Math.floor(fraction * hostBytes));
  return { bytes, deviceBytes: memory.bytes, weightBytes, source: memory.source };
}

/**
 * Bytes of a model on the webgpu engine (kernels/webgpu/device-model.ts): the embedding table and
 * the norms in f32; the linear layers and lm_head in their storage (codes with their scales, rows
 * padded to whole blocks), a tied lm_head as the table itself except when it is quantized. `auto`
 * counts f32: whether the adapter has shader-f16 (auto's f16) is known only once a device is open.
 */
export function deviceWeightBytes(
  config: LlamaConfig,
  dtype: DtypeChoice,
  quantization: QuantizationChoice | null,
): number {
  const format: WeightFormat = quantization ?? (dtype === 'auto' ? 'f32' : dtype);
  const { hiddenSize, vocabSize, numLayers } = config;
  let bytes = 4 * vocabSize * hiddenSize + 4 * (2 * numLayers + 1) * hiddenSize;
  if (!config.tieWordEmbeddings || quantization) bytes += weightBytes(format, vocabSize, hiddenSize);
  return bytes + layerLinearBytes(config, format);
}

/**
 * Why --gpu-memory-utilization cannot size the pool on this WebGPU adapter, or null when it can:
 * it is still a fraction of host memory here (no GPU reported its size), which is the device's
 * memory only on a software adapter (lavapipe allocates its buffers from host RAM). Guessing would
 * over-commit a GPU or waste it, so a hardware adapter needs the pool in bytes.
 */
export function deviceMemoryFractionProblem(
  adapter: WebGpuAdapterSummary,
  gpuMemoryUtilization: number | null | undefined,
): string | null {
  if (gpuMemoryUtilization === null || gpuMemoryUtilization === undefined || adapter.isFallbackAdapter)
    return null;
  return `--gpu-memory-utilization ${gpuMemoryUtilization}: no GPU memory size is known for ${adapterName(adapter)} (WebGPU has no memory query, and neither nvidia-smi nor amdgpu's sysfs answered), so there is nothing to take a fraction of; give the pool in bytes with --pool-size (e.g. --pool-size 8GiB: KV cache and adapters, beside the model's weights, within what the GPU holds)`;
}

/**
 * The one place that maps --engine and --dtype onto an implementation. `auto` picks webgpu on
 * a hardware adapter and onnx otherwise (a software adapter such as lavapipe runs WGSL tens of
 * times slower than onnxruntime on the same CPU). Engines load lazily, so a server never loads
 * the native libraries of engines it does not run.
 */
export async function createEngine(
  choice: EngineChoice,
  weights: ModelWeights,
  pool: PagePool,
  options: EngineFactoryOptions,
): Promise<Engine> {
  assertEngineAvailable(choice, options.dtype, options.loraMode, options.quantization);
  if (choice === 'onnx' || choice === 'reference') return createCpuEngine(choice, weights, pool, options);
  if ((options.loraMode ?? 'batched') !== 'batched') {
    options.log(`--lora-mode ${options.loraMode} runs on the onnx engine`);
    return createCpuEngine('onnx', weights, pool, options);
  }
  const { createWebGpuContext } = await import('./webgpu/device.js');
  let ctx: WebGpuContext;
  try {
    ctx = await createWebGpuContext();
  } catch (error) {
    const reason = (error as Error).message;
    if (choice === 'webgpu') throw new StartupError(`--engine webgpu: ${reason}`);
    return fallBackToOnnx(reason, weights, pool, options);
  }
  const fractionProblem = deviceMemoryFractionProblem(ctx.adapter, options.gpuMemoryUtilization);
  if (fractionProblem) {
    ctx.destroy();
    throw new StartupError(fractionProblem);
  }
  if (choice === 'auto' && ctx.adapter.isFallbackAdapter) {
    ctx.destroy();
    return fallBackToOnnx(
      `WebGPU adapter ${adapterName(ctx.adapter)} is a software fallback`,
      weights,
      pool,
      options,
    );
  }
  try {
    const weightDtype = webgpuWeightDtype(
      options.dtype,
      options.quantization ?? null,
      ctx,
      weights.checkpointDtype,
    );
    const { WebGpuEngine } = await import('./webgpu/webgpu-engine.js');
    const engine = await WebGpuEngine.create(weights, pool, {
      context: ctx,
      ownContext: true,
      weightDtype,
      maxScratchBytes: options.webgpuMaxScratchBytes,
    });
    options.log(
      `webgpu engine on ${adapterName(ctx.adapter)}${ctx.adapter.isFallbackAdapter ? ' (software)' : ''}, ${weightDtype} weights`,
    );
    if (options.cachePackedWeights)
      options.log(
        '--cache-packed-weights: the webgpu engine packs no weights; the flag is for the onnx engine',
      );
    return engine;
  } catch (error) {
    ctx.destroy();
    throw error;
  }
}

/**
 * Checks what can be checked before the model loads, so a wrong flag fails in milliseconds, with
 * one line naming the flag: the reference engine keeps f32 weights only, and merging adapters into
 * the weights (--lora-mode merged) needs f32 ones.
 */
export function assertEngineAvailable(
  choice: EngineChoice,
  dtype: DtypeChoice = 'auto',
  loraMode: LoraMode = 'batched',
  quantization: QuantizationChoice | null = null,
): void {
  if (quantization && (dtype === 'f16' || dtype === 'bf16'))
    throw new StartupError(
      `--quantization ${quantization}: it sets the linear weights' storage itself; drop --dtype ${dtype} (or use --dtype auto or f32)`,
    );
  if (choice === 'reference' && quantization)
    throw new StartupError(
      `--quantization ${quantization}: the reference engine runs f32 weights only (use --engine onnx)`,
    );
  if (choice === 'reference' && (dtype === 'f16' || dtype === 'bf16'))
    throw new StartupError(
      `--dtype ${dtype}: the reference engine runs f32 weights only (use --dtype auto or f32, or --engine onnx)`,
    );
  if (loraMode === 'merged' && (quantization || dtype === 'f16' || dtype === 'bf16'))
    throw new StartupError(
      `--lora-mode merged: merging adapters rewrites f32 weights; it cannot run with ${quantization ? `--quantization ${quantization}` : `--dtype ${dtype}`}`,
    );
  if (loraMode !== 'batched' && choice === 'webgpu')
    throw new StartupError(
      `--lora-mode ${loraMode}: the baselines run on the onnx engine (use --engine onnx)`,
    );
  if (loraMode === 'padded' && choice === 'reference')
    throw new StartupError(
      '--lora-mode padded: the padded baseline runs on the onnx engine (use --engine onnx)',
    );
}

/** "llvmpipe" from "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)"; the device or vendor where no description. */
export function adapterName(adapter: WebGpuAdapterSummary): string {
  const described = adapter.description.split(':')[0].trim();
  return described || adapter.device || adapter.vendor || 'unknown';
}

/**
 * The webgpu engine's storage for --dtype and --quantization. auto follows the checkpoint as vLLM's
 * does: a BF16 checkpoint stays bf16 (exact; f16 would round it and overflow past ±65504), F16 and
 * F32 ones go to f16 where the adapter has shader-f16, else f32.
 */
function webgpuWeightDtype(
  dtype: DtypeChoice,
  quantization: QuantizationChoice | null,
  ctx: WebGpuContext,
  checkpointDtype: ModelWeights['checkpointDtype'],
): StorageDtype {
  if (quantization) return quantization;
  if (dtype === 'auto' && checkpointDtype === 'BF16') return 'bf16';
  if (dtype === 'f16' && !ctx.hasF16)
    throw new StartupError(
      `--dtype f16: WebGPU adapter ${adapterName(ctx.adapter)} has no shader-f16 (use --dtype auto or f32)`,
    );
  if (dtype === 'auto') return ctx.hasF16 ? 'f16' : 'f32';
  return dtype;
}

/** The onnx engine's storage of the linear weights: --quantization, else --dtype (auto is f32 there). */
export function onnxWeightFormat(
  dtype: DtypeChoice,
  quantization: QuantizationChoice | null = null,
): WeightFormat {
  if (quantization) return quantization;
  return dtype === 'auto' ? 'f32' : dtype;
}

/** auto's way out when WebGPU would not serve well: onnx, said in one line with the reason. */
async function fallBackToOnnx(
  why: string,
  weights: ModelWeights,
  pool: PagePool,
  options: EngineFactoryOptions,
): Promise<Engine> {
  options.log(`${why}; using the onnx engine`);
  return createCpuEngine('onnx', weights, pool, options);
}

async function createCpuEngine(
  choice: 'onnx' | 'reference',
  weights: ModelWeights,
  pool: PagePool,
  options: EngineFactoryOptions,
): Promise<Engine> {
  const mode = options.loraMode ?? 'batched';
  let engine: Engine;
  if (choice === 'onnx') {
    const { OnnxEngine } = await import('./onnx/onnx-engine.js');
    const { checkpointIdentity, defaultCacheDir } = await import('./onnx/weight-cache.js');
    const weightFormat = onnxWeightFormat(options.dtype, options.quantization);
    const onnxOptions: OnnxEngineOptions = {
      // Merging rewrites the weight arrays, which only inputs-mode weights are read from each run.
      weights: mode === 'merged' ? 'inputs' : 'prepacked',
      ...(options.servesAdapters === false && mode !== 'merged' ? { loraModules: [] } : {}),
      padLoraRankTo: mode === 'padded' ? options.padLoraRankTo : undefined,
      weightFormat,
      weightCache:
        options.modelDir && weightFormat !== 'f32'
          ? { dir: defaultCacheDir(), checkpoint: checkpointIdentity(options.modelDir, weights.config) }
          : undefined,
      packedSessionCache:
        options.modelDir && options.cachePackedWeights
          ? { dir: defaultCacheDir(), checkpoint: checkpointIdentity(options.modelDir, weights.config) }
          : undefined,
    };
    if (options.cachePackedWeights && !options.modelDir)
      options.log(
        '--cache-packed-weights: weights not loaded from a checkpoint folder have nothing to key a cache by',
      );
    const onWorker = (options.onnxThread ?? 'worker') === 'worker';
    const onThisThread = !onWorker || mode === 'merged';
    if (onWorker && mode === 'merged')
      options.log("--lora-mode merged: the onnx engine runs on the server's thread, where it merges");
    let onnx: (Engine & { weightCacheNote: string | null; packedCacheNote: string | null }) | null = null;
    if (!onThisThread) {
      const { EngineThreadUnavailable, OnnxWorkerEngine } = await import('./onnx/onnx-worker-engine.js');
      try {
        onnx = await OnnxWorkerEngine.create(weights, pool, {
          ...onnxOptions,
          handOverWeights: options.handOverWeights ?? false,
        });
      } catch (error) {
        if (!(error instanceof EngineThreadUnavailable)) throw error;
        options.log(`${error.message}; the onnx engine runs on the server's thread (--onnx-thread main)`);
      }
    }
    onnx ??= await OnnxEngine.create(weights, pool, onnxOptions);
    if (onnx.weightCacheNote) options.log(onnx.weightCacheNote);
    if (onnx.packedCacheNote) options.log(onnx.packedCacheNote);
    engine = onnx;
  } else {
    const { ReferenceEngine } = await import('./reference/reference-engine.js');
    engine = ReferenceEngine.create(weights, pool);
    if (options.cachePackedWeights)
      options.log(
        '--cache-packed-weights: the reference engine packs no weights; the flag is for the onnx engine',
      );
  }
  if (mode !== 'merged') return engine;
  const { MergedLoraEngine } = await import('./merged-lora-engine.js');
  return new MergedLoraEngine(engine, weights);
}
