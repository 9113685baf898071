import type { RopeRotation } from '../../model/rope-frequencies.js';
import { uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/**
 * (cos, sin) pairs [maxPositions, headDim/2] for rope.wgsl, from the reference's inverse
 * frequencies: the angle is rounded to f32 (HF's f32 `inv_freq @ positions`), cos and sin
 * taken in f64 and rounded once, then times the attention scaling (YaRN's; 1 otherwise).
 */
export function ropeTable(rope: RopeRotation, maxPositions: number): Float32Array {
  const { invFreq, attentionScaling } = rope;
  const half = invFreq.length;
  const table = new Float32Array(maxPositions * half * 2);
  for (let pos = 0; pos < maxPositions; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]);
      table[(pos * half + i) * 2] = Math.fround(Math.cos(angle)) * attentionScaling;
      table[(pos * half + i) * 2 + 1] = Math.fround(Math.sin(angle)) * attentionScaling;
    }
  }
  return table;
}

/** Launcher of rope.wgsl: rotates x[T, numHeads·headDim] in place at `positions` (u32 [T]). */
export class RopeKernel {
  readonly trig: GPUBuffer;
  readonly maxPositions: number;

  constructor(
    private readonly ctx: WebGpuContext,
    rope: RopeRotation,
    maxPositions: number,
  ) {
    this.maxPositions = maxPositions;
    this.trig = uploadBuffer(ctx, ropeTable(rope, maxPositions), 'rope-trig');
    this.half = rope.invFreq.length;
  }

  private readonly half: number;

  encode(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    numTokens: number,
    numHeads: number,
    positions: GPUBuffer,
  ): void {
    const pipeline = this.ctx.pipelines.pipeline('rope', 'rope', () => loadWgsl('rope.wgsl'));
    const imm = Immediates.of([numTokens, numHeads, this.half]);
    const bindings = [{ buffer: x }, { buffer: positions }, { buffer: this.trig }];
    encodeDispatch(
      this.ctx,
      pass,
      pipeline,
      bindings,
      imm,
      Math.ceil((numHeads * this.half) / 64),
      numTokens,
    );
  }

  destroy(): void {
    this.ctx.pipelines.forgetBuffer(this.trig);
    this.trig.destroy();
  }
}
