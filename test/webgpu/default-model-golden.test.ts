import { describe, expect, it } from 'vitest';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import {
  GoldenRunner,
  goldenCases,
  goldenPool,
  loadDefaultModel,
  readGolden,
  rowRelativeError,
} from '../kernels/default-model-golden.js';
import { openSuiteContext } from './gpu-test-kit.js';

/**
 * The embedded default model on the webgpu engine against its training script's torch logits
 * (see test/kernels/default-model-golden.test.ts): f32 weights within 1e-4 of each row's scale
 * with the same greedy tokens; f16 weight storage within F16_RELATIVE_TOLERANCE. The checkpoint
 * is stored in f16, so f16 storage loses no weight bits: what remains is the f16 path's own
 * arithmetic.
 */
const ctx = await openSuiteContext('webgpu default model golden');
const golden = readGolden();
const F32_RELATIVE_TOLERANCE = 1e-4;
const F16_RELATIVE_TOLERANCE = 1e-3;

describe.skipIf(!ctx)('the default model on the webgpu engine', () => {
  it.each([
    ['f32', F32_RELATIVE_TOLERANCE],
    ['f16', F16_RELATIVE_TOLERANCE],
  ] as const)(
    '%s weights: logits of base and every adapter in one batch match the torch golden',
    async (weightDtype, tolerance) => {
      const { model, adapters } = await loadDefaultModel();
      const create = () =>
        WebGpuEngine.create(model.weights, goldenPool(model), { context: ctx!, weightDtype });
      // An adapter without shader-f16 (Dawn on an H200 offers none) refuses f16 storage by name.
      if (weightDtype === 'f16' && !ctx!.hasF16) {
        await expect(create()).rejects.toThrow(/has no shader-f16/);
        return;
      }
      const engine = await create();
      try {
        const cases = goldenCases(golden);
        const greedyTokens = weightDtype === 'f32' ? Math.max(...cases.map((c) => c.run.greedy.length)) : 1;
        const results = await new GoldenRunner(engine, adapters).run(
          cases.map((c) => ({ ids: c.prompt.ids, model: c.model })),
          greedyTokens,
        );
        let worst = 0;
        for (const [i, { prompt, model: name, run }] of cases.entries()) {
          for (const [position, row] of results[i].rows.entries())
            worst = Math.max(worst, rowRelativeError(row, run.logits[position], golden.column_stride));
          if (weightDtype === 'f32')
            expect(results[i].greedy, `${name} on ${JSON.stringify(prompt.prompt)}`).toEqual(run.greedy);
        }
        expect(worst).toBeLessThan(tolerance);
      } finally {
        await engine.close();
      }
    },
  );
});
