import * as workerThreads from 'node:worker_threads';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { backLinearWeightsByFiles } from '../../model/file-backed-weights.js';
import { moduleWeightName, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { LM_HEAD_NAME } from '../../model/model-tensors.js';
import type { LayerWeights, ModelWeights } from '../../model/model-weights.js';
import { StartupError } from '../../model/startup-error.js';
import type { StoredLoraAdapter } from '../../model/stored-adapter.js';
import { EngineFailure, type EngineRunLimits, type SequenceStep, type StepPlan } from '../engine.js';
import type { WeightFormat } from '../weight-quantization.js';
import type { OnnxEngineOptions } from './onnx-engine.js';

/**
 * The messages between OnnxWorkerEngine (the server's thread) and onnx-engine-worker.ts (the
 * thread that runs onnxruntime), and how the objects they carry cross: typed arrays are cloned or
 * moved, and an adapter's layout travels once, with its write, then by number, because the engine
 * keeps per-adapter state keyed by the layout object (its stacked slots).
 */

/** Weights as they cross: every array in memory, and the linear weights left in their files as refs only. */
export interface PortableWeights {
  config: ModelWeights['config'];
  embedTokens: Float32Array;
  finalNorm: Float32Array;
  /** 'tied': the embedding table itself; null: file-backed (in `files`). */
  lmHead: Float32Array | 'tied' | null;
  /** Linear weights absent from `linear` are file-backed (in `files`). */
  layers: Array<{
    inputNorm: Float32Array;
    postAttentionNorm: Float32Array;
    linear: Partial<Record<TargetModule, Float32Array>>;
  }>;
  files?: ModelWeights['files'];
  checkpointDtype?: ModelWeights['checkpointDtype'];
}

export interface PortableSequenceStep extends Omit<SequenceStep, 'tokens' | 'adapter' | 'logprobs'> {
  tokens: Int32Array;
  /** The number the adapter's layout was written under (writeAdapter), or null for the base model. */
  adapterId: number | null;
}

export type ToEngineWorker =
  | {
      type: 'create';
      weights: PortableWeights;
      numPages: number;
      pageSize: number;
      options: OnnxEngineOptions;
    }
  | { type: 'step'; id: number; sequences: PortableSequenceStep[] }
  | { type: 'write'; layoutId: number; layout: AdapterLayout; adapter: StoredLoraAdapter }
  | { type: 'release'; layoutId: number }
  | { type: 'close'; id: number };

export interface CreatedEngine {
  runLimits: EngineRunLimits;
  graphLoraModules: readonly TargetModule[] | undefined;
  weightFormat: WeightFormat;
  weightCacheNote: string | null;
  packedCacheNote: string | null;
}

export type FromEngineWorker =
  /** The worker's module (onnxruntime with it) is loaded: it takes messages now. */
  | { type: 'ready' }
  | { type: 'created'; engine: CreatedEngine }
  | { type: 'stepped'; id: number; logits: Float32Array; numStackedAdapters: number }
  | { type: 'closed'; id: number }
  /** A request failed (id), creation failed (no id), or a write or release failed (no id, fatal). */
  | {
      type: 'failed';
      id?: number;
      during: 'create' | 'step' | 'write' | 'release' | 'close';
      error: PortableError;
    };

export interface PortableError {
  name: string;
  message: string;
  /** EngineFailure's. */
  clientMessage?: string;
  fatal?: boolean;
  /** ModelFormatError's. */
  file?: string;
  problem?: string;
}

export function portableError(error: unknown): PortableError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const out: PortableError = { name: error.name, message: error.message };
  if (error instanceof EngineFailure)
    Object.assign(out, { clientMessage: error.clientMessage, fatal: error.fatal });
  if (error instanceof ModelFormatError) Object.assign(out, { file: error.file, problem: error.problem });
  return out;
}

/** The error the engine threw on its thread, as the same class where the server tells classes apart. */
export function rebuiltError(e: PortableError): Error {
  if (e.name === 'EngineFailure')
    return new EngineFailure(e.message, e.clientMessage ?? e.message, e.fatal ?? false);
  if (e.name === 'StartupError') return new StartupError(e.message);
  if (e.name === 'ModelFormatError' && e.file !== undefined && e.problem !== undefined)
    return new ModelFormatError(e.file, e.problem);
  const error = new Error(e.message);
  error.name = e.name;
  return error;
}

/**
 * The model's weights for the worker, without reading a file-backed one (its getter would read the
 * whole tensor here), and the buffers behind the arrays: moved rather than copied when the caller
 * hands the weights over (the arrays are empty here afterwards).
 */
export function portableWeights(weights: ModelWeights): { weights: PortableWeights; buffers: ArrayBuffer[] } {
  const files = weights.files;
  const tied = weights.config.tieWordEmbeddings;
  const arrays: Float32Array[] = [weights.embedTokens, weights.finalNorm];
  const keep = (a: Float32Array) => {
    arrays.push(a);
    return a;
  };
  const layers = weights.layers.map((layer: LayerWeights, l) => {
    const linear: Partial<Record<TargetModule, Float32Array>> = {};
    for (const m of TARGET_MODULES)
      if (!files?.has(moduleWeightName(l, m))) linear[m] = keep(layer.linear[m]);
    return { inputNorm: keep(layer.inputNorm), postAttentionNorm: keep(layer.postAttentionNorm), linear };
  });
  let lmHead: PortableWeights['lmHead'];
  if (tied) lmHead = 'tied';
  else if (files?.has(LM_HEAD_NAME)) lmHead = null;
  else lmHead = keep(weights.lmHead);
  const portable: PortableWeights = {
    config: weights.config,
    embedTokens: weights.embedTokens,
    finalNorm: weights.finalNorm,
    lmHead,
    layers,
    files,
    checkpointDtype: weights.checkpointDtype,
  };
  return { weights: portable, buffers: [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))] };
}

/** The worker's ModelWeights: file-backed weights become file reads again (file-backed-weights.ts). */
export function weightsFromPortable(p: PortableWeights): ModelWeights {
  const missing = new Float32Array(0);
  const weights: ModelWeights = {
    config: p.config,
    embedTokens: p.embedTokens,
    finalNorm: p.finalNorm,
    lmHead: p.lmHead === 'tied' ? p.embedTokens : (p.lmHead ?? missing),
    layers: p.layers.map((layer) => ({
      inputNorm: layer.inputNorm,
      postAttentionNorm: layer.postAttentionNorm,
      linear: Object.fromEntries(TARGET_MODULES.map((m) => [m, layer.linear[m] ?? missing])) as Record<
        TargetModule,
        Float32Array
      >,
    })),
    ...(p.checkpointDtype ? { checkpointDtype: p.checkpointDtype } : {}),
  };
  if (p.files) {
    weights.files = p.files;
    backLinearWeightsByFiles(weights, p.files);
  }
  return weights;
}

/** A step's sequences as they cross: exact copies of their arrays (a view would carry its whole buffer). */
export function portableSequences(
  plan: StepPlan,
  layoutId: (layout: AdapterLayout) => number,
): PortableSequenceStep[] {
  return plan.sequences.map((s) => ({
    seqId: s.seqId,
    tokens: Int32Array.from(s.tokens),
    startPos: s.startPos,
    pageTable: s.pageTable.slice(),
    adapterId: s.adapter ? layoutId(s.adapter) : null,
    logits: s.logits,
  }));
}

/** Node ≥ 21's test for buffers that cannot move (Node's Buffer pool); absent on Node 20. */
const isMarkedAsUntransferable = (workerThreads as { isMarkedAsUntransferable?: (o: object) => boolean })
  .isMarkedAsUntransferable;

/**
 * Buffers that can be moved to another thread: all but Node's Buffer pool, shared by small
 * Buffers and marked untransferable (Node ≥ 21 throws on it, Node 20 copies it), which is cloned
 * with the message instead. Node 20 cannot ask, and its pool is Buffer.poolSize bytes.
 */
export function movableBuffers(buffers: readonly ArrayBuffer[]): ArrayBuffer[] {
  return buffers.filter((b) =>
    isMarkedAsUntransferable ? !isMarkedAsUntransferable(b) : b.byteLength > Buffer.poolSize,
  );
}
