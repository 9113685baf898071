import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Launcher of rmsnorm.wgsl (plain, and fused with the residual add). */
export class RmsNormKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  /** y[rows, hidden] = rmsnorm(x) · weight. */
  encode(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    rows: number,
    hidden: number,
    weight: GPUBuffer,
    eps: number,
    y: GPUBuffer,
  ): void {
    this.dispatch(pass, 'rmsnorm', [x, weight, y], rows, hidden, eps);
  }

  /** h += delta (in place), then y = rmsnorm(h) · weight: the residual add and the next norm in one pass. */
  encodeAdd(
    pass: GPUComputePassEncoder,
    h: GPUBuffer,
    delta: GPUBuffer,
    rows: number,
    hidden: number,
    weight: GPUBuffer,
    eps: number,
    y: GPUBuffer,
  ): void {
    this.dispatch(pass, 'add_rmsnorm', [h, weight, y, delta], rows, hidden, eps);
  }

  private dispatch(
    pass: GPUComputePassEncoder,
    entry: string,
    buffers: GPUBuffer[],
    rows: number,
    hidden: number,
    eps: number,
  ): void {
    if (hidden % 4 !== 0) throw new Error(`rmsnorm: hidden ${hidden} is not a multiple of 4`);
    const pipeline = this.ctx.pipelines.pipeline('rmsnorm', 'rmsnorm', () => loadWgsl('rmsnorm.wgsl'), entry);
    const imm = new Immediates(2);
    imm.u32[0] = hidden / 4;
    imm.f32[1] = eps;
    encodeDispatch(
      this.ctx,
      pass,
      pipeline,
      buffers.map((buffer) => ({ buffer })),
      imm,
      rows,
    );
  }
}
