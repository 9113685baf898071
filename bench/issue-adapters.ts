import type { Engine } from '../kernels/engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import type { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import type { LoraAdapter } from '../model/lora-adapter.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { syntheticAdapter } from '../model/synthetic.js';

/**
 * Issue 10's adapters: `count` distinct seeded adapters of `rank` on all seven modules, alpha
 * twice the rank. The onnx benches and the llama.cpp LoRA bench measure the same ones.
 */
export function distinctAdapters(
  config: LlamaConfig,
  count: number,
  rank: number | readonly number[],
  prefix = 'bench',
): LoraAdapter[] {
  // A list of ranks is cycled over the adapters (S-LoRA's mixed 8–64).
  const rankOf = (i: number) => (typeof rank === 'number' ? rank : rank[i % rank.length]);
  return Array.from({ length: count }, (_, i) =>
    syntheticAdapter(config, {
      name: `${prefix}-${i}`,
      rank: rankOf(i),
      alpha: 2 * rankOf(i),
      targetModules: [...TARGET_MODULES],
      seed: 1000 + i,
    }),
  );
}

/** Each adapter placed on pages of `pool` and written there by `engine`, as a registry load does. */
export function placeAdapters(
  engine: Pick<Engine, 'writeAdapter'>,
  pool: PagePool,
  config: LlamaConfig,
  adapters: readonly LoraAdapter[],
): AdapterLayout[] {
  return adapters.map((a) => {
    const placed = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
    engine.writeAdapter(placed, storeAdapter(a));
    return placed;
  });
}
