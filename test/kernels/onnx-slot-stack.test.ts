import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { splitPlan } from '../../kernels/onnx/step-split.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { maxAbsDiff, type ReferenceHarness, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * The onnx engine's stacked LoRA slots (lora-slot-stack.ts): adapters are copied from their pages,
 * consecutive or not, into per-module stacks that a step reads in place; those past the stack's
 * rows are gathered from their pages as segments, and one batch may mix both. An intermediate size
 * that is not a multiple of the page size makes rows end mid-page.
 */
const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 96, seed: 21 });
const config = weights.config;
const TOLERANCE = 1e-4;

describe('onnx engine stacked slots and gathered rows', () => {
  let ref: ReferenceHarness;
  /** Twelve rows: a rank-8 adapter and a rank-4 one fit, a rank-16 one never does. */
  let small: OnnxEngine;
  /** No stack: every adapter gathered. */
  let none: OnnxEngine;
  /** Rows for many adapters: what bounds it is the masked products' waste. */
  let wide: OnnxEngine;
  let nextSeq = 1;

  beforeAll(async () => {
    ref = referenceHarness(weights, 6000);
    small = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 12 });
    none = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 0 });
    wide = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 256 });
  });

  afterAll(async () => {
    await small?.close();
    await none?.close();
    await wide?.close();
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
    ref.loadInto([small, none, wide], adapter, scatter ? 17 : undefined);

  /** Prefills one ragged sequence per adapter (and one without), then decodes; returns the worst diff. */
  async function prefillAndDecode(onnx: OnnxEngine, adapters: AdapterLayout[]): Promise<number> {
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

  it('stacks adapters on scattered pages as well as consecutive ones, and gathers those past its rows', async () => {
    const full = load(makeAdapter(0, 8, TARGET_MODULES), true);
    const attention = load(makeAdapter(1, 4, ['q_proj', 'k_proj', 'v_proj', 'o_proj']), false);
    const big = load(makeAdapter(2, 16, TARGET_MODULES), true);
    const partialAdapter = makeAdapter(3, 5, ['v_proj', 'down_proj', 'gate_proj']);
    delete partialAdapter.layers[0].v_proj;
    const partial = load(partialAdapter, false);
    for (const onnx of [small, none])
      expect(await prefillAndDecode(onnx, [full, big, attention, partial])).toBeLessThan(TOLERANCE);
    expect(small.numStackedAdapters).toBeGreaterThan(0);
    expect(none.numStackedAdapters).toBe(0);
  });

  it('makes room low in the stack for a new adapter, and one stacked again at other rows gives the same logits', async () => {
    const fresh = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 12 });
    try {
      const into = (adapter: LoraAdapter) => ref.loadInto([fresh], adapter);
      const twin = makeAdapter(40, 4, TARGET_MODULES);
      const [d, d2] = [twin, { ...twin, name: 'twin' }].map(into);
      const a = into(makeAdapter(41, 4, TARGET_MODULES));
      const b = into(makeAdapter(20, 8, TARGET_MODULES));
      const tokens = randomTokens(4, config.vocabSize, 77);
      /** The logits of `target`'s sequence in a step of two sequences, in this order. */
      const logitsOf = async (first: AdapterLayout, second: AdapterLayout, target: AdapterLayout) => {
        const ids = [nextSeq++, nextSeq++];
        const out = await fresh.step({
          sequences: [first, second].map((adapter, i) =>
            ref.sequenceStep(ids[i], tokens, 0, adapter, adapter === target ? 'last' : 'none'),
          ),
        });
        for (const id of ids) ref.kv.free(id);
        return Float32Array.from(out);
      };
      // Twelve rows: d takes 0–3 and a 4–7; b (rank 8) takes the lowest rows the step leaves,
      // 0–7, evicting both; then a goes first, onto 0–3 (b's stale rows), and d2 (d's weights
      // under another name) onto 4–7.
      const before = await logitsOf(d, a, a);
      const alone = await fresh.step({ sequences: [ref.sequenceStep(nextSeq, tokens, 0, b, 'last')] });
      ref.kv.free(nextSeq++);
      expect(alone.length).toBe(config.vocabSize);
      expect(fresh.numStackedAdapters).toBe(1);
      expect(await logitsOf(a, d2, a)).toEqual(before);
      expect(fresh.numStackedAdapters).toBe(2);
    } finally {
      await fresh.close();
    }
  });

  it("stacks a step's one-token adapters before a prompt's adapter, which is gathered (in the blocked form every block is padded to the prompt's tokens)", async () => {
    // 30 one-token rank-4 adapters take 120 rows blocked, one product each; a 12-token prompt on
    // top would pad every block to 12 places (124 · 12 > 8 · (120 + 48)), so it is gathered.
    // Taken first, the prompt would have left room for only 21 of them.
    const decoders = Array.from({ length: 30 }, (_, i) =>
      load(makeAdapter(200 + i, 4, TARGET_MODULES), i % 2 === 0),
    );
    const prompt = load(makeAdapter(240, 4, TARGET_MODULES), false);
    const seqs = [prompt, ...decoders].map((adapter, i) => ({
      id: nextSeq++,
      adapter,
      tokens: randomTokens(i === 0 ? 12 : 1, config.vocabSize, 400 + i),
    }));
    const plan: StepPlan = {
      sequences: seqs.map((s) => ref.sequenceStep(s.id, s.tokens, 0, s.adapter, 'last')),
    };
    expect(splitPlan(plan, 512)).toHaveLength(1);
    const expected = await ref.engine.step(plan);
    expect(maxAbsDiff(await wide.step(plan), expected)).toBeLessThan(TOLERANCE);
    expect(wide.numStackedAdapters).toBe(30);
    expect(wide.stackedModulesOf(prompt)).toEqual([]);
    for (const s of seqs) ref.kv.free(s.id);
    for (const a of [prompt, ...decoders]) {
      for (const engine of [small, none, wide]) engine.releaseAdapter(a);
      ref.pool.free(a.allPages);
    }
  });

  it('sees rewritten pages at the next step (an in-place update)', async () => {
    const layout = load(makeAdapter(30, 8, TARGET_MODULES), false);
    expect(await prefillAndDecode(small, [layout])).toBeLessThan(TOLERANCE);
    const updated = makeAdapter(31, 8, TARGET_MODULES);
    for (const engine of [ref.engine, small, none]) engine.writeAdapter(layout, storeAdapter(updated));
    expect(await prefillAndDecode(small, [layout])).toBeLessThan(TOLERANCE);
  });

  it('gathers an adapter whose Bᵀ holds a NaN, and stacks it once an in-place update makes it finite', async () => {
    const poisoned = makeAdapter(50, 4, TARGET_MODULES);
    poisoned.layers[1].up_proj!.b[3] = Number.NaN;
    const layout = load(poisoned, false);
    const tokens = randomTokens(3, config.vocabSize, 61);
    const stepOnce = async () => {
      const id = nextSeq++;
      const out = await wide.step({ sequences: [ref.sequenceStep(id, tokens, 0, layout, 'last')] });
      ref.kv.free(id);
      return out;
    };
    const before = wide.numStackedAdapters;
    expect((await stepOnce()).some((v) => Number.isNaN(v))).toBe(true);
    // Stacked on the modules whose rows are finite, gathered on up_proj: counted once.
    expect(wide.numStackedAdapters).toBe(before + 1);
    expect(wide.stackedModulesOf(layout)).toEqual(TARGET_MODULES.filter((m) => m !== 'up_proj'));
    const healthy = makeAdapter(51, 4, TARGET_MODULES);
    for (const engine of [ref.engine, small, none, wide]) engine.writeAdapter(layout, storeAdapter(healthy));
    const id = nextSeq++;
    const plan: StepPlan = { sequences: [ref.sequenceStep(id, tokens, 0, layout, 'last')] };
    const expected = await ref.engine.step(plan);
    expect(maxAbsDiff(await wide.step(plan), expected)).toBeLessThan(TOLERANCE);
    ref.kv.free(id);
    expect(wide.stackedModulesOf(layout)).toEqual([...TARGET_MODULES]);
    for (const engine of [small, none, wide]) engine.releaseAdapter(layout);
    ref.pool.free(layout.allPages);
  });

  it('keeps a stacked adapter whose A rows hold a NaN and an Inf to its own token in the blocked form, padding places included', async () => {
    // Tokens 2, 1, 1, 1 over four rank-4 adapters: blocks of 4 rows padded to 2 places (5 ≥ 2·2
    // tokens, so blocked). A poisoned one-token adapter's padding place reads token 0, another
    // sequence's; Bᵀ is finite, so it is stacked, and only its own sequence may see the NaN.
    const adapters = Array.from({ length: 4 }, (_, i) => makeAdapter(70 + i, 4, TARGET_MODULES));
    adapters[2].layers[0].q_proj!.a[5] = Number.NaN;
    adapters[2].layers[1].gate_proj!.a[2] = Number.POSITIVE_INFINITY;
    const layouts = adapters.map((a) => load(a, false));
    const seqs = layouts.map((adapter, i) => ({
      id: nextSeq++,
      adapter,
      tokens: randomTokens(i === 0 ? 2 : 1, config.vocabSize, 110 + i),
    }));
    const plan = (logits: (i: number) => 'last' | 'none'): StepPlan => ({
      sequences: seqs.map((s, i) => ref.sequenceStep(s.id, s.tokens, 0, s.adapter, logits(i))),
    });
    const healthy = plan((i) => (i === 2 ? 'none' : 'last'));
    const expected = await ref.engine.step(healthy);
    expect(expected.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(await wide.step(healthy), expected)).toBeLessThan(TOLERANCE);
    expect(wide.stackedModulesOf(layouts[2])).toEqual([...TARGET_MODULES]);
    for (const s of seqs) ref.kv.free(s.id);
    expect((await wide.step(plan((i) => (i === 2 ? 'last' : 'none')))).some(Number.isNaN)).toBe(true);
    for (const s of seqs) ref.kv.free(s.id);
    for (const a of layouts) {
      for (const engine of [small, none, wide]) engine.releaseAdapter(a);
      ref.pool.free(a.allPages);
    }
  });

  it('gathers the adapters past the stack when a batch has more than it holds', async () => {
    const many = Array.from({ length: 10 }, (_, i) =>
      load(makeAdapter(10 + i, 2 + (i % 3), TARGET_MODULES), i % 2 === 0),
    );
    expect(await prefillAndDecode(small, many)).toBeLessThan(TOLERANCE);
  });

  it('stacks single-token adapters in the blocked form (each token against its own rows, in blocks its ranks share), and where their ranks share no block of 4 rows no more than keeps the masked products within 8× the exact ones', async () => {
    // Twelve one-token adapters of ranks 4, or 4 and 8, fit in 256 rows; blocked (blocks of 4),
    // each token multiplies only its own rows, so all twelve join. Ranks 3 and 4 share no block
    // of 4 rows: masked, k tokens multiply every row up to the highest, so the six rank-3 ones
    // (rows 0–17) and one rank-4 one (rows 20–23: 7·24 ≤ 8·22) join, then 8·28 > 8·26, and the
    // rest are gathered.
    for (const [ranks, stacked] of [
      [[4], 12],
      [[4, 8], 12],
      [[3, 4], 7],
    ] as const) {
      const twelve = Array.from({ length: 12 }, (_, i) =>
        load(
          makeAdapter(60 + i + 20 * (ranks[0] + ranks.length), ranks[i % ranks.length], TARGET_MODULES),
          false,
        ),
      );
      const seqs = twelve.map((adapter, i) => ({
        id: nextSeq++,
        adapter,
        token: randomTokens(1, config.vocabSize, 90 + i),
      }));
      const plan: StepPlan = {
        sequences: seqs.map((s) => ref.sequenceStep(s.id, s.token, 0, s.adapter, 'last')),
      };
      const expected = await ref.engine.step(plan);
      expect(maxAbsDiff(await wide.step(plan), expected)).toBeLessThan(TOLERANCE);
      expect(wide.numStackedAdapters).toBe(stacked);
      for (const s of seqs) ref.kv.free(s.id);
      for (const a of twelve) {
        for (const engine of [small, none, wide]) engine.releaseAdapter(a);
        ref.pool.free(a.allPages);
      }
    }
  });
});
