import type { Engine } from '../kernels/engine.js';
import type { PagePool } from '../memory/page-pool.js';
import type { ModelWeights } from '../model/model-weights.js';
import { StartupError } from './startup-error.js';

export const ENGINE_CHOICES = ['auto', 'onnx', 'reference', 'webgpu'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

/**
 * The one place that maps --engine onto an implementation. `auto` means onnx until the
 * WebGPU engine is wired in here (it will then pick webgpu on a hardware adapter). Engines
 * load lazily, so a server never loads the native libraries of engines it does not run.
 */
export async function createEngine(
  choice: EngineChoice,
  weights: ModelWeights,
  pool: PagePool,
): Promise<Engine> {
  assertEngineAvailable(choice);
  switch (choice) {
    case 'auto':
    case 'onnx': {
      const { OnnxEngine } = await import('../kernels/onnx/onnx-engine.js');
      return OnnxEngine.create(weights, pool);
    }
    case 'reference': {
      const { ReferenceEngine } = await import('../kernels/reference/reference-engine.js');
      return ReferenceEngine.create(weights, pool);
    }
    case 'webgpu':
      throw unavailable(choice);
  }
}

/** Called before the model loads, so an unavailable engine fails in milliseconds, not after loading. */
export function assertEngineAvailable(choice: EngineChoice): void {
  if (choice === 'webgpu') throw unavailable(choice);
}

function unavailable(choice: EngineChoice): StartupError {
  return new StartupError(`--engine ${choice}: the WebGPU engine is not available yet (use --engine onnx)`);
}
