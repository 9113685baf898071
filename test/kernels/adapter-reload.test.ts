import { describe, expect, it } from 'vitest';
import type { Engine } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { adapterPageCount } from '../../memory/adapter-layout.js';
import { AdapterRegistry } from '../../memory/adapter-registry.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';

const weights = syntheticWeights({ ...TINY_SPEC, seed: 21 });
const { config } = weights;
const SPECS: Record<string, { rank: number; alpha: number; targetModules: TargetModule[]; seed: number }> = {
  a: { rank: 8, alpha: 16, targetModules: [...TARGET_MODULES], seed: 1 },
  b: { rank: 3, alpha: 6, targetModules: ['q_proj', 'down_proj'], seed: 2 },
};

async function withEngine(kind: 'reference' | 'onnx', pool: PagePool): Promise<Engine> {
  return kind === 'onnx'
    ? OnnxEngine.create(weights, pool, { threads: 1 })
    : ReferenceEngine.create(weights, pool);
}

describe.each(['reference', 'onnx'] as const)('an adapter evicted and reloaded (%s engine)', (kind) => {
  it('gives bit-identical logits from other pages', async () => {
    const pool = new PagePool(600, config.hiddenSize);
    const engine = await withEngine(kind, pool);
    const kv = new KvCache(pool, kvLayout(config));
    const registry = new AdapterRegistry(
      pool,
      engine,
      {
        inspect: async () => ({ rank: 1, numPages: 1 }),
        read: async (name) => storeAdapter(syntheticAdapter(config, { name, ...SPECS[name] })),
        pagesOf: (adapter) => adapterPageCount(config, adapter),
      },
      { maxLoras: 1, maxCpuLoras: 2, maxLoraRank: 64, pagesForFullContext: 0 },
      config,
    );
    await registry.load('a', '/a', false);
    await registry.load('b', '/b', false);
    const prompt = [5, 17, 42, 99, 3, 250, 7];
    const logitsWith = async (seqId: number) => {
      registry.planStep([], ['a'], 0);
      registry.endPlanning();
      const layout = registry.layoutOf('a');
      if (!layout) throw new Error('a is not resident');
      kv.reserve(seqId, prompt.length);
      const logits = await engine.step({
        sequences: [
          {
            seqId,
            tokens: prompt,
            startPos: 0,
            pageTable: kv.pageTable(seqId),
            adapter: layout,
            logits: 'all',
          },
        ],
      });
      kv.free(seqId);
      return { logits, pages: Array.from(layout.allPages) };
    };
    try {
      const first = await logitsWith(1);
      // b takes a's place; KV pages held meanwhile push a's next pages elsewhere.
      registry.planStep([], ['b'], 0);
      registry.endPlanning();
      expect(registry.isResident('a')).toBe(false);
      kv.reserve(99, 40);
      const second = await logitsWith(2);
      expect(second.pages).not.toEqual(first.pages);
      expect(Buffer.from(second.logits.buffer).equals(Buffer.from(first.logits.buffer))).toBe(true);
      expect(registry.counters.numEvictions).toBe(2);
    } finally {
      await engine.close();
    }
  });
});
