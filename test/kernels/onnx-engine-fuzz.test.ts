import { describe, expect, it } from 'vitest';
import type { SequenceStep } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness, seededUniform } from './reference-harness.js';

/**
 * Seeded random plans against the reference engine: odd ranks, random target modules, random
 * chunk sizes (chunked prefill, decode and scoring mixed in one step), random logit requests,
 * sequences joining and leaving. Failures name the seed and step.
 */
describe('onnx engine on random plans', () => {
  it.each([1, 2, 3])('matches the reference engine (seed %i)', async (seed) => {
    const random = seededUniform(seed);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)];
    const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 112, seed: 30 + seed });
    const config = weights.config;
    const ref = referenceHarness(weights, 3000, seed);
    const onnx = await OnnxEngine.create(weights, ref.pool, { threads: 1, maxChunkTokens: 8 });
    try {
      // Rank 37 beside 2, 5 and 11: gathered (the pool is shuffled), it is cut into rank chunks.
      const adapters = [2, 5, 11, 37].map((rank, i) => {
        const targetModules = TARGET_MODULES.filter(() => random() < 0.5);
        const adapter = syntheticAdapter(config, {
          name: `fuzz${i}`,
          rank,
          alpha: rank + 3,
          targetModules: targetModules.length > 0 ? targetModules : (['o_proj'] as TargetModule[]),
          seed: seed * 10 + i,
        });
        const layout = ref.load(adapter);
        onnx.writeAdapter(layout, storeAdapter(adapter));
        return layout;
      });
      const live = new Map<number, { pos: number; adapter: (typeof adapters)[number] | null }>();
      let nextId = 1;
      for (let stepNo = 0; stepNo < 8; stepNo++) {
        while (live.size < 4 && random() < 0.7)
          live.set(nextId++, { pos: 0, adapter: pick([null, ...adapters]) });
        const sequences: SequenceStep[] = [];
        for (const [id, s] of live) {
          const n = s.pos === 0 ? 1 + Math.floor(random() * 12) : pick([1, 1, 1, 3]);
          const logits = pick(['last', 'last', 'all', 'none'] as const);
          sequences.push(
            ref.sequenceStep(
              id,
              randomTokens(n, config.vocabSize, seed * 1000 + stepNo * 10 + id),
              s.pos,
              s.adapter,
              logits,
            ),
          );
          s.pos += n;
        }
        if (sequences.length === 0) continue;
        const plan = { sequences };
        const diff = maxAbsDiff(await onnx.step(plan), await ref.engine.step(plan));
        expect(diff, `seed ${seed}, step ${stepNo}`).toBeLessThan(1e-4);
        for (const [id, s] of live) {
          if (s.pos > 14 && random() < 0.5) {
            live.delete(id);
            ref.kv.free(id);
          }
        }
      }
    } finally {
      await onnx.close();
    }
  });
});
