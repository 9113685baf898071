import { closeSync, openSync, readSync } from 'node:fs';
import { checkFiniteWeights } from './finite-check.js';
import { ModelFormatError } from './model-format-error.js';
import { startTypeScriptWorker } from './typescript-worker.js';

/** One F32 tensor to check, where it lies in its file. */
export interface FiniteScanJob {
  file: string;
  name: string;
  offset: number;
  length: number;
}

export type FiniteScanResult = { ok: true } | { ok: false; file: string; problem: string };

const CHUNK_BYTES = 16 << 20;

/**
 * Reads each tensor through one reused buffer and checks it (finite-check.ts); stops at the first
 * problem. Synchronous: it runs on a worker thread (finite-scan-worker.ts), or here as a fallback.
 */
export function scanFiniteF32(jobs: readonly FiniteScanJob[]): FiniteScanResult {
  const bytes = new Uint8Array(CHUNK_BYTES);
  const floats = new Float32Array(bytes.buffer);
  let current: { file: string; fd: number } | undefined;
  try {
    for (const { file, name, offset, length } of jobs) {
      if (current?.file !== file) {
        if (current) closeSync(current.fd);
        current = { file, fd: openSync(file, 'r') };
      }
      for (let done = 0; done < length; done += CHUNK_BYTES) {
        const want = Math.min(CHUNK_BYTES, length - done);
        let got = 0;
        while (got < want) {
          const n = readSync(current.fd, bytes, got, want - got, offset + done + got);
          if (n === 0) break;
          got += n;
        }
        if (got !== want)
          throw new ModelFormatError(
            file,
            `tensor "${name}": file ended after ${done + got} of ${length} bytes`,
          );
        checkFiniteWeights(file, name, floats.subarray(0, want / 4), done / 4);
      }
    }
    return { ok: true };
  } catch (err) {
    if (err instanceof ModelFormatError) return { ok: false, file: err.file, problem: err.problem };
    return {
      ok: false,
      file: current?.file ?? '',
      problem: err instanceof Error ? err.message : String(err),
    };
  } finally {
    if (current) closeSync(current.fd);
  }
}

/** scanFiniteF32 on this thread; throws the ModelFormatError naming the first bad weight. */
export function checkLinearWeightsNow(jobs: readonly FiniteScanJob[]): void {
  settle(scanFiniteF32(jobs));
}

function settle(result: FiniteScanResult): void {
  if (!result.ok) throw new ModelFormatError(result.file, result.problem);
}

/**
 * Checks F32 linear weights that stay in their files (the engine maps them) on a worker thread,
 * so reading 4 GB of them overlaps building the engine, which holds the main thread (onnxruntime
 * creates its session synchronously). Resolves when every tensor is checked; rejects with a
 * ModelFormatError naming the first bad one. Where no worker can start (a runtime without the
 * TypeScript loader the worker file needs), the check runs on this thread instead.
 */
export function checkLinearWeightsInBackground(jobs: readonly FiniteScanJob[]): Promise<void> {
  if (jobs.length === 0) return Promise.resolve();
  return new Promise<FiniteScanResult>((resolve) => {
    let answered = false;
    const worker = startTypeScriptWorker(new URL('./finite-scan-worker.ts', import.meta.url), {
      workerData: jobs,
    });
    worker.once('message', (result: FiniteScanResult) => {
      answered = true;
      resolve(result);
    });
    worker.once('error', () => {
      if (!answered) {
        answered = true;
        resolve(scanFiniteF32(jobs));
      }
    });
    worker.once('exit', () => {
      if (!answered) {
        answered = true;
        resolve(scanFiniteF32(jobs));
      }
    });
  }).then(settle);
}
