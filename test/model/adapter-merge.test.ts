import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type MergeSpec, mergeTensor, writeMergedAdapter } from '../../model/adapter-merge.js';
import { readSafetensors } from '../../model/safetensors.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const dir = tempDirForFile('loom-adapter-merge-');

const linear = (weights: number[]): MergeSpec => ({
  weights,
  strategy: 'linear',
  density: 0,
  majoritySignMethod: 'total',
});

describe('mergeTensor', () => {
  it('linear: the weighted sum', () => {
    const out = mergeTensor(
      [Float32Array.of(1, -2, 3), Float32Array.of(4, 5, -6)],
      [0.5, 2],
      linear([0.5, 2]),
    );
    expect([...out]).toEqual([8.5, 9, -10.5]);
  });

  it('ties: magnitude pruning, the majority sign, the mean of the weighted values that carry it', () => {
    const a = Float32Array.of(3, -1, 0.5, 2);
    const b = Float32Array.of(-1, -4, 0.25, 2);
    const spec = {
      weights: [1, 2],
      strategy: 'ties' as const,
      density: 0.5,
      majoritySignMethod: 'total' as const,
    };
    // a keeps 3 and 2, b keeps -4 and 2: element 0 votes 3 (+, only a), 1 votes -4 (−, only b),
    // 2 has nothing left, 3 votes 4 (+, both: (2 + 2·2) / 2).
    expect([...mergeTensor([a, b], [1, 2], spec)]).toEqual([3, -8, 0, 3]);
    // frequency, density 1 (all kept): element 0 has one + and one − sign, and a tie is +;
    // element 2 is (0.5 + 2·0.25) / 2.
    const frequency = { ...spec, density: 1, majoritySignMethod: 'frequency' as const };
    expect([...mergeTensor([a, b], [1, 2], frequency)]).toEqual([3, -4.5, 0.5, 3]);
  });

  it('DARE: each value kept with chance density and divided by it, the same drops for the same key', () => {
    const n = 20_000;
    const a = Float32Array.from({ length: n }, (_, e) => 1 + (e % 7));
    const spec = (dropKey: string, strategy: 'dare_linear' | 'dare_ties' = 'dare_linear'): MergeSpec => ({
      weights: [1],
      strategy,
      density: 0.25,
      majoritySignMethod: 'total',
      dropKey,
    });
    const out = mergeTensor([a], [2], spec('one'));
    let kept = 0;
    out.forEach((v, e) => {
      if (v === 0) return;
      kept++;
      expect(v).toBe(Math.fround(2 * Math.fround(a[e] / 0.25)));
    });
    // Binomial(20,000, 0.25): 5,000 ± 61 (one standard deviation).
    expect(kept).toBeGreaterThan(4_700);
    expect(kept).toBeLessThan(5_300);
    expect(mergeTensor([a], [2], spec('one'))).toEqual(out);
    const other = mergeTensor([a], [2], spec('two'));
    expect(other).not.toEqual(out);
    // Two tensors' drops are their own streams, not one stream's successive words.
    const [first, second] = [0, 1].map((i) => mergeTensor([a, a], [1, 0], spec('one'), [`${i}`, 'x']));
    expect(first).not.toEqual(second);
    // dare_ties: the drops, then ties' sign vote and mean; one source keeps its rescaled values.
    const ties = mergeTensor([a], [2], spec('one', 'dare_ties'));
    expect(ties).toEqual(out);
    // Density 1 drops nothing: DARE is then plain linear.
    expect(mergeTensor([a], [2], { ...spec('one'), density: 1 })).toEqual(a.map((v) => 2 * v));
    expect(() => mergeTensor([a], [1], { ...spec('one'), density: 0 })).toThrow(/above 0/);
  });
});

describe('writeMergedAdapter', () => {
  it('writes each tensor merged over the adapters that hold it, the target modules united', async () => {
    const config = syntheticConfig(TINY_SPEC);
    const first = join(dir(), 'first');
    const second = join(dir(), 'second');
    await writeSyntheticAdapter(first, config, {
      name: 'a',
      rank: 4,
      alpha: 8,
      targetModules: ['q_proj', 'v_proj'],
      seed: 1,
    });
    await writeSyntheticAdapter(second, config, {
      name: 'b',
      rank: 4,
      alpha: 16,
      targetModules: ['v_proj', 'o_proj'],
      seed: 2,
    });
    const out = join(dir(), 'merged');
    await writeMergedAdapter([first, second], linear([0.25, 0.75]), out);
    const [a, b, merged] = await Promise.all(
      [first, second, out].map((d) => readSafetensors(join(d, 'adapter_model.safetensors'))),
    );
    expect([...merged.keys()].sort()).toEqual([...new Set([...a.keys(), ...b.keys()])].sort());
    for (const [name, tensor] of merged) {
      const expected = new Float32Array(tensor.data.length);
      for (const [source, w] of [
        [a, 0.25],
        [b, 0.75],
      ] as const) {
        const t = source.get(name);
        if (t) for (let e = 0; e < expected.length; e++) expected[e] += w * t.data[e];
      }
      expect(tensor.data).toEqual(expected);
    }
    const mergedConfig = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(mergedConfig.target_modules).toEqual(['o_proj', 'q_proj', 'v_proj']);
    expect(mergedConfig.lora_alpha).toBe(8);
  });

  it('refuses adapters of different ranks, and leaves nothing behind', async () => {
    const config = syntheticConfig(TINY_SPEC);
    const r2 = join(dir(), 'r2');
    const r8 = join(dir(), 'r8');
    await writeSyntheticAdapter(r2, config, {
      name: 'a',
      rank: 2,
      alpha: 4,
      targetModules: ['q_proj'],
      seed: 3,
    });
    await writeSyntheticAdapter(r8, config, {
      name: 'b',
      rank: 8,
      alpha: 16,
      targetModules: ['q_proj'],
      seed: 4,
    });
    const out = join(dir(), 'never');
    await expect(writeMergedAdapter([r2, r8], linear([1, 1]), out)).rejects.toThrow(/different ranks: 2, 8/);
    await expect(readFile(join(out, 'adapter_config.json'))).rejects.toThrow();
  });
});
