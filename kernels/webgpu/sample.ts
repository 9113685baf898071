import { createStorageBuffer, uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** What the device sampler needs of one row's SamplingParams, plus its uniform draw in [0, 1). */
export interface RowSampling {
  temperature: number;
  topK: number;
  topP: number;
  /** 0 or absent means off (kernels/sample.ts). */
  minP?: number;
  uniform: number;
}

/** Per-row settings as sample.wgsl reads them: temperature, top-k bits, top-p, uniform; min-p, 3 unused. */
export function packSampling(rows: ReadonlyArray<RowSampling>): Float32Array {
  const out = new Float32Array(rows.length * 8);
  const bits = new Uint32Array(out.buffer);
  rows.forEach((r, i) => {
    out[i * 8] = r.temperature;
    bits[i * 8 + 1] = r.topK;
    out[i * 8 + 2] = r.topP;
    out[i * 8 + 3] = r.uniform;
    out[i * 8 + 4] = r.minP ?? 0;
  });
  return out;
}

/** Launcher of sample.wgsl: ids[rows] (u32) from logits [rows, vocab]. */
export class SampleKernel {
  private weights: GPUBuffer | null = null;

  constructor(private readonly ctx: WebGpuContext) {}

  uploadSettings(rows: ReadonlyArray<RowSampling>): GPUBuffer {
    return uploadBuffer(this.ctx, packSampling(rows), 'sample-settings');
  }

  encode(
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    rows: number,
    vocab: number,
    settings: GPUBuffer,
    ids: GPUBuffer,
  ): void {
    const pipeline = this.ctx.pipelines.pipeline('sample', 'sample', () => loadWgsl('sample.wgsl'));
    const weights = this.scratch(rows * vocab * 4);
    const hexDigits = Math.max(1, Math.ceil(Math.log2(vocab) / 4));
    const imm = Immediates.of([vocab, 4 * (hexDigits - 1)]);
    const bindings = [{ buffer: logits }, { buffer: settings }, { buffer: weights }, { buffer: ids }];
    encodeDispatch(this.ctx, pass, pipeline, bindings, imm, rows);
  }

  destroy(): void {
    if (this.weights) {
      this.ctx.pipelines.forgetBuffer(this.weights);
      this.weights.destroy();
      this.weights = null;
    }
  }

  private scratch(bytes: number): GPUBuffer {
    if (this.weights && this.weights.size >= bytes) return this.weights;
    this.destroy();
    this.weights = createStorageBuffer(this.ctx, bytes, 'sample-weights');
    return this.weights;
  }
}
