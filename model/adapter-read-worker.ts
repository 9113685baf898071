import { parentPort } from 'node:worker_threads';
import type { AdapterReadJob, AdapterReadResult } from './adapter-reader.js';
import { loadStoredAdapter } from './load-adapter.js';
import { ModelFormatError } from './model-format-error.js';

/**
 * The worker half of adapter-reader.ts: reads and checks adapters with its own event loop, so a
 * read's file operations follow each other at once instead of one per turn of a main thread that
 * onnxruntime holds for a whole step. The weights go back in shared memory, or by transfer, not copied.
 */
parentPort?.on('message', async ({ id, name, dir, config }: AdapterReadJob) => {
  let result: AdapterReadResult;
  let transfer: ArrayBuffer[] = [];
  try {
    const adapter = await loadStoredAdapter(name, dir, config);
    const buffers = new Set<ArrayBuffer>();
    // Shared memory (safetensors.ts readAllStored) crosses as it is; only a copy's buffer moves.
    for (const layer of adapter.layers)
      for (const pair of Object.values(layer))
        for (const m of [pair.a, pair.b])
          if (m.data.buffer instanceof ArrayBuffer) buffers.add(m.data.buffer);
    transfer = [...buffers];
    result = { id, ok: true, adapter };
  } catch (error) {
    result =
      error instanceof ModelFormatError
        ? { id, ok: false, file: error.file, problem: error.problem }
        : { id, ok: false, message: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(result, transfer);
});
