import { describe, expect, it } from 'vitest';
import { devicePoolBytes } from '../../kernels/engine-factory.js';
import { type DeviceMemoryProbes, readDeviceMemory } from '../../kernels/webgpu/device-memory.js';
import { syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';

const probes = (smi: string | null, amd: number[] = []): DeviceMemoryProbes => ({
  nvidiaSmi: () => smi,
  amdVramTotals: () => amd,
});

describe('GPU memory for --gpu-memory-utilization', () => {
  it("reads nvidia-smi's MiB, the smallest GPU of several", () => {
    expect(readDeviceMemory(probes('143771\n'))).toEqual({ bytes: 143771 * 2 ** 20, source: 'nvidia-smi' });
    expect(readDeviceMemory(probes('81559\n40960\n'))?.bytes).toBe(40960 * 2 ** 20);
  });

  it("falls back to amdgpu's sysfs, and to nothing", () => {
    expect(readDeviceMemory(probes(null, [17163091968]))).toEqual({
      bytes: 17163091968,
      source: 'amdgpu mem_info_vram_total',
    });
    expect(readDeviceMemory(probes('garbage\n'))).toBeNull();
    expect(readDeviceMemory(probes(null))).toBeNull();
  });

  it('gives the pool that fraction of the GPU less the f32 weights, held to the fraction of host memory', () => {
    const { config } = syntheticWeights(TINY_SPEC);
    const gpu = probes(String(16 * 1024));
    const pool = devicePoolBytes('webgpu', 0.5, config, 64 * 2 ** 30, gpu)!;
    expect(pool.deviceBytes).toBe(16 * 2 ** 30);
    expect(pool.weightBytes).toBeGreaterThan(0);
    expect(pool.bytes).toBe(8 * 2 ** 30 - pool.weightBytes);
    expect(devicePoolBytes('auto', 0.5, config, 4 * 2 ** 30, gpu)!.bytes).toBe(2 * 2 ** 30);
  });

  it('leaves the CPU engines and machines without a GPU size to host memory', () => {
    const { config } = syntheticWeights(TINY_SPEC);
    expect(devicePoolBytes('onnx', 0.5, config, 2 ** 30, probes('1000'))).toBeNull();
    expect(devicePoolBytes('webgpu', 0.5, config, 2 ** 30, probes(null))).toBeNull();
  });
});
