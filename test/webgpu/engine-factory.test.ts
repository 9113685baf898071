import { describe, expect, it } from 'vitest';
import {
  adapterName,
  assertEngineAvailable,
  createEngine,
  type DtypeChoice,
  deviceMemoryFractionProblem,
  type QuantizationChoice,
} from '../../kernels/engine-factory.js';
import { PagePool } from '../../memory/page-pool.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { StartupError } from '../../model/startup-error.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { openTestContext } from './gpu-test-kit.js';

const probe = await openTestContext('engine factory');
const adapter = probe?.adapter;
const hasF16 = probe?.hasF16 ?? false;
probe?.destroy();

const weights = syntheticWeights(TINY_SPEC);

async function create(
  choice: 'auto' | 'webgpu',
  dtype: DtypeChoice,
  gpuMemoryUtilization: number | null = null,
  quantization: QuantizationChoice | null = null,
  checkpointDtype?: ModelWeights['checkpointDtype'],
) {
  const lines: string[] = [];
  const pool = new PagePool(64, weights.config.hiddenSize);
  const engine = await createEngine(choice, { ...weights, checkpointDtype }, pool, {
    dtype,
    quantization,
    log: (line) => lines.push(line),
    gpuMemoryUtilization,
  });
  await engine.close();
  return { kind: engine.kind, lines };
}

describe('engine factory: --engine and --dtype', () => {
  it.each([
    ['reference', 'f16', 'batched', null, '--dtype f16: the reference engine runs f32 weights only'],
    ['reference', 'bf16', 'batched', null, '--dtype bf16: the reference engine runs f32 weights only'],
    [
      'reference',
      'auto',
      'batched',
      'int8',
      '--quantization int8: the reference engine runs f32 weights only',
    ],
    [
      'onnx',
      'bf16',
      'batched',
      'int8',
      "--quantization int8: it sets the linear weights' storage itself; drop --dtype bf16",
    ],
    [
      'onnx',
      'auto',
      'merged',
      'int4',
      '--lora-mode merged: merging adapters rewrites f32 weights; it cannot run with --quantization int4',
    ],
    [
      'onnx',
      'f16',
      'merged',
      null,
      '--lora-mode merged: merging adapters rewrites f32 weights; it cannot run with --dtype f16',
    ],
  ] as const)(
    'refuses %s with --dtype %s, --lora-mode %s, --quantization %s before anything loads',
    (engine, dtype, mode, quantization, message) => {
      expect(() => assertEngineAvailable(engine, dtype, mode, quantization)).toThrow(StartupError);
      expect(() => assertEngineAvailable(engine, dtype, mode, quantization)).toThrow(message);
    },
  );

  it('lets webgpu and auto take int8, int4 and bf16', () => {
    for (const engine of ['webgpu', 'auto'] as const) {
      for (const quantization of ['int8', 'int4'] as const)
        expect(() => assertEngineAvailable(engine, 'auto', 'batched', quantization)).not.toThrow();
      expect(() => assertEngineAvailable(engine, 'bf16')).not.toThrow();
    }
  });

  it('lets the onnx engine take every dtype and quantization', () => {
    for (const dtype of ['auto', 'f32', 'f16', 'bf16'] as const)
      expect(() => assertEngineAvailable('onnx', dtype)).not.toThrow();
    for (const quantization of ['int8', 'int4'] as const) {
      expect(() => assertEngineAvailable('onnx', 'auto', 'batched', quantization)).not.toThrow();
      expect(() => assertEngineAvailable('auto', 'f32', 'padded', quantization)).not.toThrow();
    }
  });

  it('names an adapter by its description’s first word', () => {
    const base = {
      vendor: 'mesa',
      architecture: 'software',
      device: 'llvmpipe-llvm-15',
      isFallbackAdapter: true,
    };
    expect(adapterName({ ...base, description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)' })).toBe('llvmpipe');
    expect(adapterName({ ...base, description: '' })).toBe('llvmpipe-llvm-15');
  });

  it('--gpu-memory-utilization left as a fraction of host memory: fine on a software adapter, refused on a hardware one', () => {
    const base = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' };
    const hardware = deviceMemoryFractionProblem({ ...base, isFallbackAdapter: false }, 0.9);
    expect(hardware).toMatch(/^--gpu-memory-utilization 0\.9: no GPU memory size is known for NVIDIA H200/);
    expect(hardware).toMatch(/--pool-size/);
    expect(deviceMemoryFractionProblem({ ...base, isFallbackAdapter: true }, 0.9)).toBeNull();
    expect(deviceMemoryFractionProblem({ ...base, isFallbackAdapter: false }, null)).toBeNull();
  });

  describe.skipIf(!adapter)('on this machine’s WebGPU adapter', () => {
    it('--gpu-memory-utilization: served on a software adapter, refused before any buffer on a hardware one', async () => {
      if (adapter!.isFallbackAdapter) expect((await create('webgpu', 'f32', 0.5)).kind).toBe('webgpu');
      else await expect(create('webgpu', 'f32', 0.5)).rejects.toThrow(StartupError);
    });

    it('auto: webgpu on a hardware adapter, else onnx with one line saying why', async () => {
      const { kind, lines } = await create('auto', 'auto');
      expect(lines).toHaveLength(1);
      if (adapter!.isFallbackAdapter) {
        expect(kind).toBe('onnx');
        expect(lines[0]).toBe(
          `WebGPU adapter ${adapterName(adapter!)} is a software fallback; using the onnx engine`,
        );
        expect((await create('auto', 'f16')).kind).toBe('onnx');
      } else {
        expect(kind).toBe('webgpu');
        expect(lines[0]).toMatch(/^webgpu engine on /);
      }
    });

    it('webgpu: --dtype auto is f16 where the adapter has shader-f16; f32 and f16 as asked', async () => {
      expect((await create('webgpu', 'auto')).lines).toEqual([
        expect.stringMatching(hasF16 ? /f16 weights$/ : /f32 weights$/),
      ]);
      expect((await create('webgpu', 'f32')).lines).toEqual([expect.stringMatching(/f32 weights$/)]);
      if (hasF16)
        expect((await create('webgpu', 'f16')).lines).toEqual([expect.stringMatching(/f16 weights$/)]);
      else await expect(create('webgpu', 'f16')).rejects.toThrow(/has no shader-f16/);
      // bf16 needs no shader-f16: it is read as the top half of an f32.
      expect((await create('webgpu', 'bf16')).lines).toEqual([expect.stringMatching(/bf16 weights$/)]);
    });

    it('webgpu --dtype auto follows the checkpoint: bf16 for BF16 files, as vLLM keeps a model’s dtype', async () => {
      expect((await create('webgpu', 'auto', null, null, 'BF16')).lines).toEqual([
        expect.stringMatching(/bf16 weights$/),
      ]);
      for (const stored of ['F16', 'F32'] as const)
        expect((await create('webgpu', 'auto', null, null, stored)).lines).toEqual([
          expect.stringMatching(hasF16 ? /f16 weights$/ : /f32 weights$/),
        ]);
      expect((await create('webgpu', 'f32', null, null, 'BF16')).lines).toEqual([
        expect.stringMatching(/f32 weights$/),
      ]);
    });

    it('--quantization int8|int4: codes on webgpu; auto on a software adapter falls back to onnx', async () => {
      for (const quantization of ['int8', 'int4'] as const) {
        expect((await create('webgpu', 'auto', null, quantization)).lines).toEqual([
          expect.stringMatching(new RegExp(`${quantization} weights$`)),
        ]);
        const auto = await create('auto', 'auto', null, quantization);
        expect(auto.kind).toBe(adapter!.isFallbackAdapter ? 'onnx' : 'webgpu');
      }
    });
  });
});
