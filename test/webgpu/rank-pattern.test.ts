import { describe, expect, it } from 'vitest';
import type { SequenceStep } from '../../kernels/engine.js';
import { WebGpuEngine, type WebGpuEngineOptions } from '../../kernels/webgpu/webgpu-engine.js';
import { adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { RANK_PATTERN_SPEC, RSLORA_PATTERN_SPEC, worstDiffFromMerged } from '../kernels/rank-pattern-kit.js';
import { openSuiteContext, seededRandom, shuffle } from './gpu-test-kit.js';

/**
 * PEFT rank_pattern / alpha_pattern adapters on the webgpu engine: each token gathers its
 * module's own rank-rows and scale per (layer, module), prefill (MBGMM tiles) and decode (MBGMV),
 * compared with the dense forward pass of the weights merged per module.
 */
const ctx = await openSuiteContext('webgpu rank_pattern');

const weights = syntheticWeights({ ...TINY_SPEC, seed: 8 });
const config = weights.config;

describe.skipIf(!ctx)('rank_pattern adapters on the webgpu engine', () => {
  it.each([
    ['f32 weights', {}],
    ['f32, weights and pool split across bindings', { maxChunkBytes: 100 * 64 * 4 }],
  ] as Array<[string, WebGpuEngineOptions]>)(
    '%s: logits equal the per-module merged weights',
    async (_label, options) => {
      const pool = new PagePool(2000, config.hiddenSize);
      pool.free(shuffle(seededRandom(4), Array.from(pool.allocate(pool.numFree, 'kv'))));
      const gpu = await WebGpuEngine.create(weights, pool, { ...options, context: ctx! });
      const kv = new KvCache(pool, kvLayout(config));
      const stepOf = (
        seqId: number,
        tokens: number[],
        startPos: number,
        adapter: SequenceStep['adapter'],
        logits: SequenceStep['logits'],
      ): SequenceStep => {
        if (!kv.reserve(seqId, startPos + tokens.length)) throw new Error('test pool too small');
        return { seqId, tokens, startPos, pageTable: kv.pageTable(seqId), adapter, logits };
      };
      try {
        for (const [i, spec] of [RANK_PATTERN_SPEC, RSLORA_PATTERN_SPEC].entries()) {
          const adapter = syntheticAdapter(config, spec);
          const layout = layoutAdapter(
            config,
            adapter,
            pool.allocate(adapterPageCount(config, adapter), 'adapter'),
          );
          gpu.writeAdapter(layout, storeAdapter(adapter));
          expect(await worstDiffFromMerged(gpu, stepOf, weights, adapter, layout, i + 1)).toBeLessThan(1e-4);
        }
      } finally {
        await gpu.close();
      }
    },
  );
});
