import type { Worker } from 'node:worker_threads';
import type { LlamaConfig } from './llama-config.js';
import { loadStoredAdapter } from './load-adapter.js';
import { ModelFormatError } from './model-format-error.js';
import type { StoredLoraAdapter } from './stored-adapter.js';
import { startTypeScriptWorker } from './typescript-worker.js';

export interface AdapterReadJob {
  id: number;
  name: string;
  dir: string;
  config: LlamaConfig;
}

export type AdapterReadResult =
  | { id: number; ok: true; adapter: StoredLoraAdapter }
  | { id: number; ok: false; file: string; problem: string }
  | { id: number; ok: false; message: string; file?: undefined };

/**
 * loadStoredAdapter on a worker thread (adapter-read-worker.ts). On the main thread a read is a
 * dozen file operations, each continued on a later turn of the event loop, and an onnx engine on
 * that thread (--onnx-thread main) holds the loop for a whole step (onnxruntime-node runs a session
 * synchronously): in the TinyLlama
 * trace a 25 MB adapter took 6.6 s to read (median), against ~30 ms alone. Errors come back as
 * the same ModelFormatError. Where no worker can start (startTypeScriptWorker fails), reads run on
 * this thread, as before.
 */
export class AdapterReader {
  private worker: Worker | null = null;
  private workerFailed = false;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { job: AdapterReadJob; resolve: (a: StoredLoraAdapter) => void; reject: (e: unknown) => void }
  >();

  constructor(private readonly config: LlamaConfig) {}

  /** Whether reads go through the worker (false once it failed to start: they run here). */
  get usesWorker(): boolean {
    return !this.workerFailed;
  }

  /** Starts the worker ahead of the first read (its start, ~150 ms, would delay that read). */
  start(): void {
    this.startedWorker();
  }

  read(name: string, dir: string): Promise<StoredLoraAdapter> {
    const worker = this.startedWorker();
    if (!worker) return loadStoredAdapter(name, dir, this.config);
    const job: AdapterReadJob = { id: this.nextId++, name, dir, config: this.config };
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { job, resolve, reject });
      worker.ref();
      worker.postMessage(job);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.workerFailed = true;
    this.runPendingHere();
    if (worker) await worker.terminate();
  }

  private startedWorker(): Worker | null {
    if (this.workerFailed) return null;
    if (this.worker) return this.worker;
    let worker: Worker;
    try {
      worker = startTypeScriptWorker(new URL('./adapter-read-worker.ts', import.meta.url));
    } catch {
      this.workerFailed = true;
      return null;
    }
    worker.on('message', (result: AdapterReadResult) => this.settle(result));
    // A worker that cannot load its file (or dies) hands its reads back to this thread.
    const fail = () => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.workerFailed = true;
      this.runPendingHere();
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(result: AdapterReadResult): void {
    const waiting = this.pending.get(result.id);
    if (!waiting) return;
    this.pending.delete(result.id);
    // Idle between reads: the worker must not keep the process alive.
    if (this.pending.size === 0) this.worker?.unref();
    if (result.ok) waiting.resolve(result.adapter);
    else if (result.file !== undefined) waiting.reject(new ModelFormatError(result.file, result.problem));
    else waiting.reject(new Error(result.message));
  }

  private runPendingHere(): void {
    const jobs = [...this.pending.values()];
    this.pending.clear();
    for (const { job, resolve, reject } of jobs)
      loadStoredAdapter(job.name, job.dir, job.config).then(resolve, reject);
  }
}
