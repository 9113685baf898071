import type { WebGpuContext } from './device.js';

/** Largest workgroup count per dimension WebGPU guarantees. */
export const MAX_GROUPS_PER_DIM = 65535;

/** Splits `items` invocations of 64-wide groups over x (and y past the per-dimension cap). */
export function itemGrid(items: number): [number, number] {
  const groups = Math.ceil(items / 64);
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1];
  return [MAX_GROUPS_PER_DIM, Math.ceil(groups / MAX_GROUPS_PER_DIM)];
}

/**
 * Per-dispatch scalars for `var<immediate>` (at most 64 bytes): u32 and f32 slots over one
 * buffer, so a struct of mixed fields is filled by position.
 */
export class Immediates {
  readonly u32: Uint32Array;
  readonly f32: Float32Array;
  constructor(slots: number) {
    this.u32 = new Uint32Array(slots);
    this.f32 = new Float32Array(this.u32.buffer);
  }
  static of(values: number[]): Immediates {
    const imm = new Immediates(values.length);
    imm.u32.set(values);
    return imm;
  }
}

/** Records one dispatch of `pipeline` binding `bindings` at group 0, with `immediates`. */
export function encodeDispatch(
  ctx: WebGpuContext,
  pass: GPUComputePassEncoder,
  pipeline: GPUComputePipeline,
  bindings: ReadonlyArray<GPUBufferBinding | null>,
  immediates: Immediates | null,
  groupsX: number,
  groupsY = 1,
): void {
  if (groupsX === 0 || groupsY === 0) return;
  if (groupsX > MAX_GROUPS_PER_DIM || groupsY > MAX_GROUPS_PER_DIM)
    throw new Error(
      `${pipeline.label}: dispatch ${groupsX}×${groupsY} exceeds ${MAX_GROUPS_PER_DIM} per dimension`,
    );
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, ctx.pipelines.bindGroup(pipeline, bindings));
  if (immediates) pass.setImmediates(0, immediates.u32);
  pass.dispatchWorkgroups(groupsX, groupsY);
}

/** Records `record` into one compute pass, submits it and waits: tests and one-off work. */
export async function runPass(
  ctx: WebGpuContext,
  record: (pass: GPUComputePassEncoder) => void,
): Promise<void> {
  const encoder = ctx.device.createCommandEncoder({ label: 'loom-pass' });
  const pass = encoder.beginComputePass();
  record(pass);
  pass.end();
  ctx.device.queue.submit([encoder.finish()]);
  await ctx.finish();
}
