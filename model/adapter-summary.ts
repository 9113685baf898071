import type { LlamaConfig } from './llama-config.js';
import { TARGET_MODULES, type TargetModule } from './llama-modules.js';
import { checkAdapter } from './load-adapter.js';

/** What registering an adapter needs to know, read without its weights. */
export interface AdapterSummary {
  rank: number;
  /** targets[layer] = the modules the adapter holds an A/B pair for in that layer. */
  targets: TargetModule[][];
}

/**
 * Checks an adapter directory against the base model as loadAdapter does (config, tensor names
 * and shapes in the safetensors header) without reading any weights: thousands of adapters
 * register in seconds this way, and the weights are read when the adapter is first used.
 */
export async function summarizeAdapter(dir: string, config: LlamaConfig): Promise<AdapterSummary> {
  const checked = await checkAdapter(dir, config);
  return {
    rank: checked.rank,
    targets: checked.layers.map((layer) => TARGET_MODULES.filter((m) => layer[m])),
  };
}
