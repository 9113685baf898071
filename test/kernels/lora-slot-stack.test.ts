import { describe, expect, it } from 'vitest';
import { LoraSlotStack } from '../../kernels/onnx/lora-slot-stack.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { PagePool } from '../../memory/page-pool.js';
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
  it('moves a stacked adapter down when, alone, its rows high in the stack break the bound', () => {
    const stack = new LoraSlotStack(storage, config, 64);
    const big = adapterOfRank(32, 1);
    const high = adapterOfRank(4, 2);
    expect([...stack.place('q_proj', [big], stack.beginStep(), one)]).toEqual([[big, 0]]);
    // One token each: high lands above big, within the bound (2 tokens × 36 rows ≤ 8 × 36).
    expect(stack.place('q_proj', [big, high], stack.beginStep(), one).get(high)).toBe(32);
    // Alone, one token would read 36 rows for 4 of its own: high moves to the bottom, big goes.
    expect(stack.place('q_proj', [high], stack.beginStep(), one).get(high)).toBe(0);
    expect(stack.rowsOf(big, 'q_proj')).toBe(0);
  });

  it("gathers a stacked adapter for a step whose long prompt would multiply the step's other rows", () => {
    const stack = new LoraSlotStack(storage, config, 128);
    const big = adapterOfRank(64, 3);
    const small = adapterOfRank(4, 4);
    stack.place('q_proj', [big, small], stack.beginStep(), one);
    expect(stack.rowsOf(small, 'q_proj')).toBe(4);
    // 20 tokens of small with big's one: 21 × 68 rows against 8 × (64 + 80) — small is gathered.
    const tokens = (a: AdapterLayout) => (a === small ? 20 : 1);
    const placed = stack.place('q_proj', [small, big], stack.beginStep(), tokens);
    expect(placed.has(small)).toBe(false);
    expect(placed.get(big)).toBe(0);
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
});
