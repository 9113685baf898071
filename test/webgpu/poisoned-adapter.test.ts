import { describe, expect, it } from 'vitest';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { healthyDrift, POISON_CASES, runPoisonScenario } from '../kernels/poisoned-adapter-scenario.js';
import { openSuiteContext } from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu poisoned adapter');
const weights = syntheticWeights({ ...TINY_SPEC, seed: 21 });

describe.skipIf(!ctx)('webgpu engine: a poisoned adapter leaves other tenants alone', () => {
  it.each(POISON_CASES)(
    '%s weights on %s pages: healthy outputs beside it and on its freed pages are unchanged',
    async (_label, placement, poison) => {
      const outcome = await runPoisonScenario(weights, poison, placement, (pool) =>
        WebGpuEngine.create(weights, pool, { context: ctx! }),
      );
      expect(outcome.poisoned.some((v) => !Number.isFinite(v))).toBe(true);
      expect(outcome.reusedPoisonPages).toBeGreaterThan(0);
      expect(healthyDrift(outcome.after, outcome.before)).toBeLessThan(1e-4);
      expect(healthyDrift(outcome.beside, outcome.before)).toBeLessThan(1e-4);
    },
  );
});
