import { createStorageBuffer, uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates, itemGrid } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** One adapter's LoRA pair for one module, host f32 (A [rank, in], Bᵀ [rank, out]). */
export interface DenseLora {
  rank: number;
  scale: number;
  a: Float32Array;
  bt: Float32Array;
}

/** Adapters padded to the largest rank on the device, slot 0 all zeros for base tokens. */
export interface PaddedLora {
  maxRank: number;
  inFeatures: number;
  outFeatures: number;
  numTokens: number;
  a: GPUBuffer;
  bt: GPUBuffer;
  adapterOf: GPUBuffer;
  scales: GPUBuffer;
  v: GPUBuffer;
}

/**
 * Lays out `adapters` padded to their largest rank, and each token's slot (tokenAdapter[t] is an
 * index into `adapters`, or -1 for the base model).
 */
export function uploadPaddedLora(
  ctx: WebGpuContext,
  adapters: ReadonlyArray<DenseLora>,
  tokenAdapter: ArrayLike<number>,
  inFeatures: number,
  outFeatures: number,
): PaddedLora {
  const maxRank = Math.max(1, ...adapters.map((x) => x.rank));
  const slots = adapters.length + 1;
  const a = new Float32Array(slots * maxRank * inFeatures);
  const bt = new Float32Array(slots * maxRank * outFeatures);
  adapters.forEach((adapter, i) => {
    a.set(adapter.a, (i + 1) * maxRank * inFeatures);
    bt.set(adapter.bt, (i + 1) * maxRank * outFeatures);
  });
  const T = tokenAdapter.length;
  const adapterOf = new Uint32Array(T);
  const scales = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    const i = tokenAdapter[t];
    adapterOf[t] = i + 1;
    scales[t] = i >= 0 ? adapters[i].scale : 0;
  }
  return {
    maxRank,
    inFeatures,
    outFeatures,
    numTokens: T,
    a: uploadBuffer(ctx, a, 'padded-a'),
    bt: uploadBuffer(ctx, bt, 'padded-bt'),
    adapterOf: uploadBuffer(ctx, adapterOf, 'padded-adapter-of'),
    scales: uploadBuffer(ctx, scales, 'padded-scales'),
    v: createStorageBuffer(ctx, T * maxRank * 4, 'padded-v'),
  };
}

/** Launcher of lora_padded.wgsl (benchmark baseline only). */
export class PaddedLoraKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encodeShrink(pass: GPUComputePassEncoder, lora: PaddedLora, x: GPUBuffer): void {
    const items = lora.numTokens * lora.maxRank;
    const [gx, gy] = itemGrid(items);
    const imm = Immediates.of([lora.numTokens, lora.maxRank, lora.inFeatures / 4, lora.outFeatures / 4, gx]);
    encodeDispatch(this.ctx, pass, this.pipeline('shrink'), this.bindings(lora, x, null), imm, gx, gy);
  }

  encodeExpand(pass: GPUComputePassEncoder, lora: PaddedLora, y: GPUBuffer): void {
    const out4 = lora.outFeatures / 4;
    const imm = Immediates.of([lora.numTokens, lora.maxRank, lora.inFeatures / 4, out4, 0]);
    const groups = Math.ceil(out4 / 64);
    encodeDispatch(
      this.ctx,
      pass,
      this.pipeline('expand'),
      this.bindings(lora, null, y),
      imm,
      groups,
      lora.numTokens,
    );
  }

  private pipeline(entry: 'shrink' | 'expand'): GPUComputePipeline {
    return this.ctx.pipelines.pipeline(
      'lora_padded',
      'lora_padded',
      () => loadWgsl('lora_padded.wgsl'),
      entry,
    );
  }

  /** Each entry point's auto layout holds only the bindings it uses. */
  private bindings(
    lora: PaddedLora,
    x: GPUBuffer | null,
    y: GPUBuffer | null,
  ): Array<GPUBufferBinding | null> {
    if (x) return [{ buffer: x }, { buffer: lora.adapterOf }, { buffer: lora.v }, { buffer: lora.a }];
    return [
      null,
      { buffer: lora.adapterOf },
      { buffer: lora.v },
      null,
      { buffer: lora.bt },
      { buffer: lora.scales },
      { buffer: y as GPUBuffer },
    ];
  }
}
