import { describe, expect, it } from 'vitest';
import { applyRope } from '../../kernels/reference/rope.js';
import { type LlamaConfig, parseLlamaConfig } from '../../model/llama-config.js';
import { ropeAttentionScaling, ropeInvFrequencies } from '../../model/rope-frequencies.js';

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

describe('yarn', () => {
  it("HF _compute_yarn_parameters' ramp, derived by hand, and its attention factor", () => {
    // headDim 8, theta 10⁴, factor 4, original 1024, beta_fast 32, beta_slow 1:
    //   correction dim(r) = 8·ln(1024 / (2π·r)) / (2·ln 10⁴)
    //   r = 32: 8·ln(5.0930) / 18.4207 = 0.70697 → floor 0; r = 1: 8·ln(162.975) / 18.4207 = 2.21221 → ceil 3
    //   ramp(i) = clamp((i − 0) / (3 − 0), 0, 1) = 0, 1/3, 2/3, 1
    //   inv_freq(i) = f/4 · ramp + f · (1 − ramp), f = 1, 0.1, 0.01, 0.001
    const yarn = config({ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 1024 });
    expectClose(ropeInvFrequencies(yarn), [1, 0.1 * (1 / 12 + 2 / 3), 0.01 * (2 / 12 + 1 / 3), 0.001 / 4]);
    // 0.1·ln 4 + 1
    expect(ropeAttentionScaling(yarn)).toBeCloseTo(1.1386294361, 9);
    const given = config({
      rope_type: 'yarn',
      factor: 4,
      original_max_position_embeddings: 1024,
      attention_factor: 1,
    });
    expect(ropeAttentionScaling(given)).toBe(1);
    // mscale and mscale_all_dim: their ratio (DeepSeek's), here (0.1·2·ln 4 + 1) / (0.1·ln 4 + 1).
    const ratio = config({ rope_type: 'yarn', factor: 4, mscale: 2, mscale_all_dim: 1 });
    expect(ropeAttentionScaling(ratio)).toBeCloseTo((0.2 * Math.log(4) + 1) / (0.1 * Math.log(4) + 1), 9);
    // truncate false: the ramp from 0.70697 to 2.21221, unrounded.
    const exact = config({
      rope_type: 'yarn',
      factor: 4,
      original_max_position_embeddings: 1024,
      truncate: false,
    });
    const lo = (8 * Math.log(1024 / (2 * Math.PI * 32))) / (2 * Math.log(10000));
    const hi = (8 * Math.log(1024 / (2 * Math.PI))) / (2 * Math.log(10000));
    const ramp = [0, 1, 2, 3].map((i) => Math.min(Math.max((i - lo) / (hi - lo), 0), 1));
    expectClose(
      ropeInvFrequencies(exact),
      [1, 0.1, 0.01, 0.001].map((f, i) => (f / 4) * ramp[i] + f * (1 - ramp[i])),
    );
  });

  it("refuses vLLM's own yarn keys where they would change the rotation, and reads dynamic as HF's plain RoPE within max_position_embeddings", () => {
    expect(() => config({ rope_type: 'yarn', factor: 4, attn_factor: 2 })).toThrow(/attn_factor is vLLM's/);
    expect(ropeAttentionScaling(config({ rope_type: 'yarn', factor: 4, attn_factor: 1 }))).toBeCloseTo(
      1.1386,
      4,
    );
    const dynamic = config({ rope_type: 'dynamic', factor: 2 });
    expectClose(ropeInvFrequencies(dynamic), [1, 0.1, 0.01, 0.001]);
    expect(() => config({ rope_type: 'longrope', factor: 2 })).toThrow(
      /not supported \(linear, llama3, yarn, dynamic\)/,
    );
  });
});

describe('applyRope', () => {
  const rope = { invFreq: new Float32Array([1, 0.1]), attentionScaling: 1 }; // headDim 4: pairs (0, 2) and (1, 3)

  it('rotates pairs (i, i + headDim/2) by position · invFreq[i], every head alike', () => {
    const x = new Float32Array([1, 0, 0, 1, 2, 0, 0, 2]); // one row, two heads
    applyRope(x, 1, 2, 4, [3], rope);
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
    applyRope(x, 2, 1, 4, [0, 1], rope);
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
      applyRope(qr, 1, 1, 4, [qPos], rope);
      applyRope(kr, 1, 1, 4, [kPos], rope);
      return qr.reduce((sum, v, i) => sum + v * kr[i], 0);
    };
    expect(dotAt(7, 3)).toBeCloseTo(dotAt(4, 0), 5);
    expect(dotAt(12, 10)).toBeCloseTo(dotAt(2, 0), 5);
  });
});
