import type { Engine } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { ReferenceEngine } from '../kernels/reference/reference-engine.js';
import type { PagePool } from '../memory/page-pool.js';
import type { ModelWeights } from '../model/model-weights.js';
import { StartupError } from './startup-error.js';

export const ENGINE_CHOICES = ['auto', 'onnx', 'reference', 'webgpu'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

/**
 * The one place that maps --engine onto an implementation. `auto` means onnx until the
 * WebGPU engine is wired in here (it will then pick webgpu on a hardware adapter).
 */
export async function createEngine(
  choice: EngineChoice,
  weights: ModelWeights,
  pool: PagePool,
): Promise<Engine> {
  assertEngineAvailable(choice);
  switch (choice) {
    case 'auto':
    case 'onnx':
      return OnnxEngine.create(weights, pool);
    case 'reference':
      return ReferenceEngine.create(weights, pool);
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
