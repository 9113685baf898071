import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import type { PagePool } from '../../memory/page-pool.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const spec = { ...TINY_SPEC, seed: 31 };

/** An engine over weights made in memory that nothing else holds; a WeakRef to one of them. */
async function engineOverOwnWeights(
  pool: PagePool,
): Promise<{ engine: OnnxEngine; probe: WeakRef<ArrayBufferLike> }> {
  const weights = syntheticWeights(spec);
  const engine = await OnnxEngine.create(weights, pool, { threads: 1 });
  return { engine, probe: new WeakRef(weights.layers[0].linear.gate_proj.buffer) };
}

it('lets go of the host weight arrays onnxruntime copied, and computes the same logits after they are collected', async () => {
  const ref = referenceHarness(syntheticWeights(spec), 400);
  const { engine, probe } = await engineOverOwnWeights(ref.pool);
  try {
    for (let i = 0; i < 3 && probe.deref(); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    expect(probe.deref()).toBeUndefined();
    // Whatever reuses the freed memory must not show up in the logits.
    const litter = Array.from({ length: 8 }, () => new Float32Array(1 << 16).fill(Number.NaN));
    const plan = {
      sequences: [ref.sequenceStep(1, randomTokens(6, spec.vocabSize, 2), 0, null, 'all' as const)],
    };
    const expected = await ref.engine.step(plan);
    const actual = await engine.step(plan);
    expect(litter).toHaveLength(8);
    expect(actual.length).toBe(expected.length);
    expect(maxAbsDiff(actual, expected)).toBeLessThan(1e-4);
  } finally {
    await engine.close();
  }
});
