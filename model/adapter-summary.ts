import type { LlamaConfig } from './llama-config.js';
import { TARGET_MODULES, type TargetModule } from './llama-modules.js';
import { checkAdapter } from './load-adapter.js';

/** What registering an adapter needs to know, read without its weights. */
export interface AdapterSummary {
  /** The largest rank of its modules (what --max-lora-rank is checked against). */
  rank: number;
  /**
   * ranks[layer][module] = the rank of the A/B pair the adapter holds for that layer's module
   * (absent where it holds none): rank_pattern can make them differ, and pages are counted per rank-row.
   */
  ranks: Array<Partial<Record<TargetModule, number>>>;
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
    ranks: checked.layers.map((layer) => {
      const ranks: Partial<Record<TargetModule, number>> = {};
      for (const m of TARGET_MODULES) {
        const pair = layer[m];
        if (pair) ranks[m] = pair.rank;
      }
      return ranks;
    }),
  };
}
