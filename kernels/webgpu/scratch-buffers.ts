import { createStorageBuffer, writeBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';

/**
 * Named device buffers that grow to the largest step seen and are then reused, so bind groups
 * (cached by buffer) are reused too: a step allocates nothing once shapes have been seen.
 */
export class ScratchBuffers {
  private readonly buffers = new Map<string, GPUBuffer>();

  constructor(private readonly ctx: WebGpuContext) {}

  /** A buffer of at least `bytes` under `name` (contents undefined after growth). */
  get(name: string, bytes: number): GPUBuffer {
    const existing = this.buffers.get(name);
    if (existing && existing.size >= bytes) return existing;
    if (existing) {
      this.ctx.pipelines.forgetBuffer(existing);
      existing.destroy();
    }
    // Grow with headroom so slowly lengthening batches do not reallocate every step.
    const size = Math.max(bytes, existing ? Math.ceil(existing.size * 1.5) : 0);
    const buffer = createStorageBuffer(this.ctx, size, `scratch:${name}`);
    this.buffers.set(name, buffer);
    return buffer;
  }

  /** `get` and fill with `data`. */
  upload(name: string, data: ArrayBufferView): GPUBuffer {
    const buffer = this.get(name, data.byteLength);
    writeBuffer(this.ctx, buffer, 0, data);
    return buffer;
  }

  destroy(): void {
    for (const b of this.buffers.values()) {
      this.ctx.pipelines.forgetBuffer(b);
      b.destroy();
    }
    this.buffers.clear();
  }
}
