import { describe, expect, it } from 'vitest';
import { EngineFailure, type StepPlan } from '../../kernels/engine.js';
import { ReferenceEngine } from '../../kernels/reference/reference-engine.js';
import { WebGpuDeviceLostError, WebGpuOutOfMemoryError } from '../../kernels/webgpu/device.js';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { F32_TOLERANCE, openSuiteContext, relativeError } from './gpu-test-kit.js';

// Its own device: this suite destroys it.
const ctx = await openSuiteContext('webgpu engine failures');

const weights = syntheticWeights({ ...TINY_SPEC, seed: 7 });
const config = weights.config;

/** A one-sequence prefill plan of `length` tokens, its pages reserved in `kv`. */
function prefill(kv: KvCache, seqId: number, length: number): StepPlan {
  if (!kv.reserve(seqId, length)) throw new Error('test pool too small');
  const tokens = Array.from({ length }, (_, i) => (i * 7 + seqId) % config.vocabSize);
  return {
    sequences: [
      { seqId, tokens, startPos: 0, pageTable: kv.pageTable(seqId), adapter: null, logits: 'last' },
    ],
  };
}

describe.skipIf(!ctx)('WebGpuEngine failures', () => {
  it('fails a step whose buffers outgrow the device with WebGpuOutOfMemoryError, then serves smaller steps', async () => {
    const pool = new PagePool(400, config.hiddenSize);
    const kv = new KvCache(pool, kvLayout(config));
    const reference = ReferenceEngine.create(weights, pool);
    // 16 KiB per scratch buffer: the MLP's [tokens × 128] f32 activations fit 32 tokens.
    const gpu = await WebGpuEngine.create(weights, pool, { context: ctx!, maxScratchBytes: 16 * 1024 });
    const tooBig = gpu.step(prefill(kv, 1, 40));
    await expect(tooBig).rejects.toBeInstanceOf(WebGpuOutOfMemoryError);
    await expect(tooBig).rejects.toSatisfy((e: unknown) => e instanceof EngineFailure && !e.fatal);
    expect(gpu.fatalFailure()).toBeNull();
    const plan = prefill(kv, 2, 6);
    expect(relativeError(await gpu.step(plan), await reference.step(plan))).toBeLessThan(F32_TOLERANCE);
    await gpu.close();
  });

  it('turns a device lost mid-step into WebGpuDeviceLostError for that and every later step', async () => {
    const pool = new PagePool(400, config.hiddenSize);
    const kv = new KvCache(pool, kvLayout(config));
    const gpu = await WebGpuEngine.create(weights, pool, { context: ctx! });
    await gpu.step(prefill(kv, 1, 3));
    const inFlight = gpu.step(prefill(kv, 2, 5));
    ctx!.device.destroy();
    await expect(inFlight).rejects.toBeInstanceOf(WebGpuDeviceLostError);
    await expect(inFlight).rejects.toThrow(/WebGPU device lost \(destroyed\)/);
    await expect(
      gpu.sampleStep(prefill(kv, 3, 2), [{ temperature: 0, topK: 0, topP: 1, uniform: 0 }]),
    ).rejects.toBeInstanceOf(WebGpuDeviceLostError);
    const failure = gpu.fatalFailure();
    expect(failure?.fatal).toBe(true);
    expect(failure?.clientMessage).toBe('WebGPU device lost (destroyed)');
    await gpu.close();
  });
});
