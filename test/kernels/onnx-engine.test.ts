import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SequenceStep, StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, type ReferenceHarness, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * Parity of the onnx engine with the reference engine: same pool bookkeeping (page ids), separate
 * page storage, the same plans. An intermediate size that is not a multiple of the page size
 * makes the down/gate/up LoRA rows span a partly used page.
 */
const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 96, seed: 11 });
const config = weights.config;
const TOLERANCE = 1e-4;

interface Seq {
  id: number;
  tokens: number[];
  adapter: AdapterLayout | null;
}

describe.each(['prepacked', 'inputs'] as const)(
  'onnx engine (%s weights) matches the reference engine',
  (mode) => {
    let ref: ReferenceHarness;
    let onnx: OnnxEngine;
    let adapters: AdapterLayout[];

    beforeAll(async () => {
      ref = referenceHarness(weights, 4000, 5);
      onnx = await OnnxEngine.create(weights, ref.pool, { threads: 1, weights: mode });
      const specs = [
        { rank: 4, targetModules: ['q_proj', 'v_proj'] as const },
        { rank: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const },
        { rank: 16, targetModules: ['gate_proj', 'up_proj', 'down_proj'] as const },
        {
          rank: 64,
          targetModules: TARGET_MODULES,
        },
      ];
      adapters = specs.map((s, i) => {
        const adapter = syntheticAdapter(config, {
          name: `a${i}`,
          rank: s.rank,
          alpha: 2 * s.rank,
          targetModules: [...s.targetModules],
          seed: 100 + i,
        });
        // One adapter skips a layer's module, as PEFT's layers_to_transform allows.
        if (i === 1) delete adapter.layers[1].k_proj;
        const layout = ref.load(adapter);
        onnx.writeAdapter(layout, storeAdapter(adapter));
        return layout;
      });
    });

    afterAll(async () => {
      await onnx?.close();
    });

    async function both(plan: StepPlan): Promise<number> {
      const expected = await ref.engine.step(plan);
      const actual = await onnx.step(plan);
      expect(actual.length).toBe(expected.length);
      return maxAbsDiff(actual, expected);
    }

    function step(
      seq: Seq,
      tokens: number[],
      startPos: number,
      logits: SequenceStep['logits'],
    ): SequenceStep {
      return ref.sequenceStep(seq.id, tokens, startPos, seq.adapter, logits);
    }

    it('prefills a ragged mixed-adapter batch and decodes several steps', async () => {
      const lengths = [5, 1, 9, 3, 7, 4];
      const seqs: Seq[] = lengths.map((n, i) => ({
        id: 10 + i,
        tokens: randomTokens(n, config.vocabSize, 20 + i),
        adapter: i === 5 ? null : adapters[i % adapters.length],
      }));
      seqs[4].adapter = null;
      const prefill = { sequences: seqs.map((s, i) => step(s, s.tokens, 0, i === 2 ? 'all' : 'last')) };
      expect(await both(prefill)).toBeLessThan(TOLERANCE);

      for (let d = 0; d < 4; d++) {
        const plan = {
          sequences: seqs.map((s) => {
            const next = randomTokens(1, config.vocabSize, 1000 * d + s.id)[0];
            const st = step(s, [next], s.tokens.length, 'last');
            s.tokens.push(next);
            return st;
          }),
        };
        expect(await both(plan)).toBeLessThan(TOLERANCE);
      }
    });

    it('runs a plan mixing a prefill chunk, decodes and a logit-free chunk', async () => {
      const a: Seq = { id: 40, tokens: randomTokens(6, config.vocabSize, 41), adapter: adapters[3] };
      const b: Seq = { id: 41, tokens: randomTokens(3, config.vocabSize, 42), adapter: adapters[0] };
      const c: Seq = { id: 42, tokens: randomTokens(8, config.vocabSize, 43), adapter: null };
      expect(
        await both({
          sequences: [
            step(a, a.tokens, 0, 'last'),
            step(b, b.tokens, 0, 'none'),
            step(c, c.tokens, 0, 'last'),
          ],
        }),
      ).toBeLessThan(TOLERANCE);
      const chunk = randomTokens(5, config.vocabSize, 44);
      const mixed: StepPlan = {
        sequences: [
          step(a, [7], 6, 'last'),
          step(b, chunk, 3, 'all'),
          step(c, [9], 8, 'last'),
          step(
            { id: 43, tokens: [], adapter: adapters[2] },
            randomTokens(4, config.vocabSize, 45),
            0,
            'none',
          ),
        ],
      };
      expect(await both(mixed)).toBeLessThan(TOLERANCE);
    });

    it('returns no rows when no sequence wants logits; sessions: one prepacked, or one per module set', async () => {
      const s: Seq = { id: 60, tokens: randomTokens(4, config.vocabSize, 61), adapter: adapters[1] };
      const out = await onnx.step({ sequences: [step(s, s.tokens, 0, 'none')] });
      expect(out.length).toBe(0);
      if (mode === 'prepacked') expect(onnx.numSessions).toBe(1);
      else expect(onnx.numSessions).toBeGreaterThan(1);
    });
  },
);

describe.each([
  ['tied embeddings', { tieWordEmbeddings: true }],
  // YaRN scales cos and sin by 0.1·ln 4 + 1: the engine's feeds must carry it, as the reference's rotation does.
  [
    'YaRN rope scaling',
    { ropeScaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 8 } },
  ],
])('onnx engine with %s', (_, spec) => {
  it('matches the reference engine through prefill and decode', async () => {
    const tied = syntheticWeights({ ...TINY_SPEC, ...spec, seed: 3 });
    const ref = referenceHarness(tied, 600, 9);
    const onnx = await OnnxEngine.create(tied, ref.pool, { threads: 1 });
    try {
      const adapter = syntheticAdapter(tied.config, {
        name: 'tied',
        rank: 8,
        alpha: 16,
        targetModules: ['v_proj', 'down_proj'],
        seed: 5,
      });
      const layout = ref.load(adapter);
      onnx.writeAdapter(layout, storeAdapter(adapter));
      const prompt = randomTokens(7, tied.config.vocabSize, 8);
      let plan: StepPlan = {
        sequences: [
          ref.sequenceStep(1, prompt, 0, layout, 'last'),
          ref.sequenceStep(2, prompt.slice(0, 3), 0, null, 'last'),
        ],
      };
      for (let d = 0; d < 3; d++) {
        expect(maxAbsDiff(await onnx.step(plan), await ref.engine.step(plan))).toBeLessThan(TOLERANCE);
        plan = {
          sequences: [
            ref.sequenceStep(1, [d + 1], 7 + d, layout, 'last'),
            ref.sequenceStep(2, [d + 2], 3 + d, null, 'last'),
          ],
        };
      }
    } finally {
      await onnx.close();
    }
  });
});

describe('onnx engine built with LoRA on fewer modules (loraModules)', () => {
  it('runs base steps like the reference engine, LoRA on its modules, and refuses an adapter on another module by name', async () => {
    const ref = referenceHarness(weights, 4000, 5);
    const floor = await OnnxEngine.create(weights, ref.pool, { threads: 1, loraModules: [] });
    const attention = await OnnxEngine.create(weights, ref.pool, {
      threads: 1,
      loraModules: ['q_proj', 'v_proj'],
    });
    try {
      const adapterOf = (name: string, targetModules: Array<(typeof TARGET_MODULES)[number]>) => {
        const adapter = syntheticAdapter(config, { name, rank: 4, alpha: 8, targetModules, seed: 7 });
        const layout = ref.load(adapter);
        for (const engine of [floor, attention]) engine.writeAdapter(layout, storeAdapter(adapter));
        return layout;
      };
      const qv = adapterOf('qv', ['q_proj', 'v_proj']);
      const mlp = adapterOf('mlp', ['down_proj']);
      const prompt = randomTokens(6, config.vocabSize, 9);
      const plan = (adapter: AdapterLayout | null): StepPlan => ({
        sequences: [ref.sequenceStep(1, prompt, 0, adapter, 'last')],
      });
      const expectedBase = await ref.engine.step(plan(null));
      ref.kv.free(1);
      for (const engine of [floor, attention]) {
        expect(maxAbsDiff(await engine.step(plan(null)), expectedBase)).toBeLessThan(TOLERANCE);
        ref.kv.free(1);
      }
      const expectedQv = await ref.engine.step(plan(qv));
      ref.kv.free(1);
      expect(maxAbsDiff(await attention.step(plan(qv)), expectedQv)).toBeLessThan(TOLERANCE);
      ref.kv.free(1);
      await expect(floor.step(plan(qv))).rejects.toThrow(/no LoRA on q_proj/);
      ref.kv.free(1);
      await expect(attention.step(plan(mlp))).rejects.toThrow(/no LoRA on down_proj/);
      ref.kv.free(1);
      await expect(
        OnnxEngine.create(weights, ref.pool, { threads: 1, weights: 'inputs', loraModules: [] }),
      ).rejects.toThrow(/loraModules applies to .*prepacked weights/);
    } finally {
      await floor.close();
      await attention.close();
    }
  });
});
