import { mkdirSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { checkpointIdentity, weightCacheFile } from '../../kernels/onnx/weight-cache.js';
import type { WeightFormat } from '../../kernels/weight-quantization.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { syntheticConfig, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { tempDirForFile } from '../model/temp-dir.js';
import { randomTokens, referenceHarness } from './reference-harness.js';

const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 96, seed: 4 });
const tempDir = tempDirForFile('loom-weight-cache-');

/** Creates an engine over the cache and returns its note and the logits of one fixed prefill. */
async function run(format: WeightFormat, dir: string, checkpoint: string, model: ModelWeights = weights) {
  const harness = referenceHarness(model, 200);
  const engine = await OnnxEngine.create(model, harness.pool, {
    threads: 1,
    weightFormat: format,
    weightCache: { dir, checkpoint },
  });
  const plan: StepPlan = {
    sequences: [harness.sequenceStep(1, randomTokens(6, weights.config.vocabSize, 8), 0, null, 'all')],
  };
  const logits = await engine.step(plan);
  await engine.close();
  return { note: engine.weightCacheNote, logits };
}

/** The same weights, but reading a linear layer's (or lm_head's) array throws. */
function untouchable(model: ModelWeights): ModelWeights {
  const guard = <T extends object>(target: T, key: keyof T & string) =>
    Object.defineProperty(target, key, {
      get: () => {
        throw new Error(`${key} was read`);
      },
    });
  const copy: ModelWeights = {
    ...model,
    layers: model.layers.map((l) => ({ ...l, linear: { ...l.linear } })),
  };
  for (const layer of copy.layers) for (const m of TARGET_MODULES) guard(layer.linear, m);
  guard(copy, 'lmHead');
  return copy;
}

describe('the encoded-weight cache on disk', () => {
  it.each(['int4', 'int8'] as const)(
    '%s: a second start maps what the first wrote, without reading the f32 weights, same logits',
    async (format) => {
      const dir = join(tempDir(), format);
      const file = weightCacheFile({ dir, checkpoint: 'ckpt-a' }, format);
      const first = await run(format, dir, 'ckpt-a');
      expect(first.note).toBe(`${format} weights encoded and written to ${file}, then mapped from it`);
      const second = await run(format, dir, 'ckpt-a', untouchable(weights));
      expect(second.note).toBe(`${format} weights mapped from ${file}`);
      expect(second.logits).toEqual(first.logits);
      // The same weights handed over in memory (no cache) give the same logits.
      const harness = referenceHarness(weights, 200);
      const inMemory = await OnnxEngine.create(weights, harness.pool, { threads: 1, weightFormat: format });
      const plan: StepPlan = {
        sequences: [harness.sequenceStep(1, randomTokens(6, weights.config.vocabSize, 8), 0, null, 'all')],
      };
      expect(await inMemory.step(plan)).toEqual(first.logits);
      await inMemory.close();
    },
  );

  it('f16: a second start reads what the first wrote, same logits', async () => {
    const dir = join(tempDir(), 'f16');
    const first = await run('f16', dir, 'ckpt-a');
    expect(first.note).toMatch(/^f16 weights encoded and written to /);
    const second = await run('f16', dir, 'ckpt-a');
    expect(second.note).toBe(
      `f16 weights read from ${weightCacheFile({ dir, checkpoint: 'ckpt-a' }, 'f16')}`,
    );
    expect(second.logits).toEqual(first.logits);
  });

  it('misses on another checkpoint or a file cut short, and then rewrites it', async () => {
    const dir = join(tempDir(), 'misses');
    await run('int4', dir, 'ckpt-a');
    expect((await run('int4', dir, 'ckpt-b')).note).toMatch(/encoded and written/);
    expect(readdirSync(dir)).toHaveLength(2);
    const file = weightCacheFile({ dir, checkpoint: 'ckpt-a' }, 'int4');
    truncateSync(file, 4000);
    const cut = await run('int4', dir, 'ckpt-a');
    expect(cut.note).toMatch(/encoded and written/);
    expect((await run('int4', dir, 'ckpt-a')).note).toMatch(/mapped from/);
  });

  it('says why when the cache cannot be written, and still serves', async () => {
    const blocker = join(tempDir(), 'not-a-folder');
    writeFileSync(blocker, 'x');
    const result = await run('int8', blocker, 'ckpt-a');
    expect(result.note).toMatch(/^int8 weights encoded; could not write .*not-a-folder/);
    expect(result.logits.length).toBe(6 * weights.config.vocabSize);
  });

  /** A checkpoint folder of stand-in files: identity reads names, sizes and mtimes only. */
  const standInCheckpoint = (name: string): string => {
    const model = join(tempDir(), name);
    mkdirSync(model, { recursive: true });
    writeFileSync(join(model, 'config.json'), '{}');
    writeFileSync(join(model, 'model.safetensors'), 'aaaa');
    return model;
  };

  it('keys a checkpoint by its files: a safetensors file that changes size changes the identity', () => {
    const model = standInCheckpoint('ckpt');
    const before = checkpointIdentity(model);
    expect(checkpointIdentity(model)).toBe(before);
    writeFileSync(join(model, 'model.safetensors'), 'aaaaaaaa');
    expect(checkpointIdentity(model)).not.toBe(before);
  });

  it('keys it by the config it was loaded with too: --hf-overrides can change what lm_head is', () => {
    const model = standInCheckpoint('ckpt-config');
    const config = syntheticConfig(TINY_SPEC);
    const asFiled = checkpointIdentity(model, config);
    expect(checkpointIdentity(model, { ...config })).toBe(asFiled);
    expect(checkpointIdentity(model, { ...config, tieWordEmbeddings: !config.tieWordEmbeddings })).not.toBe(
      asFiled,
    );
  });
});
