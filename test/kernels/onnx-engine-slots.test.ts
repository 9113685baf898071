import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { LORA_SLOTS } from '../../kernels/onnx/llama-graph.js';
import { LoraSlotViews } from '../../kernels/onnx/lora-slots.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, type ReferenceHarness, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * The onnx engine reads an adapter whose pages are consecutive through a graph slot (zero-copy
 * views of its blocks) and any other adapter through gathered rows; one batch may mix both, and
 * adapters past the LORA_SLOTS slots fall back to gathering. An intermediate size that is not a
 * multiple of the page size (and k/v narrower than a page) makes slot blocks end in a partly used
 * page: x is padded, the wider product sliced.
 */
const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 96, seed: 21 });
const config = weights.config;
const TOLERANCE = 1e-4;

describe('onnx engine adapter slots and gathered rows', () => {
  let ref: ReferenceHarness;
  let onnx: OnnxEngine;
  let nextSeq = 1;

  beforeAll(async () => {
    ref = referenceHarness(weights, 6000);
    onnx = await OnnxEngine.create(weights, ref.pool, { threads: 1 });
  });

  afterAll(async () => {
    await onnx?.close();
  });

  function makeAdapter(i: number, rank: number, modules: readonly TargetModule[]): LoraAdapter {
    return syntheticAdapter(config, {
      name: `s${i}`,
      rank,
      alpha: 2 * rank,
      targetModules: [...modules],
      seed: 300 + i,
    });
  }

  /** Loads the adapter on consecutive pages, or with its pages shuffled (not contiguous). */
  const load = (adapter: LoraAdapter, scatter: boolean): AdapterLayout =>
    ref.loadInto([onnx], adapter, scatter ? 17 : undefined);

  /** Prefills one ragged sequence per adapter (and one without), then decodes; returns the worst diff. */
  async function prefillAndDecode(adapters: AdapterLayout[]): Promise<number> {
    const seqs = [...adapters, null].map((adapter, i) => ({
      id: nextSeq++,
      adapter,
      tokens: randomTokens(1 + ((i * 3) % 5), config.vocabSize, 50 + i),
    }));
    let worst = 0;
    const check = async (plan: StepPlan) => {
      const expected = await ref.engine.step(plan);
      const actual = await onnx.step(plan);
      expect(actual.length).toBe(expected.length);
      worst = Math.max(worst, maxAbsDiff(actual, expected));
    };
    await check({
      sequences: seqs.map((s) => ref.sequenceStep(s.id, s.tokens, 0, s.adapter, 'all')),
    });
    for (let d = 0; d < 3; d++) {
      await check({
        sequences: seqs.map((s) => {
          const next = randomTokens(1, config.vocabSize, 900 + 10 * d + s.id)[0];
          const step = ref.sequenceStep(s.id, [next], s.tokens.length, s.adapter, 'last');
          s.tokens.push(next);
          return step;
        }),
      });
    }
    for (const s of seqs) ref.kv.free(s.id);
    return worst;
  }

  it('mixes slotted (contiguous) and gathered (scattered or partial) adapters in one batch', async () => {
    const full = load(makeAdapter(0, 8, TARGET_MODULES), false);
    const attention = load(makeAdapter(1, 4, ['q_proj', 'k_proj', 'v_proj', 'o_proj']), false);
    const scattered = load(makeAdapter(2, 16, TARGET_MODULES), true);
    const partialAdapter = makeAdapter(3, 5, ['v_proj', 'down_proj', 'gate_proj']);
    delete partialAdapter.layers[0].v_proj;
    const partial = load(partialAdapter, false);

    const views = new LoraSlotViews(new Float32Array(ref.pool.numPages * ref.pool.pageSize), config);
    for (const m of TARGET_MODULES) {
      expect(views.blocks(full, m)).not.toBeNull();
      expect(views.blocks(scattered, m)).toBeNull();
    }
    expect(views.blocks(partial, 'v_proj')).toBeNull();
    expect(views.blocks(partial, 'down_proj')).not.toBeNull();

    expect(await prefillAndDecode([full, scattered, attention, partial])).toBeLessThan(TOLERANCE);
  });

  it('gathers the adapters past the slots when a batch has more distinct adapters than slots', async () => {
    const many = Array.from({ length: LORA_SLOTS + 2 }, (_, i) =>
      load(makeAdapter(10 + i, 2 + (i % 3), TARGET_MODULES), false),
    );
    expect(await prefillAndDecode(many)).toBeLessThan(TOLERANCE);
  });
});
