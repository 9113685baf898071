import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticConfig, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness, seededUniform } from './reference-harness.js';

/**
 * A head size that is not hidden/heads (as Qwen and Gemma configs allow): K/V of a token fill
 * only part of a page (kvDim 48 of 64) and the q/o projections are 96 wide, so past-KV pages,
 * o_proj's A rows and q_proj's Bᵀ rows all end in a partly used page the graph must slice off.
 */
const config: LlamaConfig = { ...syntheticConfig({ ...TINY_SPEC, intermediateSize: 80 }), headDim: 24 };

function randomWeights(c: LlamaConfig, seed: number): ModelWeights {
  const random = seededUniform(seed);
  const uniform = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (2 * random() - 1) * scale);
  const norm = () => Float32Array.from({ length: c.hiddenSize }, () => 0.8 + 0.4 * random());
  return {
    config: c,
    embedTokens: uniform(c.vocabSize * c.hiddenSize, 1),
    finalNorm: norm(),
    lmHead: uniform(c.vocabSize * c.hiddenSize, 1 / Math.sqrt(c.hiddenSize)),
    layers: Array.from({ length: c.numLayers }, () => {
      const linear = {} as Record<TargetModule, Float32Array>;
      for (const m of TARGET_MODULES) {
        const { inFeatures, outFeatures } = moduleShape(c, m);
        linear[m] = uniform(inFeatures * outFeatures, Math.sqrt(3 / inFeatures));
      }
      return { inputNorm: norm(), postAttentionNorm: norm(), linear };
    }),
  };
}

describe('onnx engine with K/V and LoRA rows that end mid-page', () => {
  it('matches the reference engine through prefill and decode', async () => {
    const weights = randomWeights(config, 77);
    const ref = referenceHarness(weights, 1500, 13);
    const onnx = await OnnxEngine.create(weights, ref.pool, { threads: 1 });
    try {
      const adapter = syntheticAdapter(config, {
        name: 'wide',
        rank: 12,
        alpha: 24,
        targetModules: ['q_proj', 'o_proj', 'down_proj'],
        seed: 3,
      });
      const layout = ref.load(adapter);
      onnx.writeAdapter(layout, storeAdapter(adapter));
      const a = randomTokens(5, config.vocabSize, 1);
      const b = randomTokens(2, config.vocabSize, 2);
      let plan: StepPlan = {
        sequences: [ref.sequenceStep(1, a, 0, layout, 'all'), ref.sequenceStep(2, b, 0, null, 'last')],
      };
      for (let d = 0; d < 4; d++) {
        expect(maxAbsDiff(await onnx.step(plan), await ref.engine.step(plan))).toBeLessThan(1e-4);
        plan = {
          sequences: [
            ref.sequenceStep(1, [d + 3], 5 + d, layout, 'last'),
            ref.sequenceStep(2, [d + 4], 2 + d, null, 'last'),
          ],
        };
      }
    } finally {
      await onnx.close();
    }
  });
});
