import { describe, expect, it } from 'vitest';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import { runLogprobScenario, scenarioWeights } from '../kernels/logprobs-scenario.js';
import { openSuiteContext } from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu engine logprobs');

describe.skipIf(!ctx)('log-probabilities computed on the device by the webgpu engine', () => {
  it('match the reference engine’s log-softmax in a mixed batch, prompt scoring included', async () => {
    const { numChecked } = await runLogprobScenario(
      (h) => WebGpuEngine.create(scenarioWeights(), h.pool, { context: ctx! }),
      (engine, plan, sampling) => {
        if (!engine.sampleStep) throw new Error('the webgpu engine samples on the device');
        return engine.sampleStep(plan, sampling);
      },
    );
    expect(numChecked).toBeGreaterThan(20);
  });

  it('split over several submits when the scored rows’ logits would not fit one buffer', async () => {
    const { numChecked } = await runLogprobScenario(
      (h) => WebGpuEngine.create(scenarioWeights(), h.pool, { context: ctx!, maxLogitRows: 3 }),
      (engine, plan, sampling) => {
        if (!engine.sampleStep) throw new Error('the webgpu engine samples on the device');
        return engine.sampleStep(plan, sampling);
      },
    );
    expect(numChecked).toBeGreaterThan(20);
  });
});
