import { describe, expect, it } from 'vitest';
import { moduleShape } from '../../model/llama-modules.js';
import {
  BYTE_TOKENIZER_SIZE,
  syntheticAdapter,
  syntheticConfig,
  syntheticWeights,
  TINY_SPEC,
} from '../../model/synthetic.js';

describe('syntheticWeights', () => {
  it('is deterministic: same spec, bit-identical weights', () => {
    const a = syntheticWeights(TINY_SPEC);
    const b = syntheticWeights(TINY_SPEC);
    const same = (x: Float32Array, y: Float32Array) => Buffer.from(x.buffer).equals(Buffer.from(y.buffer));
    expect(same(a.embedTokens, b.embedTokens)).toBe(true);
    expect(same(a.layers[1].linear.down_proj, b.layers[1].linear.down_proj)).toBe(true);
    expect(same(a.lmHead, b.lmHead)).toBe(true);
  });

  it('changes with the seed', () => {
    const a = syntheticWeights(TINY_SPEC);
    const b = syntheticWeights({ ...TINY_SPEC, seed: TINY_SPEC.seed + 1 });
    expect(a.layers[0].linear.q_proj).not.toEqual(b.layers[0].linear.q_proj);
  });

  it('has the shapes the config implies and finite, unit-scale values', () => {
    const w = syntheticWeights(TINY_SPEC);
    const c = w.config;
    expect(c.vocabSize).toBe(BYTE_TOKENIZER_SIZE);
    expect(w.embedTokens.length).toBe(c.vocabSize * c.hiddenSize);
    expect(w.lmHead.length).toBe(c.vocabSize * c.hiddenSize);
    expect(w.layers).toHaveLength(c.numLayers);
    const { inFeatures, outFeatures } = moduleShape(c, 'k_proj');
    expect(w.layers[0].linear.k_proj.length).toBe(inFeatures * outFeatures);
    expect(w.finalNorm.every((v) => v > 0.85 && v < 1.15)).toBe(true);
    expect(w.layers[0].linear.gate_proj.every(Number.isFinite)).toBe(true);
  });

  it('ties lm_head to the embedding when asked', () => {
    const w = syntheticWeights({ ...TINY_SPEC, tieWordEmbeddings: true });
    expect(w.lmHead).toBe(w.embedTokens);
  });

  it('rounds to the storage dtype', () => {
    const w = syntheticWeights({ ...TINY_SPEC, dtype: 'BF16' });
    const bits = new Uint32Array(w.layers[0].linear.q_proj.buffer);
    expect(bits.every((x) => (x & 0xffff) === 0)).toBe(true);
  });
});

describe('syntheticAdapter', () => {
  const config = syntheticConfig(TINY_SPEC);
  it('covers only its target modules, with non-zero B and the PEFT scale', () => {
    const ad = syntheticAdapter(config, {
      name: 'x',
      rank: 4,
      alpha: 8,
      targetModules: ['v_proj', 'q_proj'],
      seed: 3,
    });
    expect(ad.layers[0].q_proj).toMatchObject({ rank: 4, scale: 2 });
    expect(ad.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(ad.layers).toHaveLength(config.numLayers);
    const pair = ad.layers[1].v_proj!;
    const { inFeatures, outFeatures } = moduleShape(config, 'v_proj');
    expect(pair.a.length).toBe(4 * inFeatures);
    expect(pair.b.length).toBe(outFeatures * 4);
    expect(pair.b.some((v) => v !== 0)).toBe(true);
    expect(ad.layers[0].k_proj).toBeUndefined();
  });

  it('is deterministic and differs between names', () => {
    const spec = { name: 'a', rank: 8, alpha: 16, targetModules: ['o_proj' as const], seed: 5 };
    expect(syntheticAdapter(config, spec).layers[0].o_proj).toEqual(
      syntheticAdapter(config, spec).layers[0].o_proj,
    );
    expect(syntheticAdapter(config, { ...spec, name: 'b' }).layers[0].o_proj).not.toEqual(
      syntheticAdapter(config, spec).layers[0].o_proj,
    );
  });
});
