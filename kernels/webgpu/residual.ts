import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Launcher of residual.wgsl: h[n] += delta[n] (n a multiple of 4). */
export class ResidualKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(pass: GPUComputePassEncoder, h: GPUBuffer, delta: GPUBuffer, n: number): void {
    if (n % 4 !== 0) throw new Error(`residual: ${n} elements is not a multiple of 4`);
    const pipeline = this.ctx.pipelines.pipeline('residual', 'residual', () => loadWgsl('residual.wgsl'));
    const [gx, gy] = itemGrid(n / 4);
    encodeDispatch(
      this.ctx,
      pass,
      pipeline,
      [{ buffer: h }, { buffer: delta }],
      Immediates.of([n / 4, gx]),
      gx,
      gy,
    );
  }
}
