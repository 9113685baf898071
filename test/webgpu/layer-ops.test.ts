import { describe, expect, it } from 'vitest';
import { embed } from '../../kernels/reference/embed.js';
import { linear } from '../../kernels/reference/linear.js';
import { rmsNorm } from '../../kernels/reference/rmsnorm.js';
import { applyRope } from '../../kernels/reference/rope.js';
import { siluMul } from '../../kernels/reference/silu-mul.js';
import { createStorageBuffer, readF32, uploadBuffer } from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { EmbedKernel } from '../../kernels/webgpu/embed.js';
import { GemmKernel, uploadWeight } from '../../kernels/webgpu/gemm.js';
import { ResidualKernel } from '../../kernels/webgpu/residual.js';
import { RmsNormKernel } from '../../kernels/webgpu/rmsnorm.js';
import { RopeKernel } from '../../kernels/webgpu/rope.js';
import { SiluMulKernel } from '../../kernels/webgpu/silu-mul.js';
import {
  BLOCK_SIZE,
  dequantizeBlockwise,
  numBlocks,
  QUANTIZED_BITS,
  quantizeBlockwise,
  roundTripWeight,
} from '../../kernels/weight-quantization.js';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { ropeRotation } from '../../model/rope-frequencies.js';
import {
  F16_TOLERANCE,
  F32_TOLERANCE,
  openSuiteContext,
  randomArray,
  randomInt,
  relativeError,
  seededRandom,
} from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu layer ops');

describe.skipIf(!ctx)('webgpu layer ops against kernels/reference', () => {
  it('gemm f32, f16 and bf16, both weight layouts and both kernels, on random shapes, weights split across bindings', async () => {
    const gpu = ctx!;
    const gemm = new GemmKernel(gpu);
    const rand = seededRandom(11);
    for (let trial = 0; trial < 6; trial++) {
      const m = randomInt(rand, 1, 21);
      const k = 4 * randomInt(rand, 1, 48);
      const n = 4 * randomInt(rand, 1, 75);
      const x = randomArray(rand, m * k);
      const w = randomArray(rand, n * k);
      const accumulate = trial % 2 === 1;
      const y0 = randomArray(rand, m * n);
      const expected = linear(x, m, w, k, n);
      if (accumulate)
        for (let i = 0; i < expected.length; i++) expected[i] = Math.fround(expected[i] + y0[i]);
      // bf16 is exact against the weights rounded to bf16, so it gets the f32 tolerance there.
      const expectedBf16 = linear(x, m, roundTripWeight(w, n, k, 'bf16'), k, n);
      if (accumulate)
        for (let i = 0; i < expectedBf16.length; i++) expectedBf16[i] = Math.fround(expectedBf16[i] + y0[i]);
      for (const [dtype, layout, variant] of [
        ['f32', 'out-in', 'tiled'],
        ['f16', 'out-in', 'tiled'],
        ['f32', 'out-in', 'skinny'],
        ['f16', 'out-in', 'skinny'],
        ['f32', 'in-out', 'tiled'],
        ['f16', 'in-out', 'tiled'],
        ['bf16', 'out-in', 'tiled'],
        ['bf16', 'out-in', 'skinny'],
        ['bf16', 'in-out', 'tiled'],
      ] as const) {
        if (dtype === 'f16' && !gpu.hasF16) continue;
        const bytes = dtype === 'f32' ? 4 : 2;
        const split = trial >= 3 ? Math.ceil(n / 3) * k * bytes : undefined;
        const weight = uploadWeight(gpu, w, n, k, dtype, 'w', split, layout);
        if (split && (layout === 'out-in' ? n > 2 : k > 8))
          expect(weight.data.chunks.length).toBeGreaterThan(1);
        const xBuf = uploadBuffer(gpu, x, 'x');
        const yBuf = uploadBuffer(gpu, y0, 'y');
        await runPass(gpu, (pass) => gemm.encode(pass, xBuf, m, weight, yBuf, { accumulate, variant }));
        const y = await readF32(gpu, yBuf, m * n);
        if (dtype === 'bf16') expect(relativeError(y, expectedBf16)).toBeLessThan(F32_TOLERANCE);
        else expect(relativeError(y, expected)).toBeLessThan(dtype === 'f16' ? F16_TOLERANCE : F32_TOLERANCE);
      }
    }
  });

  for (const dtype of ['int8', 'int4'] as const)
    it(`gemm ${dtype} (block-quantized at upload, dequantized in the kernel), both kernels, rows padded to whole blocks, weights split across bindings`, async () => {
      const gpu = ctx!;
      const gemm = new GemmKernel(gpu);
      const rand = seededRandom(dtype === 'int8' ? 16 : 17);
      const block = BLOCK_SIZE[dtype];
      const bits = QUANTIZED_BITS[dtype];
      for (let trial = 0; trial < 6; trial++) {
        const m = randomInt(rand, 1, 21);
        // K past one block, within one, and a whole number of them.
        const k = trial === 0 ? 2 * block : 4 * randomInt(rand, 1, 80);
        const n = 4 * randomInt(rand, 1, 75);
        const x = randomArray(rand, m * k);
        const w = randomArray(rand, n * k);
        const accumulate = trial % 2 === 1;
        const y0 = randomArray(rand, m * n);
        // The oracle multiplies by the weights the codes stand for (the onnx engine's codes).
        const dequantized = dequantizeBlockwise(quantizeBlockwise(w, n, k, bits, block));
        const expected = linear(x, m, dequantized, k, n);
        if (accumulate)
          for (let i = 0; i < expected.length; i++) expected[i] = Math.fround(expected[i] + y0[i]);
        const rowBytes = (numBlocks(k, block) * block * bits) / 8;
        const split = trial >= 3 ? Math.ceil(n / 3) * rowBytes : undefined;
        const weight = uploadWeight(gpu, w, n, k, dtype, 'w', split);
        expect(weight.data.dtype).toBe(dtype);
        if (split && n > 2) expect(weight.data.chunks.length).toBeGreaterThan(1);
        for (const variant of ['tiled', 'skinny'] as const) {
          const xBuf = uploadBuffer(gpu, x, 'x');
          const yBuf = uploadBuffer(gpu, y0, 'y');
          await runPass(gpu, (pass) => gemm.encode(pass, xBuf, m, weight, yBuf, { accumulate, variant }));
          const y = await readF32(gpu, yBuf, m * n);
          expect(relativeError(y, expected)).toBeLessThan(F32_TOLERANCE);
        }
      }
    });

  it('f16 weights refuse a value past f16’s range, naming the weight', () => {
    const gpu = ctx!;
    if (!gpu.hasF16) return;
    const w = new Float32Array(8 * 16).fill(0.5);
    w[19] = 1e5;
    expect(() => uploadWeight(gpu, w, 8, 16, 'f16', 'layers.0.o_proj')).toThrow(
      'layers.0.o_proj[19] = 100000 is outside the f16 range (±65504)',
    );
  });

  it('int8 weights refuse the in-out layout and non-finite values, naming the weight', () => {
    const gpu = ctx!;
    const w = new Float32Array(8 * 16).fill(0.5);
    expect(() => uploadWeight(gpu, w, 8, 16, 'int8', 'layers.0.q_proj', undefined, 'in-out')).toThrow(
      'layers.0.q_proj: int8 weights keep the out-in layout',
    );
    w[17] = Number.NaN;
    expect(() => uploadWeight(gpu, w, 8, 16, 'int8', 'layers.0.q_proj')).toThrow(
      /^layers\.0\.q_proj: weight row 1 column 1 is NaN/,
    );
  });

  it('rmsnorm, and the residual add fused into it', async () => {
    const gpu = ctx!;
    const norm = new RmsNormKernel(gpu);
    const rand = seededRandom(12);
    for (let trial = 0; trial < 4; trial++) {
      const rows = randomInt(rand, 1, 9);
      const hidden = 4 * randomInt(rand, 1, 200);
      const h = randomArray(rand, rows * hidden, 3);
      const delta = randomArray(rand, rows * hidden);
      const weight = randomArray(rand, hidden);
      const eps = 1e-5;
      const hBuf = uploadBuffer(gpu, h, 'h');
      const dBuf = uploadBuffer(gpu, delta, 'delta');
      const wBuf = uploadBuffer(gpu, weight, 'w');
      const yBuf = createStorageBuffer(gpu, rows * hidden * 4, 'y');
      await runPass(gpu, (pass) => norm.encode(pass, hBuf, rows, hidden, wBuf, eps, yBuf));
      expect(
        relativeError(await readF32(gpu, yBuf, rows * hidden), rmsNorm(h, rows, weight, eps)),
      ).toBeLessThan(F32_TOLERANCE);
      await runPass(gpu, (pass) => norm.encodeAdd(pass, hBuf, dBuf, rows, hidden, wBuf, eps, yBuf));
      const summed = h.map((v, i) => v + delta[i]);
      expect(relativeError(await readF32(gpu, hBuf, rows * hidden), summed)).toBe(0);
      expect(
        relativeError(await readF32(gpu, yBuf, rows * hidden), rmsNorm(summed, rows, weight, eps)),
      ).toBeLessThan(F32_TOLERANCE);
    }
  });

  it('residual add and silu_mul', async () => {
    const gpu = ctx!;
    const rand = seededRandom(13);
    const n = 4 * randomInt(rand, 100, 5000);
    const a = randomArray(rand, n, 8);
    const b = randomArray(rand, n, 2);
    const aBuf = uploadBuffer(gpu, a, 'a');
    const bBuf = uploadBuffer(gpu, b, 'b');
    const yBuf = createStorageBuffer(gpu, n * 4, 'y');
    await runPass(gpu, (pass) => new SiluMulKernel(gpu).encode(pass, aBuf, bBuf, yBuf, n));
    expect(relativeError(await readF32(gpu, yBuf, n), siluMul(a, b))).toBeLessThan(F32_TOLERANCE);
    await runPass(gpu, (pass) => new ResidualKernel(gpu).encode(pass, aBuf, bBuf, n));
    expect(
      relativeError(
        await readF32(gpu, aBuf, n),
        a.map((v, i) => v + b[i]),
      ),
    ).toBe(0);
  });

  it('embed from a table split across bindings', async () => {
    const gpu = ctx!;
    const rand = seededRandom(14);
    const vocab = 301;
    const hidden = 24;
    const table = randomArray(rand, vocab * hidden);
    const ids = Array.from({ length: 17 }, () => randomInt(rand, 0, vocab - 1));
    ids.push(0, vocab - 1);
    const weight = uploadWeight(gpu, table, vocab, hidden, 'f32', 'embed', 100 * hidden * 4);
    expect(weight.data.chunks.length).toBe(4);
    const idBuf = uploadBuffer(gpu, Uint32Array.from(ids), 'ids');
    const yBuf = createStorageBuffer(gpu, ids.length * hidden * 4, 'y');
    await runPass(gpu, (pass) => new EmbedKernel(gpu).encode(pass, idBuf, ids.length, weight, yBuf));
    expect(relativeError(await readF32(gpu, yBuf, ids.length * hidden), embed(table, hidden, ids))).toBe(0);
  });

  it('rope with HF rotate_half, default, llama3 and yarn frequencies (yarn scaling cos and sin)', async () => {
    const gpu = ctx!;
    const rand = seededRandom(15);
    for (const scaling of [
      null,
      {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
      { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 },
    ]) {
      const config = parseLlamaConfig({
        hidden_size: 128,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: 256,
        vocab_size: 100,
        rope_theta: 500000,
        rope_scaling: scaling,
      });
      const rotation = ropeRotation(config);
      const rope = new RopeKernel(gpu, rotation, 4096);
      const rows = randomInt(rand, 1, 20);
      const positions = Array.from({ length: rows }, () => randomInt(rand, 0, 4095));
      const x = randomArray(rand, rows * 128);
      const expected = x.slice();
      applyRope(expected, rows, config.numHeads, config.headDim, positions, rotation);
      const xBuf = uploadBuffer(gpu, x, 'x');
      const posBuf = uploadBuffer(gpu, Uint32Array.from(positions), 'positions');
      await runPass(gpu, (pass) => rope.encode(pass, xBuf, rows, config.numHeads, posBuf));
      expect(relativeError(await readF32(gpu, xBuf, rows * 128), expected)).toBeLessThan(F32_TOLERANCE);
      rope.destroy();
    }
  });
});
