import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { moduleWeightName, TARGET_MODULES } from '../../model/llama-modules.js';
import { type FileReadProgress, loadModel } from '../../model/load-model.js';
import { LM_HEAD_NAME } from '../../model/model-tensors.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { syntheticAdapter, TINY_SPEC, writeSyntheticModel } from '../../model/synthetic.js';
import { tempDirForFile } from '../model/temp-dir.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * A model loaded from F32 safetensors keeps its linear weights in the files: the onnx engine
 * hands onnxruntime their file offsets (it maps them) and never reads them into host arrays,
 * with and without prepacking, and its logits still match the reference engine's over the same
 * weights made in memory.
 */
const dir = tempDirForFile('loom-file-backed-');
const TOLERANCE = 1e-4;

/** Every file-backed linear weight becomes a property that fails the test if read. */
function forbidHostReads(weights: ModelWeights): void {
  const forbid = (target: object, key: string, name: string) =>
    Object.defineProperty(target, key, {
      get: () => {
        throw new Error(`${name} was read into a host array`);
      },
    });
  weights.layers.forEach((layer, l) => {
    for (const m of TARGET_MODULES) forbid(layer.linear, m, moduleWeightName(l, m));
  });
  if (!weights.config.tieWordEmbeddings) forbid(weights, 'lmHead', LM_HEAD_NAME);
}

describe.each([
  { shards: 2, tie: false, prepackWeights: true },
  { shards: 1, tie: true, prepackWeights: true },
  { shards: 2, tie: false, prepackWeights: false },
])(
  'file-backed weights ($shards shards, tied $tie, prepack $prepackWeights)',
  ({ shards, tie, prepackWeights }) => {
    const spec = { ...TINY_SPEC, intermediateSize: 96, seed: 23, tieWordEmbeddings: tie };

    it('loads them with one progress report per file and serves logits equal to the reference', async () => {
      const modelDir = join(dir(), `m-${shards}-${tie}-${prepackWeights}`);
      const inMemory = await writeSyntheticModel(modelDir, spec, { shards });
      const reports: FileReadProgress[] = [];
      const loaded = await loadModel(modelDir, { onFileRead: (r) => reports.push(r) });

      expect(reports.map((r) => r.file).sort()).toEqual([...new Set(reports.map((r) => r.file))].sort());
      expect(reports).toHaveLength(shards);
      const linearBytes = [...loaded.weights.files!.entries()]
        .filter(([name]) => name !== LM_HEAD_NAME || !tie)
        .reduce((sum, [, ref]) => sum + ref.length, 0);
      expect(reports.reduce((sum, r) => sum + r.fileBackedBytes, 0)).toBe(linearBytes);
      for (const r of reports) {
        // Header and padding aside, a file's bytes are the tensors the model uses.
        expect(r.bytes).toBeLessThanOrEqual((await stat(r.file)).size);
        expect(r.bytes).toBeGreaterThan(r.fileBackedBytes);
      }
      // The lazy host copy is the file's data (what the reference, webgpu and merging engines read).
      expect(maxAbsDiff(loaded.weights.layers[1].linear.up_proj, inMemory.layers[1].linear.up_proj)).toBe(0);

      const reloaded = await loadModel(modelDir);
      forbidHostReads(reloaded.weights);
      const ref = referenceHarness(inMemory, 600);
      const onnx = await OnnxEngine.create(reloaded.weights, ref.pool, { threads: 1, prepackWeights });
      try {
        const adapter = syntheticAdapter(inMemory.config, {
          name: 'a',
          rank: 8,
          alpha: 16,
          targetModules: [...TARGET_MODULES],
          seed: 5,
        });
        const layout = ref.loadInto([onnx], adapter);
        const prompt = randomTokens(7, spec.vocabSize, 3);
        const plans = [
          {
            sequences: [
              ref.sequenceStep(1, prompt, 0, layout, 'last' as const),
              ref.sequenceStep(2, prompt.slice(0, 4), 0, null, 'all' as const),
            ],
          },
          {
            sequences: [
              ref.sequenceStep(1, [9], 7, layout, 'last' as const),
              ref.sequenceStep(2, [11], 4, null, 'last' as const),
            ],
          },
        ];
        for (const plan of plans) {
          const expected = await ref.engine.step(plan);
          const actual = await onnx.step(plan);
          expect(actual.length).toBe(expected.length);
          expect(maxAbsDiff(actual, expected)).toBeLessThan(TOLERANCE);
        }
      } finally {
        await onnx.close();
      }
    });
  },
);
