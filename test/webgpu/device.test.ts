import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createStorageBuffer } from '../../kernels/webgpu/buffers.js';
import { WebGpuKernelError } from '../../kernels/webgpu/device.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { openSuiteContext } from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu device');

describe.skipIf(!ctx)('webgpu device set-up', () => {
  it("asks for the adapter's limits, not WebGPU's small defaults", () => {
    const gpu = ctx!;
    expect(gpu.maxBindingBytes).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(gpu.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    expect(typeof gpu.adapter.isFallbackAdapter).toBe('boolean');
  });

  it('turns a shader error into a typed error naming the kernel, and keeps working afterwards', async () => {
    const gpu = ctx!;
    const broken = gpu.pipelines.pipeline(
      'broken',
      'broken_kernel',
      () => '@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }',
    );
    const buffer = createStorageBuffer(gpu, 16, 'unused');
    const failure = runPass(gpu, (pass) => {
      pass.setPipeline(broken);
      pass.dispatchWorkgroups(1);
    });
    await expect(failure).rejects.toBeInstanceOf(WebGpuKernelError);
    await expect(failure).rejects.toThrow(/broken_kernel/);
    await runPass(gpu, () => {});
    buffer.destroy();
  });

  it('caches pipelines by key and bind groups by buffers', () => {
    const gpu = ctx!;
    const code = () =>
      '@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0; }';
    const first = gpu.pipelines.pipeline('cache-probe', 'cache_probe', code);
    expect(gpu.pipelines.pipeline('cache-probe', 'cache_probe', code)).toBe(first);
    const buffer = createStorageBuffer(gpu, 16, 'probe');
    const group = gpu.pipelines.bindGroup(first, [{ buffer }]);
    expect(gpu.pipelines.bindGroup(first, [{ buffer }])).toBe(group);
    gpu.pipelines.forgetBuffer(buffer);
    expect(gpu.pipelines.bindGroup(first, [{ buffer }])).not.toBe(group);
    buffer.destroy();
  });

  it('lets a Node process exit once the context is destroyed', () => {
    const script = fileURLToPath(new URL('./fixtures/open-and-close.ts', import.meta.url));
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
      timeout: 60_000,
      encoding: 'utf8',
    });
    expect(run.error).toBeUndefined();
    expect(run.status).toBe(0);
  });
});
