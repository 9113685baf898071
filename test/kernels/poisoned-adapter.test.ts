import { describe, expect, it } from 'vitest';
import type { Engine } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import type { PagePool } from '../../memory/page-pool.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { healthyDrift, POISON_CASES, runPoisonScenario } from './poisoned-adapter-scenario.js';

const weights = syntheticWeights({ ...TINY_SPEC, seed: 21 });
const engines: Record<string, (pool: PagePool) => Promise<Engine>> = {
  reference: async (pool) => ReferenceEngine.create(weights, pool),
  'onnx (prepacked)': (pool) => OnnxEngine.create(weights, pool, { threads: 1 }),
  'onnx (inputs)': (pool) => OnnxEngine.create(weights, pool, { threads: 1, weights: 'inputs' }),
};

describe.each(Object.entries(engines))(
  '%s engine: a poisoned adapter leaves other tenants alone',
  (_name, create) => {
    it.each(POISON_CASES)(
      '%s weights on %s pages: healthy outputs beside it and on its freed pages are unchanged',
      async (_label, placement, poison) => {
        const outcome = await runPoisonScenario(weights, poison, placement, create);
        expect(outcome.poisoned.some((v) => !Number.isFinite(v))).toBe(true);
        expect(outcome.reusedPoisonPages).toBeGreaterThan(0);
        expect(healthyDrift(outcome.after, outcome.before)).toBeLessThan(1e-4);
        // Gathered adapters run as per-sequence segments: no other tenant's rows meet a poisoned
        // adapter's weights, on contiguous (slot) or scattered (segment) pages alike.
        expect(healthyDrift(outcome.beside, outcome.before)).toBeLessThan(1e-4);
      },
    );
  },
);
