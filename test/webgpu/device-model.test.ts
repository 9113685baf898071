import { describe, expect, it } from 'vitest';
import { deviceWeightBytes } from '../../kernels/engine-factory.js';
import type { StorageDtype } from '../../kernels/webgpu/buffers.js';
import { type DeviceModel, destroyModel, uploadModel } from '../../kernels/webgpu/device-model.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { openSuiteContext } from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu device model');

/** Every buffer the model holds on the device, each counted once (a tied lm_head is the table). */
function deviceBytes(model: DeviceModel): { bytes: number; buffers: number } {
  const seen = new Set<GPUBuffer>();
  const add = (b: GPUBuffer | null) => b && seen.add(b);
  for (const w of [
    model.embedTokens,
    model.lmHead,
    ...model.layers.flatMap((l) => TARGET_MODULES.map((m) => l.linear[m])),
  ]) {
    for (const chunk of w.data.chunks) add(chunk);
    add(w.scales);
  }
  for (const l of model.layers) {
    add(l.inputNorm);
    add(l.postAttentionNorm);
  }
  add(model.finalNorm);
  return { bytes: [...seen].reduce((n, b) => n + b.size, 0), buffers: seen.size };
}

describe.skipIf(!ctx)('webgpu device model: the bytes --gpu-memory-utilization sets aside', () => {
  for (const tied of [false, true])
    it(`deviceWeightBytes is what uploadModel allocates, per storage (${tied ? 'tied' : 'untied'} embeddings)`, () => {
      const gpu = ctx!;
      const weights = syntheticWeights({ ...TINY_SPEC, tieWordEmbeddings: tied, seed: 3 });
      const sizes = new Map<StorageDtype, number>();
      for (const dtype of ['f32', 'f16', 'bf16', 'int8', 'int4'] as const) {
        if (dtype === 'f16' && !gpu.hasF16) continue;
        const model = uploadModel(gpu, weights, dtype);
        const { bytes, buffers } = deviceBytes(model);
        destroyModel(gpu, model);
        const quantized = dtype === 'int8' || dtype === 'int4';
        const expected = deviceWeightBytes(
          weights.config,
          quantized ? 'auto' : dtype,
          quantized ? dtype : null,
        );
        // Buffers are padded to 16 bytes.
        expect(bytes).toBeGreaterThanOrEqual(expected);
        expect(bytes - expected).toBeLessThan(16 * buffers);
        sizes.set(dtype, expected);
      }
      expect(sizes.get('int4')!).toBeLessThan(sizes.get('int8')!);
      expect(sizes.get('bf16')!).toBeLessThan(sizes.get('f32')!);
      // Tied, bf16's lm_head is the f32 table itself while int8 adds codes of its own (padded to
      // a 128-wide block at this tiny width).
      if (!tied) expect(sizes.get('int8')!).toBeLessThan(sizes.get('bf16')!);
    });

  it('counts auto as f32: shader-f16 is known only once a device is open', () => {
    const { config } = syntheticWeights(TINY_SPEC);
    expect(deviceWeightBytes(config, 'auto', null)).toBe(deviceWeightBytes(config, 'f32', null));
  });
});
