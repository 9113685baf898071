import { describe, expect, it } from 'vitest';
import type { SequenceStep } from '../../kernels/engine.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, referenceHarness, rowOf, shuffled } from './reference-harness.js';

const weights = syntheticWeights(TINY_SPEC);
const config = weights.config;
const vocab = config.vocabSize;

interface Case {
  name: string;
  adapter: AdapterLayout | null;
  prompt: number[];
  /** Tokens appended at the second (decode or chunk) step. */
  more: number[];
}

/** Base + three adapters of different ranks and targets, ragged prompts, scattered pages. */
function setUp() {
  const h = referenceHarness(weights, 512, 17);
  const specs = [
    { name: 'r2', rank: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] as const, seed: 21 },
    { name: 'r4', rank: 4, alpha: 4, targetModules: ['o_proj', 'gate_proj', 'down_proj'] as const, seed: 22 },
    {
      name: 'r8',
      rank: 8,
      alpha: 32,
      targetModules: TARGET_MODULES,
      seed: 23,
      useRslora: true,
    },
  ];
  const [r2, r4, r8] = specs.map((s) =>
    h.load(syntheticAdapter(config, { ...s, targetModules: [...s.targetModules] })),
  );
  const cases: Case[] = [
    { name: 'base', adapter: null, prompt: randomTokens(5, vocab, 1), more: randomTokens(1, vocab, 2) },
    { name: 'r2', adapter: r2, prompt: randomTokens(1, vocab, 3), more: randomTokens(3, vocab, 4) },
    { name: 'r4', adapter: r4, prompt: randomTokens(9, vocab, 5), more: randomTokens(1, vocab, 6) },
    { name: 'r8', adapter: r8, prompt: randomTokens(3, vocab, 7), more: randomTokens(2, vocab, 8) },
  ];
  return { h, cases };
}

describe('reference engine batch invariance', () => {
  it('a mixed, shuffled batch gives each sequence the logits it gets alone', async () => {
    const { h, cases } = setUp();

    // Each sequence alone: prompt, then its second step, every row's logits.
    const alone = new Map<string, { first: Float32Array; second: Float32Array }>();
    for (const [i, c] of cases.entries()) {
      const seqId = 100 + i;
      const first = await h.engine.step({
        sequences: [h.sequenceStep(seqId, c.prompt, 0, c.adapter, 'all')],
      });
      const second = await h.engine.step({
        sequences: [h.sequenceStep(seqId, c.more, c.prompt.length, c.adapter, 'all')],
      });
      alone.set(c.name, { first, second });
    }

    // The same sequences batched together, in a shuffled order, twice (prefill, then ragged second steps).
    const order = shuffled([...cases.entries()], 99);
    const seqIdOf = (i: number) => 200 + i;
    for (const stage of ['first', 'second'] as const) {
      const steps: SequenceStep[] = order.map(([i, c]) =>
        stage === 'first'
          ? h.sequenceStep(seqIdOf(i), c.prompt, 0, c.adapter, 'all')
          : h.sequenceStep(seqIdOf(i), c.more, c.prompt.length, c.adapter, 'all'),
      );
      const batched = await h.engine.step({ sequences: steps });
      let row = 0;
      for (const [, c] of order) {
        const expected = alone.get(c.name)![stage];
        const rows = expected.length / vocab;
        for (let r = 0; r < rows; r++, row++) {
          expect(maxAbsDiff(rowOf(batched, row, vocab), rowOf(expected, r, vocab))).toBeLessThanOrEqual(1e-5);
        }
      }
      expect(row * vocab).toBe(batched.length);
    }
    const scattered = (table: Int32Array) => table.some((page, i) => i > 0 && page !== table[i - 1] + 1);
    expect(order.every(([i]) => scattered(h.kv.pageTable(seqIdOf(i))))).toBe(true);
  });

  it('only the rows the plan asks for come back, in plan order', async () => {
    const { h, cases } = setUp();
    const [base, r2, r4] = cases;
    const all = await h.engine.step({ sequences: [h.sequenceStep(1, r4.prompt, 0, r4.adapter, 'all')] });
    const mixed = await h.engine.step({
      sequences: [
        h.sequenceStep(2, base.prompt, 0, base.adapter, 'none'),
        h.sequenceStep(3, r4.prompt, 0, r4.adapter, 'last'),
        h.sequenceStep(4, r2.prompt, 0, r2.adapter, 'none'),
      ],
    });
    expect(mixed.length).toBe(vocab);
    expect(maxAbsDiff(mixed, rowOf(all, r4.prompt.length - 1, vocab))).toBeLessThanOrEqual(1e-5);
  });

  it('different adapters really give different logits for the same prompt', async () => {
    const { h, cases } = setUp();
    const prompt = randomTokens(4, vocab, 42);
    const logits = await h.engine.step({
      sequences: cases.map((c, i) => h.sequenceStep(i + 1, prompt, 0, c.adapter, 'last')),
    });
    for (let a = 0; a < cases.length; a++) {
      for (let b = a + 1; b < cases.length; b++) {
        expect(maxAbsDiff(rowOf(logits, a, vocab), rowOf(logits, b, vocab))).toBeGreaterThan(1e-2);
      }
    }
  });
});
