import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import {
  BASE,
  type DefaultModelUnderTest,
  GoldenRunner,
  goldenCases,
  goldenPool,
  loadDefaultModel,
  meanCrossEntropy,
  readGolden,
  rowRelativeError,
} from './default-model-golden.js';

/**
 * The embedded default model against the golden numbers its training script wrote from its own
 * torch forward pass: every prompt × (base, each demo adapter) in one mixed-adapter batch, logits
 * at every prompt position within 1e-4 of each row's scale (f32), and the same greedy tokens
 * through the KV cache. Then the adapters by meaning: each one's held-out text is likelier under
 * it than under the base model.
 */
const golden = readGolden();
const F32_RELATIVE_TOLERANCE = 1e-4;
/** As the webgpu f16 test: the trained weights are f16 already, so f16 storage loses nothing. */
const F16_RELATIVE_TOLERANCE = 1e-3;

let subject: DefaultModelUnderTest;
beforeAll(async () => {
  subject = await loadDefaultModel();
});

describe.each(['reference', 'onnx', 'onnx-f16'] as const)('the default model on the %s engine', (kind) => {
  let engine: Engine;
  let runner: GoldenRunner;

  beforeAll(async () => {
    const pool = goldenPool(subject.model);
    engine =
      kind === 'reference'
        ? ReferenceEngine.create(subject.model.weights, pool)
        : await OnnxEngine.create(subject.model.weights, pool, {
            threads: 1,
            weightFormat: kind === 'onnx-f16' ? 'f16' : 'f32',
          });
    runner = new GoldenRunner(engine, subject.adapters);
  });

  afterAll(async () => {
    await engine?.close();
  });

  it("matches the training script's torch logits and greedy tokens, base and every adapter in one batch", async () => {
    const cases = goldenCases(golden);
    const greedyTokens = Math.max(...cases.map((c) => c.run.greedy.length));
    const results = await runner.run(
      cases.map((c) => ({ ids: c.prompt.ids, model: c.model })),
      greedyTokens,
    );
    let worst = 0;
    for (const [i, { prompt, model, run }] of cases.entries()) {
      const label = `${model} on ${JSON.stringify(prompt.prompt)}`;
      for (const [position, row] of results[i].rows.entries())
        worst = Math.max(worst, rowRelativeError(row, run.logits[position], golden.column_stride));
      expect(
        results[i].rows.map((row) => row.indexOf(Math.max(...row))),
        label,
      ).toEqual(run.argmax);
      expect(results[i].greedy, label).toEqual(run.greedy);
    }
    expect(worst).toBeLessThan(kind === 'onnx-f16' ? F16_RELATIVE_TOLERANCE : F32_RELATIVE_TOLERANCE);
  });
});

describe('the demo adapters, by meaning (onnx engine)', () => {
  let engine: Engine;
  let runner: GoldenRunner;

  beforeAll(async () => {
    engine = await OnnxEngine.create(subject.model.weights, goldenPool(subject.model), { threads: 1 });
    runner = new GoldenRunner(engine, subject.adapters);
  });

  afterAll(async () => {
    await engine?.close();
  });

  it('each adapter makes its own held-out text likelier than the base model does', async () => {
    const names = [...subject.adapters.keys()];
    const texts = Object.entries(golden.held_out);
    expect(texts.map(([name]) => name).sort()).toEqual([...names].sort());
    for (const [name, heldOut] of texts) {
      expect(subject.model.tokenizer.encode(heldOut.text, false), name).toEqual(heldOut.ids);
      const [base, adapted] = await runner.run(
        [BASE, name].map((model) => ({ ids: heldOut.ids, model })),
        1,
      );
      const baseLoss = meanCrossEntropy(base.rows, heldOut.ids);
      const adapterLoss = meanCrossEntropy(adapted.rows, heldOut.ids);
      expect(baseLoss, `base on ${name}`).toBeCloseTo(heldOut.loss[BASE], 3);
      expect(adapterLoss, `${name} on its own text`).toBeCloseTo(heldOut.loss[name], 3);
      expect(adapterLoss, `${name} on its own text`).toBeLessThan(baseLoss);
    }
  });
});
