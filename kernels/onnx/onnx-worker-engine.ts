import './no-telemetry.js';
import type { Worker } from 'node:worker_threads';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { type KvLayout, kvLayout } from '../../memory/kv-layout.js';
import type { PagePool } from '../../memory/page-pool.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import type { TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import type { StoredLoraAdapter } from '../../model/stored-adapter.js';
import { startTypeScriptWorker } from '../../model/typescript-worker.js';
import { type Engine, EngineFailure, type EngineRunLimits, type StepPlan } from '../engine.js';
import type { WeightFormat } from '../weight-quantization.js';
import type { OnnxEngineOptions } from './onnx-engine.js';
import {
  type CreatedEngine,
  type FromEngineWorker,
  movableBuffers,
  portableSequences,
  portableWeights,
  rebuiltError,
  type ToEngineWorker,
} from './onnx-worker-protocol.js';

/** The engine's thread could not start (no engine was made, and the weights never left this thread). */
export class EngineThreadUnavailable extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'EngineThreadUnavailable';
  }
}

export interface OnnxWorkerEngineOptions extends OnnxEngineOptions {
  /**
   * Whether the caller hands the weights over: their buffers are moved to the worker instead of
   * copied (the arrays are empty here afterwards). A server that loaded the model for the engine
   * does; a caller that keeps using the weights must not.
   */
  handOverWeights?: boolean;
  /** The worker's module; default onnx-engine-worker.ts (tests give one that cannot start). */
  workerModule?: URL;
}

/**
 * The onnx engine on a worker thread (onnx-engine-worker.ts), behind the same Engine contract.
 * onnxruntime-node runs a session synchronously on the thread that calls it, so an OnnxEngine on
 * the server's thread holds its event loop for a whole step (tens to hundreds of milliseconds):
 * no request is parsed, no token streamed, no /health or /metrics answered, no adapter file read
 * meanwhile. Here the step runs on the worker and the server's thread only waits for its logits,
 * as it waits for a GPU. The page storage lives with the engine on the worker (onnxruntime-node
 * refuses tensors over a SharedArrayBuffer, so it cannot be shared); page bookkeeping stays here.
 * Writes and releases are posted in order and run between the steps posted around them.
 */
export class OnnxWorkerEngine implements Engine {
  readonly kind = 'onnx' as const;
  readonly ownThread = true;
  readonly kvLayout: KvLayout;
  readonly runLimits: EngineRunLimits;
  /** As OnnxEngine.graphLoraModules: the step graph's LoRA modules ([]: none). */
  readonly graphLoraModules: readonly TargetModule[] | undefined;
  readonly weightFormat: WeightFormat;
  readonly weightCacheNote: string | null;
  readonly packedCacheNote: string | null;
  private readonly layoutIds = new WeakMap<AdapterLayout, number>();
  private nextLayoutId = 1;
  private nextRequestId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (m: FromEngineWorker) => void; reject: (e: Error) => void }
  >();
  private failure: EngineFailure | null = null;
  private stacked = 0;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly config: LlamaConfig,
    readonly pool: PagePool,
    private readonly worker: Worker,
    created: CreatedEngine,
  ) {
    this.kvLayout = kvLayout(config);
    this.runLimits = created.runLimits;
    this.graphLoraModules = created.graphLoraModules;
    this.weightFormat = created.weightFormat;
    this.weightCacheNote = created.weightCacheNote;
    this.packedCacheNote = created.packedCacheNote;
    worker.on('message', (m: FromEngineWorker) => this.receive(m));
    worker.unref();
    worker.on('error', (error) => this.fail(`the onnx engine's thread failed: ${error.message}`, error));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(`the onnx engine's thread exited (code ${code})`);
    });
  }

  static async create(
    weights: ModelWeights,
    pool: PagePool,
    opts: OnnxWorkerEngineOptions = {},
  ): Promise<OnnxWorkerEngine> {
    const { handOverWeights, workerModule, ...options } = opts;
    const { weights: portable, buffers } = portableWeights(weights);
    let onMessage: (m: FromEngineWorker) => void = () => {};
    let worker: Worker;
    try {
      worker = startTypeScriptWorker(workerModule ?? new URL('./onnx-engine-worker.ts', import.meta.url));
    } catch (error) {
      throw new EngineThreadUnavailable((error as Error).message);
    }
    // Nothing crosses before the worker has loaded its module (onnxruntime included): a thread that
    // cannot start leaves the weights here, for an engine on this thread.
    let ready = false;
    const created = new Promise<CreatedEngine>((resolve, reject) => {
      onMessage = (m) => {
        if (m.type === 'ready') {
          ready = true;
          const message: ToEngineWorker = {
            type: 'create',
            weights: portable,
            numPages: pool.numPages,
            pageSize: pool.pageSize,
            options,
          };
          worker.postMessage(message, handOverWeights ? movableBuffers(buffers) : []);
        } else if (m.type === 'created') resolve(m.engine);
        else if (m.type === 'failed' && m.during === 'create') reject(rebuiltError(m.error));
      };
      const lost = (why: string) => reject(ready ? new Error(why) : new EngineThreadUnavailable(why));
      worker.on('message', onMessage);
      worker.on('error', (error) => lost(`the onnx engine's thread failed while starting: ${error.message}`));
      worker.on('exit', (code) => lost(`the onnx engine's thread exited (code ${code}) while starting`));
    });
    let engine: CreatedEngine;
    try {
      engine = await created;
    } catch (error) {
      await worker.terminate();
      throw error;
    } finally {
      worker.off('message', onMessage);
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
    }
    return new OnnxWorkerEngine(weights.config, pool, worker, engine);
  }

  async step(plan: StepPlan): Promise<Float32Array> {
    // One turn of the event loop first, as onnxruntime-node's own run waits for (a setImmediate):
    // the last step's tokens are streamed before this step takes the cores, not beside it. On a
    // machine whose cores the step uses all of, work beside a step delays its slowest thread.
    await new Promise((resolve) => setImmediate(resolve));
    const reply = await this.request((id) => ({
      type: 'step',
      id,
      sequences: portableSequences(plan, (layout) => this.writtenLayoutId(layout)),
    }));
    if (reply.type !== 'stepped') throw new Error(`onnx engine worker answered a step with '${reply.type}'`);
    this.stacked = reply.numStackedAdapters;
    return reply.logits;
  }

  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    let layoutId = this.layoutIds.get(layout);
    if (layoutId === undefined) {
      layoutId = this.nextLayoutId++;
      this.layoutIds.set(layout, layoutId);
    }
    // A host copy read from a file is in shared memory (safetensors.ts readAllStored) and crosses
    // as it is: host copies are never written after they are made, and the message keeps the
    // memory alive if the host store lets the adapter go. Other arrays are cloned as posted.
    this.post({ type: 'write', layoutId, layout, adapter });
  }

  releaseAdapter(layout: AdapterLayout): void {
    const layoutId = this.layoutIds.get(layout);
    if (layoutId === undefined) return;
    this.layoutIds.delete(layout);
    this.post({ type: 'release', layoutId });
  }

  /** Adapters in the engine's stacked slots after the last step. */
  get numStackedAdapters(): number {
    return this.stacked;
  }

  fatalFailure(): EngineFailure | null {
    return this.failure;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.failure) {
        try {
          await this.request((id) => ({ type: 'close', id }));
        } catch {
          // Terminated below either way.
        }
      }
      await this.worker.terminate();
      // Only a close that could not reach the thread leaves requests behind; they get an answer.
      for (const { reject } of this.pending.values()) reject(new Error('onnx engine is closed'));
      this.pending.clear();
    })();
    return this.closing;
  }

  private writtenLayoutId(layout: AdapterLayout): number {
    const id = this.layoutIds.get(layout);
    if (id === undefined)
      throw new Error(`adapter '${layout.name}' is in a step but was never written to the engine`);
    return id;
  }

  private request(message: (id: number) => ToEngineWorker): Promise<FromEngineWorker> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Alive while a step is awaited, as an engine on this thread keeps the process alive while it runs.
      this.worker.ref();
      this.post(message(id));
    });
  }

  private post(message: ToEngineWorker): void {
    if (this.failure) return;
    this.worker.postMessage(message);
  }

  private receive(m: FromEngineWorker): void {
    if (m.type === 'created' || m.type === 'ready') return;
    if (m.type === 'failed' && m.id === undefined) {
      // A write or release failed: what the engine holds no longer matches what the server thinks.
      this.fail(`the onnx engine could not ${m.during} an adapter: ${m.error.message}`);
      return;
    }
    const waiting = this.pending.get(m.id!);
    if (!waiting) return;
    this.pending.delete(m.id!);
    // Idle between steps: the thread alone must not keep the process alive.
    if (this.pending.size === 0) this.worker.unref();
    if (m.type === 'failed') waiting.reject(rebuiltError(m.error));
    else waiting.resolve(m);
  }

  private fail(message: string, cause?: unknown): void {
    if (this.failure || this.closing) return;
    this.failure = new EngineFailure(message, 'onnx engine thread lost', true, {
      cause,
    });
    for (const { reject } of this.pending.values()) reject(this.failure);
    this.pending.clear();
    void this.worker.terminate();
  }
}
