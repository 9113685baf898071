import { describe, expect, it } from 'vitest';
import { blockRowsOf, LoraSlotStack } from '../../kernels/onnx/lora-slot-stack.js';
import {
  type AdapterLayout,
  adapterPageCount,
  layoutAdapter,
  writeScaledAdapterRows,
} from '../../memory/adapter-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';

/**
 * LoraSlotStack's placement, step by step: where adapters land, when the masked products' waste
 * bound (every stacked token × every row read ≤ 8 × exact products) turns one away, new or
 * already stacked, and which stale adapters give up their rows.
 */
const config = syntheticWeights({ ...TINY_SPEC, seed: 3 }).config;
const pool = new PagePool(4000, config.hiddenSize);
const storage = new Float32Array(pool.numPages * pool.pageSize);
const one = () => 1;

function adapterOfRank(rank: number, seed: number): AdapterLayout {
  const adapter = syntheticAdapter(config, {
    name: `r${rank}-${seed}`,
    rank,
    alpha: rank,
    targetModules: ['q_proj'],
    seed,
  });
  return layoutAdapter(config, adapter, pool.allocate(adapterPageCount(config, adapter), 'adapter'));
}

describe('LoraSlotStack placement', () => {
  it("reads only a step's window of rows: an adapter alone high in the stack stays, and a new one goes beside it rather than widen the window", () => {
    const stack = new LoraSlotStack(storage, config, 64);
    const big = adapterOfRank(32, 1);
    const high = adapterOfRank(4, 2);
    expect([...stack.place('q_proj', [big], stack.beginStep(), one)]).toEqual([[big, 0]]);
    expect(stack.place('q_proj', [big, high], stack.beginStep(), one).get(high)).toBe(32);
    // Alone, high's window is its own 4 rows: it stays, and big stays stacked.
    expect(stack.place('q_proj', [high], stack.beginStep(), one).get(high)).toBe(32);
    expect(stack.rowsOf(big, 'q_proj')).toBe(32);
    // The step reads rows 32–39 with fresh on the free rows 36–39 (0–35 if it took big's rows 0–3).
    const fresh = adapterOfRank(4, 5);
    const placed = stack.place('q_proj', [high, fresh], stack.beginStep(), one);
    expect(placed.get(fresh)).toBe(36);
    expect(stack.rowsOf(big, 'q_proj')).toBe(32);
  });

  it("moves stacked adapters that lie far apart into one window barely wider than the step's rows", () => {
    // Decode reads every row of a step's window: 4 rank-8 adapters left at rows 0, 80, 160 and 248
    // by earlier steps would read 256 rows for 32. Three are copied in again beside the first.
    const stack = new LoraSlotStack(storage, config, 256);
    const adapters = Array.from({ length: 32 }, (_, i) => adapterOfRank(8, 100 + i));
    stack.place('q_proj', adapters, stack.beginStep(), one);
    const step = [0, 10, 20, 31].map((i) => adapters[i]);
    const placed = stack.place('q_proj', step, stack.beginStep(), one);
    expect(step.map((a) => placed.get(a))).toEqual([0, 8, 16, 24]);
    // The stale adapters on those rows gave them up; the others stay stacked where they were.
    expect([1, 2, 3].map((i) => stack.rowsOf(adapters[i], 'q_proj'))).toEqual([0, 0, 0]);
    expect(stack.rowsOf(adapters[4], 'q_proj')).toBe(8);
    // A later step of the same adapters finds them in its window and keeps them there.
    const again = stack.place('q_proj', step, stack.beginStep(), one);
    expect(step.map((a) => again.get(a))).toEqual([0, 8, 16, 24]);
  });

  it("gathers a stacked adapter whose rows would widen a step's window past the bound", () => {
    const stack = new LoraSlotStack(storage, config, 128);
    const big = adapterOfRank(64, 3);
    const small = adapterOfRank(4, 4);
    stack.place('q_proj', [big, small], stack.beginStep(), one);
    expect(stack.rowsOf(small, 'q_proj')).toBe(4);
    // 20 tokens of small, then big's one: the window 0–68 would multiply 21 tokens by 68 rows
    // (masked) or pad big's blocks to 20 places (blocked), against 8 × (80 + 64): big is gathered.
    const tokens = (a: AdapterLayout) => (a === small ? 20 : 1);
    const placed = stack.place('q_proj', [small, big], stack.beginStep(), tokens);
    expect(placed.get(small)).toBe(64);
    expect(placed.has(big)).toBe(false);
  });

  it('protects the adapters a step names when it begins (a plan run in parts)', () => {
    const stack = new LoraSlotStack(storage, config, 8);
    const first = adapterOfRank(4, 6);
    const second = adapterOfRank(8, 7);
    stack.place('q_proj', [first], stack.beginStep(), one);
    // One step in two parts: the second part's adapter may not evict the first part's.
    const step = stack.beginStep([first, second]);
    expect(stack.place('q_proj', [second], step, one).has(second)).toBe(false);
    expect(stack.rowsOf(first, 'q_proj')).toBe(4);
    // A later step that does not name `first` lets its rows go.
    expect(stack.place('q_proj', [second], stack.beginStep(), one).get(second)).toBe(0);
  });

  it('puts a new adapter on the lowest rows the step leaves, evicting the stale adapters there', () => {
    const stack = new LoraSlotStack(storage, config, 64);
    const stale = Array.from({ length: 8 }, (_, i) => adapterOfRank(4, 10 + i));
    const first = stack.place('q_proj', stale, stack.beginStep(), one);
    expect([...first.values()]).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    // Rows 32–35 are free, but 36 rows for one rank-4 token break the bound: rows 0–3 instead.
    const fresh = adapterOfRank(4, 20);
    expect(stack.place('q_proj', [fresh], stack.beginStep(), one).get(fresh)).toBe(0);
    expect(stack.rowsOf(stale[0], 'q_proj')).toBe(0);
    expect(stack.rowsOf(stale[1], 'q_proj')).toBe(4);
    expect(stack.numStacked).toBe(8);
  });

  it('starts adapters of ranks 8 to 64 on multiples of 8, so their rows cut into shared blocks of 8', () => {
    const stack = new LoraSlotStack(storage, config, 256);
    const ranks = [8, 16, 8, 32, 64];
    const adapters = ranks.map((r, i) => adapterOfRank(r, 30 + i));
    const placed = stack.place('q_proj', adapters, stack.beginStep(), one);
    expect(adapters.map((a) => placed.get(a))).toEqual([0, 8, 24, 32, 64]);
    expect(blockRowsOf(adapters.map((a, i) => ({ first: placed.get(a)!, rows: ranks[i] })))).toBe(8);
    // A rank-12 adapter starts on a multiple of 4 and narrows the blocks to 4 rows; one of rank 6
    // (on a multiple of 2) leaves no block of at least 4.
    const twelve = adapterOfRank(12, 40);
    const at = stack.place('q_proj', [...adapters, twelve], stack.beginStep(), one).get(twelve)!;
    expect(at).toBe(128);
    expect(
      blockRowsOf([
        { first: 0, rows: 8 },
        { first: at, rows: 12 },
      ]),
    ).toBe(4);
    expect(
      blockRowsOf([
        { first: 0, rows: 8 },
        { first: 8, rows: 6 },
      ]),
    ).toBe(0);
    expect(blockRowsOf([])).toBe(0);
  });

  for (const [dtype, bad] of [
    ['F16', 0x7c00],
    ['F16', 0xfe01],
    ['BF16', 0xff80],
    ['BF16', 0x7fc1],
  ] as const)
    it(`gathers a module whose ${dtype} Bᵀ holds the pattern 0x${bad.toString(16)} (Inf or NaN), found as its pages are written`, () => {
      const f32 = syntheticAdapter(config, {
        name: `${dtype}-${bad}`,
        rank: 4,
        alpha: 4,
        targetModules: ['q_proj', 'k_proj'],
        seed: 9,
      });
      const stored = storeAdapter(f32, dtype);
      (stored.layers[1].k_proj!.b.data as Uint16Array)[5] = bad;
      const layout = layoutAdapter(
        config,
        stored,
        pool.allocate(adapterPageCount(config, stored), 'adapter'),
      );
      const stack = new LoraSlotStack(storage, config, 16);
      stack.noteWrite(layout, writeScaledAdapterRows(storage, pool.pageSize, layout, stored));
      expect(stack.place('q_proj', [layout], stack.beginStep(), one).get(layout)).toBe(0);
      expect(stack.place('k_proj', [layout], stack.beginStep(), one).has(layout)).toBe(false);
      pool.free(layout.allPages);
    });

  it('gathers a module whose Bᵀ is finite in the file but overflows f32 once scaled (the pages hold it scaled)', () => {
    const adapter = syntheticAdapter(config, {
      name: 'overflows-when-scaled',
      rank: 4,
      alpha: 16, // scale 4
      targetModules: ['q_proj', 'v_proj'],
      seed: 12,
    });
    adapter.layers[0].v_proj!.b[3] = 3e38; // finite; × 4 is past f32's largest value
    const stored = storeAdapter(adapter);
    const layout = layoutAdapter(config, stored, pool.allocate(adapterPageCount(config, stored), 'adapter'));
    const nonFinite = writeScaledAdapterRows(storage, pool.pageSize, layout, stored);
    expect([...nonFinite]).toEqual(['v_proj']);
    const stack = new LoraSlotStack(storage, config, 16);
    stack.noteWrite(layout, nonFinite);
    expect(stack.place('q_proj', [layout], stack.beginStep(), one).get(layout)).toBe(0);
    expect(stack.place('v_proj', [layout], stack.beginStep(), one).has(layout)).toBe(false);
    pool.free(layout.allPages);
  });
});
