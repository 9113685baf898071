import { describe, expect, it } from 'vitest';
import { applyRope } from '../../kernels/reference/rope.js';
import { type LlamaConfig, parseLlamaConfig } from '../../model/llama-config.js';
import { ropeInvFrequencies } from '../../model/rope-frequencies.js';

/** headDim 8 and theta 10⁴ make the unscaled inverse frequencies exactly 1, 0.1, 0.01, 0.001. */
function config(ropeScaling: Record<string, unknown> | null): LlamaConfig {
  return parseLlamaConfig({
    hidden_size: 16,
    num_attention_heads: 2,
    num_hidden_layers: 1,
    intermediate_size: 32,
    vocab_size: 10,
    rope_theta: 10000,
    rope_scaling: ropeScaling,
  });
}

function expectClose(actual: Float32Array, expected: number[], relative = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (const [i, e] of expected.entries()) {
    expect(Math.abs(actual[i] - e)).toBeLessThanOrEqual(relative * Math.abs(e));
  }
}

describe('ropeInvFrequencies', () => {
  it('default: 1 / theta^(2i/d)', () => {
    expectClose(ropeInvFrequencies(config(null)), [1, 0.1, 0.01, 0.001]);
  });

  it('linear: divided by factor', () => {
    expectClose(ropeInvFrequencies(config({ type: 'linear', factor: 4 })), [0.25, 0.025, 0.0025, 0.00025]);
  });

  it("llama3: HF _compute_llama3_parameters' three bands, derived by hand", () => {
    // factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 1024:
    //   low_freq_wavelen = 1024 / 1 = 1024, high_freq_wavelen = 1024 / 4 = 256.
    //   wavelen = 2π / inv_freq = 6.283, 62.83, 628.3, 6283.2
    //   i=0, i=1: wavelen < 256 → high frequency, kept: 1, 0.1
    //   i=3: wavelen > 1024 → low frequency, divided by factor: 0.001 / 8 = 0.000125
    //   i=2: medium band, smooth = (1024 / 628.3185 − 1) / (4 − 1) = 0.2099155391
    //        (1 − smooth) · 0.01 / 8 + smooth · 0.01 = 0.003086760967
    const invFreq = ropeInvFrequencies(
      config({
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 1024,
      }),
    );
    expectClose(invFreq, [1, 0.1, 0.003086760967, 0.000125]);
  });
});

describe('applyRope', () => {
  const invFreq = new Float32Array([1, 0.1]); // headDim 4: pairs (0, 2) and (1, 3)

  it('rotates pairs (i, i + headDim/2) by position · invFreq[i], every head alike', () => {
    const x = new Float32Array([1, 0, 0, 1, 2, 0, 0, 2]); // one row, two heads
    applyRope(x, 1, 2, 4, [3], invFreq);
    const c0 = Math.cos(3);
    const s0 = Math.sin(3);
    const angle1 = Math.fround(3 * Math.fround(0.1)); // HF's f32 position · inv_freq
    const c1 = Math.cos(angle1);
    const s1 = Math.sin(angle1);
    // pair 0: (1, 0) → (cos, sin); pair 1: (0, 1) → (−sin, cos)
    const expected = [c0, -s1, s0, c1, 2 * c0, -2 * s1, 2 * s0, 2 * c1];
    for (const [i, e] of expected.entries()) expect(x[i]).toBeCloseTo(e, 6);
  });

  it('position 0 is the identity and each row uses its own position', () => {
    const x = new Float32Array([0.5, -1, 2, 3, 0.5, -1, 2, 3]);
    applyRope(x, 2, 1, 4, [0, 1], invFreq);
    expect(Array.from(x.subarray(0, 4))).toEqual([0.5, -1, 2, 3]);
    expect(x[4]).toBeCloseTo(0.5 * Math.cos(1) - 2 * Math.sin(1), 6);
    expect(x[6]).toBeCloseTo(2 * Math.cos(1) + 0.5 * Math.sin(1), 6);
  });

  it('q·k after rotation depends only on the distance between positions', () => {
    const q = [0.3, -1.2, 0.7, 0.4];
    const k = [-0.5, 0.8, 1.1, -0.2];
    const dotAt = (qPos: number, kPos: number) => {
      const qr = new Float32Array(q);
      const kr = new Float32Array(k);
      applyRope(qr, 1, 1, 4, [qPos], invFreq);
      applyRope(kr, 1, 1, 4, [kPos], invFreq);
      return qr.reduce((sum, v, i) => sum + v * kr[i], 0);
    };
    expect(dotAt(7, 3)).toBeCloseTo(dotAt(4, 0), 5);
    expect(dotAt(12, 10)).toBeCloseTo(dotAt(2, 0), 5);
  });
});
