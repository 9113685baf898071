import { describe, expect, it } from 'vitest';
import type { StepPlan } from '../../kernels/engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { argmax } from '../../kernels/sample.js';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import { adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { AdapterRegistry } from '../../memory/adapter-registry.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import {
  type SyntheticAdapterSpec,
  syntheticAdapter,
  syntheticWeights,
  TINY_SPEC,
} from '../../model/synthetic.js';
import { RANK_PATTERN_SPEC } from '../kernels/rank-pattern-kit.js';
import { F32_TOLERANCE, openSuiteContext, relativeError, seededRandom, shuffle } from './gpu-test-kit.js';

/**
 * The webgpu engine's adapter-slot table: written when the registry places an adapter, cleared
 * when it evicts, unloads or replaces one, never by a step; a step sends slot ids only.
 */
const ctx = await openSuiteContext('webgpu adapter slots');

const weights = syntheticWeights({ ...TINY_SPEC, seed: 31 });
const { config } = weights;
const all = [...TARGET_MODULES];
/** Six adapters of different ranks and targets, one with per-module ranks; paths name versions. */
const SPECS: Record<string, Omit<SyntheticAdapterSpec, 'name'>> = {
  a: { rank: 8, alpha: 16, targetModules: all, seed: 1 },
  b: { rank: 3, alpha: 6, targetModules: ['q_proj', 'down_proj'], seed: 2 },
  c: { rank: 16, alpha: 8, targetModules: ['v_proj', 'gate_proj', 'up_proj'], seed: 3 },
  d: { ...RANK_PATTERN_SPEC, seed: 4 },
  e: { rank: 1, alpha: 4, targetModules: ['o_proj', 'k_proj'], seed: 5 },
  f: { rank: 32, alpha: 32, targetModules: all, seed: 6 },
};
const NAMES = Object.keys(SPECS);
const PROMPTS = [
  [5, 17, 42, 99, 3, 250, 7],
  [11, 2, 200, 31],
];

/** An adapter by name; path "/v2/…" gives other weights (an in-place update's new version). */
function readAdapter(name: string, path: string) {
  const spec = SPECS[name];
  return syntheticAdapter(config, { name, ...spec, seed: spec.seed + (path.startsWith('/v2') ? 100 : 0) });
}

/**
 * `fragmented`: every even page held (as if by KV) and the odd ones free in shuffled order, so no
 * adapter gets consecutive pages and its slot lists them.
 */
async function setUp(maxLoras: number, fragmented = false) {
  const pool = new PagePool(4000, config.hiddenSize);
  if (fragmented) {
    const pages = Array.from(pool.allocate(pool.numFree, 'kv'));
    pool.free(
      shuffle(
        seededRandom(7),
        pages.filter((p) => p % 2 === 1),
      ),
    );
  }
  const engine = await WebGpuEngine.create(weights, pool, { context: ctx! });
  const registry = new AdapterRegistry(
    pool,
    engine,
    {
      inspect: async () => ({ rank: 1, numPages: 1 }),
      read: async (name, path) => storeAdapter(readAdapter(name, path)),
      pagesOf: (adapter) => adapterPageCount(config, adapter),
    },
    { maxLoras, maxCpuLoras: NAMES.length, maxLoraRank: 64, pagesForFullContext: 0 },
    config,
  );
  for (const name of NAMES) await registry.load(name, `/${name}`, false);
  const kv = new KvCache(pool, kvLayout(config));
  return { pool, engine, registry, kv };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

/** Makes `names` resident as the step loop does between steps, and pins them. */
function admit({ registry }: Setup, names: string[]): void {
  registry.planStep([], names, 0);
  registry.endPlanning();
  for (const name of names) registry.pin(name);
}

/** A prefill step of PROMPTS[i] for names[i], logits of every token. */
function prefillPlan({ registry, kv }: Setup, names: string[], firstSeq: number): StepPlan {
  return {
    sequences: names.map((name, i) => {
      const tokens = PROMPTS[i % PROMPTS.length];
      kv.reserve(firstSeq + i, tokens.length);
      const adapter = registry.layoutOf(name);
      if (!adapter) throw new Error(`${name} is not resident`);
      return {
        seqId: firstSeq + i,
        tokens,
        startPos: 0,
        pageTable: kv.pageTable(firstSeq + i),
        adapter,
        logits: 'all',
      };
    }),
  };
}

/** Greedy continuations of PROMPTS for `names` together (prefill then decode), adapters pinned meanwhile. */
async function greedy(
  setup: Setup,
  names: string[],
  firstSeq: number,
  numTokens: number,
): Promise<number[][]> {
  const { engine, registry, kv } = setup;
  admit(setup, names);
  const vocab = config.vocabSize;
  const plan = prefillPlan(setup, names, firstSeq);
  plan.sequences.forEach((s) => {
    s.logits = 'last';
  });
  let logits = await engine.step(plan);
  const out = names.map((_, i) => [argmax(logits.subarray(i * vocab, (i + 1) * vocab))]);
  const positions = plan.sequences.map((s) => s.tokens.length);
  for (let step = 1; step < numTokens; step++) {
    const decode: StepPlan = {
      sequences: plan.sequences.map((s, i) => {
        kv.reserve(s.seqId, positions[i] + 1);
        return { ...s, tokens: [out[i].at(-1)!], startPos: positions[i], pageTable: kv.pageTable(s.seqId) };
      }),
    };
    logits = await engine.step(decode);
    names.forEach((_, i) => {
      out[i].push(argmax(logits.subarray(i * vocab, (i + 1) * vocab)));
      positions[i]++;
    });
  }
  for (const s of plan.sequences) kv.free(s.seqId);
  for (const name of names) registry.unpin(name);
  return out;
}

describe.skipIf(!ctx)('the adapter-slot table of the webgpu engine', () => {
  it('is written at load only: steps send slot ids and leave the table alone; logits match the reference', async () => {
    const setup = await setUp(NAMES.length);
    const { engine, registry, pool, kv } = setup;
    const reference = ReferenceEngine.create(weights, pool);
    try {
      admit(setup, ['a', 'd']);
      for (const name of ['a', 'd'])
        reference.writeAdapter(registry.layoutOf(name)!, storeAdapter(readAdapter(name, `/${name}`)));
      expect(engine.adapterSlots.numSlots).toBe(2);
      const written = engine.adapterSlots.numWordsWritten;
      const headers = engine.adapterSlots.headers;
      const plan = prefillPlan(setup, ['a', 'd'], 1);
      expect(relativeError(await engine.step(plan), await reference.step(plan))).toBeLessThan(F32_TOLERANCE);
      for (let step = 0; step < 3; step++) {
        const decode: StepPlan = {
          sequences: plan.sequences.map((s) => {
            const startPos = s.startPos + s.tokens.length + step;
            kv.reserve(s.seqId, startPos + 1);
            return { ...s, tokens: [7 + step], startPos, pageTable: kv.pageTable(s.seqId), logits: 'last' };
          }),
        };
        expect(relativeError(await engine.step(decode), await reference.step(decode))).toBeLessThan(
          F32_TOLERANCE,
        );
      }
      expect(engine.adapterSlots.numWordsWritten).toBe(written);
      expect(engine.adapterSlots.headers).toBe(headers);
    } finally {
      await reference.close();
      await engine.close();
    }
  });

  it('an evicted adapter loses its slot; reloaded onto other pages it gives bit-identical logits', async () => {
    const setup = await setUp(1, true);
    const { engine, registry, kv } = setup;
    try {
      admit(setup, ['a']);
      const firstLayout = registry.layoutOf('a')!;
      const first = await engine.step(prefillPlan(setup, ['a'], 1));
      kv.free(1);
      registry.unpin('a');
      // b takes a's place; KV pages held meanwhile push a's next pages elsewhere.
      admit(setup, ['b']);
      registry.unpin('b');
      expect(registry.isResident('a')).toBe(false);
      expect(engine.adapterSlots.numSlots).toBe(1);
      await expect(
        engine.step({ sequences: [{ ...prefillPlan(setup, ['b'], 2).sequences[0], adapter: firstLayout }] }),
      ).rejects.toThrow(/no slot on this engine/);
      kv.free(2);
      kv.reserve(99, 40);
      admit(setup, ['a']);
      const second = await engine.step(prefillPlan(setup, ['a'], 3));
      expect(Array.from(registry.layoutOf('a')!.allPages)).not.toEqual(Array.from(firstLayout.allPages));
      expect(Buffer.from(second.buffer).equals(Buffer.from(first.buffer))).toBe(true);
      expect(registry.counters.numEvictions).toBe(2);
    } finally {
      await engine.close();
    }
  });

  it('an in-place update is seen whole by the next step, never by a step already submitted', async () => {
    const setup = await setUp(NAMES.length);
    const { engine, registry, pool, kv } = setup;
    const reference = ReferenceEngine.create(weights, pool);
    try {
      admit(setup, ['c']);
      reference.writeAdapter(registry.layoutOf('c')!, storeAdapter(readAdapter('c', '/c')));
      const before = await reference.step(prefillPlan(setup, ['c'], 1));
      kv.free(1);
      await registry.load('c', '/v2/c', true);
      // A step is submitted; the update (old pages and slot freed, new ones written) lands behind it.
      const inFlight = engine.step(prefillPlan(setup, ['c'], 2));
      admit(setup, ['c']);
      const updated = registry.layoutOf('c')!;
      expect(relativeError(await inFlight, before)).toBeLessThan(F32_TOLERANCE);
      kv.free(2);
      reference.writeAdapter(updated, storeAdapter(readAdapter('c', '/v2/c')));
      const plan = prefillPlan(setup, ['c'], 3);
      const after = await reference.step(plan);
      expect(relativeError(after, before)).toBeGreaterThan(1e-3);
      expect(relativeError(await engine.step(plan), after)).toBeLessThan(F32_TOLERANCE);
    } finally {
      await reference.close();
      await engine.close();
    }
  });

  it('grows its buffers while a step is in flight without disturbing that step', async () => {
    const setup = await setUp(NAMES.length);
    const { engine, registry, pool } = setup;
    const reference = ReferenceEngine.create(weights, pool);
    try {
      admit(setup, ['b']);
      reference.writeAdapter(registry.layoutOf('b')!, storeAdapter(readAdapter('b', '/b')));
      const plan = prefillPlan(setup, ['b'], 1);
      const headers = engine.adapterSlots.headers;
      const inFlight = engine.step(plan);
      // Twenty more placements outgrow the initial slots: the header buffer the step binds is replaced.
      const extra = syntheticAdapter(config, { name: 'extra', ...SPECS.e });
      for (let i = 0; i < 20; i++)
        engine.writeAdapter(
          layoutAdapter(config, extra, pool.allocate(adapterPageCount(config, extra), 'adapter')),
          storeAdapter(extra),
        );
      expect(engine.adapterSlots.headers).not.toBe(headers);
      expect(relativeError(await inFlight, await reference.step(plan))).toBeLessThan(F32_TOLERANCE);
      expect(relativeError(await engine.step(plan), await reference.step(plan))).toBeLessThan(F32_TOLERANCE);
    } finally {
      await reference.close();
      await engine.close();
    }
  });

  it('six adapters through two resident at a time (scattered pages) give the greedy tokens of all six resident (consecutive pages)', async () => {
    const pairs = [
      ['a', 'b'],
      ['c', 'd'],
      ['e', 'f'],
      ['b', 'c'],
      ['f', 'a'],
      ['d', 'e'],
    ];
    const run = async (maxLoras: number, fragmented: boolean) => {
      const setup = await setUp(maxLoras, fragmented);
      try {
        const tokens: number[][][] = [];
        for (const [i, pair] of pairs.entries()) tokens.push(await greedy(setup, pair, 10 * i, 5));
        return {
          tokens,
          evictions: setup.registry.counters.numEvictions,
          slots: setup.engine.adapterSlots.numSlots,
        };
      } finally {
        await setup.engine.close();
      }
    };
    const resident = await run(NAMES.length, false);
    const tight = await run(2, true);
    expect(resident.evictions).toBe(0);
    expect(tight.evictions).toBeGreaterThanOrEqual(pairs.length * 2 - 2);
    expect(tight.slots).toBeLessThanOrEqual(2);
    expect(tight.tokens).toEqual(resident.tokens);
    // The adapters change the base model's choices, so equality says the right adapter ran.
    expect(new Set(resident.tokens.flat().map((t) => t.join(','))).size).toBeGreaterThan(1);
  });
});
