import { parentPort } from 'node:worker_threads';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import type { StepPlan } from '../engine.js';
import { OnnxEngine } from './onnx-engine.js';
import {
  type FromEngineWorker,
  portableError,
  type ToEngineWorker,
  weightsFromPortable,
} from './onnx-worker-protocol.js';

/**
 * The worker half of OnnxWorkerEngine: the OnnxEngine itself, with the page storage and the
 * stacked slots, on a thread of its own, so that onnxruntime's synchronous run does not hold the
 * server's event loop for a whole step. Messages run one after another in the order they were
 * posted (a write posted during a step lands after it, as a GPU queue orders a write after the
 * work submitted before it).
 */
const port = parentPort;
if (!port) throw new Error('onnx-engine-worker.ts runs as a worker thread');

let engine: OnnxEngine | null = null;
/** Layouts by the number the server's thread gave them: the engine keys its slots by the object. */
const layouts = new Map<number, AdapterLayout>();
let queue: Promise<void> = Promise.resolve();

function post(message: FromEngineWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

function started(): OnnxEngine {
  if (!engine) throw new Error('the onnx engine worker got a message before its engine was created');
  return engine;
}

async function handle(message: ToEngineWorker): Promise<void> {
  switch (message.type) {
    case 'create': {
      try {
        // Bookkeeping lives on the server's thread; the engine reads only the pool's shape.
        const pool = new PagePool(message.numPages, message.pageSize);
        engine = await OnnxEngine.create(weightsFromPortable(message.weights), pool, message.options);
        post({
          type: 'created',
          engine: {
            runLimits: engine.runLimits,
            graphLoraModules: engine.graphLoraModules,
            weightFormat: engine.weightFormat,
            weightCacheNote: engine.weightCacheNote,
            packedCacheNote: engine.packedCacheNote,
          },
        });
      } catch (error) {
        post({ type: 'failed', during: 'create', error: portableError(error) });
      }
      return;
    }
    case 'step': {
      try {
        const plan: StepPlan = {
          sequences: message.sequences.map(({ adapterId, ...s }) => ({ ...s, adapter: layoutOf(adapterId) })),
        };
        let logits = await started().step(plan);
        // onnxruntime's output may be a view of a bigger buffer; only an exact buffer moves.
        if (logits.byteOffset !== 0 || logits.byteLength !== logits.buffer.byteLength)
          logits = logits.slice();
        post({ type: 'stepped', id: message.id, logits, numStackedAdapters: started().numStackedAdapters }, [
          logits.buffer as ArrayBuffer,
        ]);
      } catch (error) {
        post({ type: 'failed', id: message.id, during: 'step', error: portableError(error) });
      }
      return;
    }
    case 'write': {
      try {
        let layout = layouts.get(message.layoutId);
        if (!layout) {
          layout = message.layout;
          layouts.set(message.layoutId, layout);
        }
        started().writeAdapter(layout, message.adapter);
      } catch (error) {
        post({ type: 'failed', during: 'write', error: portableError(error) });
      }
      return;
    }
    case 'release': {
      const layout = layouts.get(message.layoutId);
      layouts.delete(message.layoutId);
      try {
        if (layout) started().releaseAdapter(layout);
      } catch (error) {
        post({ type: 'failed', during: 'release', error: portableError(error) });
      }
      return;
    }
    case 'close': {
      try {
        await engine?.close();
        post({ type: 'closed', id: message.id });
      } catch (error) {
        post({ type: 'failed', id: message.id, during: 'close', error: portableError(error) });
      }
      return;
    }
  }
}

function layoutOf(adapterId: number | null): AdapterLayout | null {
  if (adapterId === null) return null;
  const layout = layouts.get(adapterId);
  if (!layout)
    throw new Error(`step names adapter layout ${adapterId}, which was never written to the engine`);
  return layout;
}

port.on('message', (message: ToEngineWorker) => {
  queue = queue.then(() => handle(message));
});
post({ type: 'ready' });
