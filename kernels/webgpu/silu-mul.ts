import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Launcher of silu_mul.wgsl: y[n] = silu(gate) · up (n a multiple of 4). */
export class SiluMulKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(pass: GPUComputePassEncoder, gate: GPUBuffer, up: GPUBuffer, y: GPUBuffer, n: number): void {
    if (n % 4 !== 0) throw new Error(`silu_mul: ${n} elements is not a multiple of 4`);
    const pipeline = this.ctx.pipelines.pipeline('silu_mul', 'silu_mul', () => loadWgsl('silu_mul.wgsl'));
    const [gx, gy] = itemGrid(n / 4);
    const bindings = [{ buffer: gate }, { buffer: up }, { buffer: y }];
    encodeDispatch(this.ctx, pass, pipeline, bindings, Immediates.of([n / 4, gx]), gx, gy);
  }
}
