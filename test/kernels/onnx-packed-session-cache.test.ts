import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { GraphBuilder } from '../../kernels/onnx/onnx-model.js';
import { createPackedSession, packedSessionSlot } from '../../kernels/onnx/packed-session-cache.js';
import { checkpointIdentity } from '../../kernels/onnx/weight-cache.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { loadModel } from '../../model/load-model.js';
import { syntheticAdapter, TINY_SPEC, writeSyntheticModel } from '../../model/synthetic.js';
import { tempDirForFile } from '../model/temp-dir.js';
import { maxAbsDiff, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * The onnx engine's session saved with its packed weights and mapped at the next start
 * (packed-session-cache.ts): the mapped session must step exactly as the one it was saved from,
 * adapters included (its LoRA branches are the nested Ifs onnxruntime saves wrongly, which
 * saved-model-repair.ts mends), and anything that no longer matches must be rebuilt, not used.
 */
const tempDir = tempDirForFile('loom-packed-session-');
const spec = { ...TINY_SPEC, intermediateSize: 96, seed: 31 };

async function fixture() {
  const root = tempDir();
  const modelDir = join(root, 'model');
  const inMemory = await writeSyntheticModel(modelDir, spec, { shards: 2 });
  const cache = { dir: join(root, 'cache'), checkpoint: checkpointIdentity(modelDir) };
  return { modelDir, inMemory, cache };
}

type Fixture = Awaited<ReturnType<typeof fixture>>;

/** One engine start over the cache: its note, and the logits of a prefill and a decode step with and without an adapter. */
async function start(
  { modelDir, inMemory, cache }: Fixture,
  pages = 600,
  weightFormat: 'f32' | 'f16' | 'int8' = 'f32',
) {
  const loaded = await loadModel(modelDir);
  const ref = referenceHarness(inMemory, pages);
  const engine = await OnnxEngine.create(loaded.weights, ref.pool, {
    threads: 1,
    weightFormat,
    // int8 codes come mapped from the encoded-weight cache, the packed session from its own.
    weightCache: cache,
    packedSessionCache: cache,
  });
  try {
    const adapter = syntheticAdapter(inMemory.config, {
      name: 'a',
      rank: 8,
      alpha: 16,
      targetModules: [...TARGET_MODULES],
      seed: 5,
    });
    const layout = ref.loadInto([engine], adapter);
    const prompt = randomTokens(7, spec.vocabSize, 3);
    const plans: StepPlan[] = [
      {
        sequences: [
          ref.sequenceStep(1, prompt, 0, layout, 'last'),
          ref.sequenceStep(2, prompt.slice(0, 4), 0, null, 'all'),
        ],
      },
      {
        sequences: [ref.sequenceStep(1, [9], 7, layout, 'last'), ref.sequenceStep(2, [11], 4, null, 'last')],
      },
    ];
    const logits: Float32Array[] = [];
    for (const plan of plans) {
      const actual = await engine.step(plan);
      if (weightFormat === 'f32') expect(maxAbsDiff(actual, await ref.engine.step(plan))).toBeLessThan(1e-4);
      logits.push(actual);
    }
    return { note: engine.packedCacheNote ?? '', logits };
  } finally {
    await engine.close();
  }
}

describe('the packed-session cache', () => {
  it('saves at the first start and maps at the next, which steps exactly alike, adapters included', async () => {
    const f = await fixture();
    const slot = packedSessionSlot(f.cache, 'f32', TARGET_MODULES);
    const first = await start(f);
    expect(first.note).toMatch(
      /^packed weights saved to .* \(\d+\.\d GB; none saved yet\) in [\d.]+ s: the next start maps them$/,
    );
    expect(first.note).toContain(slot);
    expect(readdirSync(slot).sort()).toEqual(['manifest.json', 'model.data', 'model.onnx']);

    const second = await start(f);
    expect(second.note).toMatch(/^packed weights mapped from .* \(\d+\.\d GB\) in [\d.]+ s$/);
    expect(second.logits).toEqual(first.logits);

    // The pool's size is not part of the graph: a larger pool maps the same entry.
    const larger = await start(f, 900);
    expect(larger.note).toMatch(/^packed weights mapped from /);
    // One slot, no staging folder left behind.
    expect(readdirSync(f.cache.dir)).toEqual([slot.split('/').pop()]);
  });

  it('f16 maps its saved session too; int8 is not cached, since onnxruntime loads it wrongly', async () => {
    const f = await fixture();
    const first = await start(f, 600, 'f16');
    expect(first.note).toMatch(/^packed weights saved to .*packed-f16-/);
    const second = await start(f, 600, 'f16');
    expect(second.note).toMatch(/^packed weights mapped from .*packed-f16-/);
    expect(second.logits).toEqual(first.logits);

    // onnxruntime 1.30's MatMulNBits session from its saved model gave NaN logits: int8 is packed
    // at every start and says so, and leaves no entry.
    const int8 = await start(f, 600, 'int8');
    expect(int8.note).toMatch(/^packed weights not cached for int8: .*NaN logits/);
    expect(readdirSync(f.cache.dir).filter((n) => n.startsWith('packed-int8'))).toEqual([]);
    expect(int8.logits.every((l) => l.every(Number.isFinite))).toBe(true);
  });

  it('saves anew when the entry was made for another graph, or does not load', async () => {
    const f = await fixture();
    const slot = packedSessionSlot(f.cache, 'f32', TARGET_MODULES);
    const first = await start(f);
    const manifestFile = join(slot, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, key: 'another' }));
    const stale = await start(f);
    expect(stale.note).toMatch(
      /\(\d+\.\d GB; the saved one was made for another graph, onnxruntime or CPU\)/,
    );
    expect(stale.logits).toEqual(first.logits);
    expect(JSON.parse(readFileSync(manifestFile, 'utf8')).key).toBe(manifest.key);

    writeFileSync(join(slot, 'model.onnx'), 'not a model');
    const broken = await start(f);
    expect(broken.note).toMatch(/\(\d+\.\d GB; the saved one did not load \(.+\)\) in /);
    const mapped = await start(f);
    expect(mapped.note).toMatch(/^packed weights mapped from /);
    expect(mapped.logits).toEqual(first.logits);
  });

  it('builds without saving when the disk lacks room, and clears what a killed save left', async () => {
    const root = tempDir();
    const location = { dir: join(root, 'cache'), checkpoint: 'ckpt' };
    const g = new GraphBuilder('double');
    const x = g.input('x', 'float32', [2]);
    g.output(g.op('Add', [x, x]), 'float32', [2]);
    const graph = g.toBytes();
    const request = {
      location,
      weightFormat: 'f32' as const,
      loraModules: [],
      graph,
      options: { graphOptimizationLevel: 'all' as const },
    };
    const full = await createPackedSession({ ...request, expectedBytes: 2 ** 60 });
    expect(full.note).toMatch(
      /^packed weights not saved \(none saved yet\): about \d+\.\d GB needed, \d+\.\d GB free in /,
    );
    const doubled = async (session: ort.InferenceSession) => {
      const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
      return Array.from(out[session.outputNames[0]].data as Float32Array);
    };
    expect(await doubled(full.session)).toEqual([2, 4]);
    await full.session.release();
    expect(existsSync(packedSessionSlot(location, 'f32', []))).toBe(false);

    // A staging folder of a process that is gone; 2^22 is past Linux's largest pid.
    const abandoned = `${packedSessionSlot(location, 'f32', ['q_proj'])}.saving-${2 ** 22 + 1}`;
    mkdirSync(abandoned, { recursive: true });
    const saved = await createPackedSession({ ...request, expectedBytes: 0 });
    expect(saved.note).toMatch(/^packed weights saved to /);
    await saved.session.release();
    expect(existsSync(abandoned)).toBe(false);
    const mapped = await createPackedSession({ ...request, expectedBytes: 0 });
    expect(mapped.note).toMatch(/^packed weights mapped from /);
    expect(await doubled(mapped.session)).toEqual([2, 4]);
    await mapped.session.release();
  });
});
