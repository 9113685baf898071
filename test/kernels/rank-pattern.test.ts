import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import {
  type AdapterLayout,
  adapterPageCount,
  pagesForModuleRanks,
  pagesForTargets,
} from '../../memory/adapter-layout.js';
import { summarizeAdapter } from '../../model/adapter-summary.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { loadAdapter } from '../../model/load-adapter.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import {
  syntheticAdapter,
  syntheticWeights,
  TINY_SPEC,
  writeSyntheticAdapter,
} from '../../model/synthetic.js';
import { tempDirForFile } from '../model/temp-dir.js';
import { RANK_PATTERN_SPEC, RSLORA_PATTERN_SPEC, worstDiffFromMerged } from './rank-pattern-kit.js';
import { maxAbsDiff, type ReferenceHarness, randomTokens, referenceHarness } from './reference-harness.js';

/**
 * PEFT's rank_pattern / alpha_pattern end to end: per-module ranks and scales as PEFT computes
 * them, through the adapter files, the page count, and every engine path (reference gather,
 * onnx slots and onnx segments), each against the per-module merged weights.
 */
const weights = syntheticWeights({ ...TINY_SPEC, seed: 8 });
const config = weights.config;
const TOLERANCE = 1e-4;
const root = tempDirForFile('loom-rank-pattern-');

describe('rank_pattern / alpha_pattern adapters', () => {
  const adapter = syntheticAdapter(config, RANK_PATTERN_SPEC);
  const rslora = syntheticAdapter(config, RSLORA_PATTERN_SPEC);

  it('gives each module the rank and scale PEFT gives it', () => {
    const ranksAndScales = adapter.layers.map((layer) =>
      Object.fromEntries(TARGET_MODULES.map((m) => [m, [layer[m]!.rank, layer[m]!.scale]])),
    );
    expect(ranksAndScales).toEqual([
      {
        q_proj: [4, 4],
        k_proj: [8, 2],
        v_proj: [8, 0.5],
        o_proj: [8, 2],
        gate_proj: [8, 4],
        up_proj: [8, 4],
        down_proj: [8, 4],
      },
      {
        q_proj: [4, 4],
        k_proj: [8, 2],
        v_proj: [8, 0.5],
        o_proj: [8, 2],
        gate_proj: [8, 2],
        up_proj: [8, 2],
        down_proj: [16, 1],
      },
    ]);
    expect(adapter.rank).toBe(16);
    // The first matching key wins ("layers\.1\..*" before "o_proj"); rsLoRA divides by sqrt(rank).
    const [l0, l1] = rslora.layers;
    expect([l0.q_proj!.rank, l0.v_proj!.rank, l0.o_proj!.rank, l0.down_proj!.rank]).toEqual([6, 6, 10, 6]);
    expect([l1.q_proj!.rank, l1.v_proj!.rank, l1.o_proj!.rank, l1.down_proj!.rank]).toEqual([2, 2, 2, 2]);
    expect(l0.o_proj!.scale).toBeCloseTo(12 / Math.sqrt(10), 6);
    expect(l1.v_proj!.scale).toBeCloseTo(3 / Math.sqrt(2), 6);
    expect(l1.q_proj!.scale).toBeCloseTo(12 / Math.sqrt(2), 6);
  });

  it('round-trips through PEFT files, and registration counts its pages without reading weights', async () => {
    const dir = join(root(), 'pattern');
    const written = await writeSyntheticAdapter(dir, config, RANK_PATTERN_SPEC);
    const loaded = await loadAdapter('p', dir, config);
    expect(loaded.rank).toBe(16);
    for (let l = 0; l < config.numLayers; l++)
      for (const m of TARGET_MODULES) expect(loaded.layers[l][m]).toEqual(written.layers[l][m]);
    const summary = await summarizeAdapter(dir, config);
    expect(summary.rank).toBe(16);
    expect(summary.ranks[1]).toMatchObject({ q_proj: 4, v_proj: 8, down_proj: 16 });
    const pages = adapterPageCount(config, loaded);
    expect(pagesForModuleRanks(config, summary.ranks)).toBe(pages);
    // Nothing padded: fewer pages than the same modules all at the largest rank.
    const allModules = Array.from({ length: config.numLayers }, () => [...TARGET_MODULES]);
    expect(pages).toBeLessThan(pagesForTargets(config, 16, allModules));
  });

  it('the reference engine equals the merged weights (prefill and decode, scattered pages)', async () => {
    const h = referenceHarness(weights, 2000, 5);
    for (const [i, a] of [adapter, rslora].entries()) {
      const layout = h.load(a);
      expect(await worstDiffFromMerged(h.engine, h.sequenceStep, weights, a, layout, i + 1)).toBeLessThan(
        TOLERANCE,
      );
    }
  });
});

describe('rank_pattern adapters on the onnx engine: stacked slots and segments', () => {
  let ref: ReferenceHarness;
  const engines: Record<'stacked' | 'gathered' | 'mixed', OnnxEngine> = {} as never;
  let nextSeq = 1;

  beforeAll(async () => {
    ref = referenceHarness(weights, 3000);
    engines.stacked = await OnnxEngine.create(weights, ref.pool, { threads: 1 });
    engines.gathered = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 0 });
    // Ten rows: some of a batch's adapters fit in a module's stack, the others are gathered.
    engines.mixed = await OnnxEngine.create(weights, ref.pool, { threads: 1, stackRows: 10 });
  });

  afterAll(async () => {
    for (const e of Object.values(engines)) await e?.close();
  });

  /** Loads the adapter into every engine, on consecutive or shuffled pages. */
  const load = (adapter: LoraAdapter, scatter: boolean): AdapterLayout =>
    ref.loadInto(Object.values(engines), adapter, scatter ? 29 : undefined);

  it.each([
    ['stacked', false],
    ['stacked', true],
    ['gathered', true],
  ] as const)(
    '%s (pages scattered: %s): logits equal the per-module merged weights',
    async (kind, scatter) => {
      for (const spec of [RANK_PATTERN_SPEC, RSLORA_PATTERN_SPEC]) {
        const adapter = syntheticAdapter(config, spec);
        const layout = load(adapter, scatter);
        const seq = nextSeq++;
        expect(
          await worstDiffFromMerged(engines[kind], ref.sequenceStep, weights, adapter, layout, seq),
        ).toBeLessThan(TOLERANCE);
        ref.kv.free(seq);
      }
      expect(engines[kind].numStackedAdapters > 0).toBe(kind === 'stacked');
    },
  );

  it('one batch mixing stacked and gathered pattern and uniform adapters equals the reference', async () => {
    const slotted = load(syntheticAdapter(config, { ...RANK_PATTERN_SPEC, seed: 51 }), false);
    const gathered = load(syntheticAdapter(config, { ...RSLORA_PATTERN_SPEC, seed: 52 }), true);
    const uniform = load(
      syntheticAdapter(config, {
        name: 'u',
        rank: 3,
        alpha: 6,
        targetModules: ['q_proj', 'down_proj'],
        seed: 53,
      }),
      true,
    );
    const seqs = [slotted, gathered, uniform, null].map((layout, i) => ({
      id: nextSeq++,
      layout,
      tokens: randomTokens(2 + i, config.vocabSize, 70 + i),
    }));
    const plan = { sequences: seqs.map((s) => ref.sequenceStep(s.id, s.tokens, 0, s.layout, 'all')) };
    const expected = await ref.engine.step(plan);
    expect(maxAbsDiff(await engines.mixed.step(plan), expected)).toBeLessThan(TOLERANCE);
    expect(engines.mixed.numStackedAdapters).toBeGreaterThan(0);
    for (const s of seqs) ref.kv.free(s.id);
  });
});
