import type { KvLayout } from '../../memory/kv-layout.js';
import type { AttentionBatch } from '../attention-batch.js';
import { uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';

/**
 * An AttentionBatch packed into one u32 buffer for kv_write.wgsl and paged_attention.wgsl:
 * tokenSeq [T] from 0, tokenPos [T] from T, pageTableOffset [S] from 2T, then the concatenated
 * page tables. Built once per step and shared by every layer.
 */
export interface DeviceAttentionBatch {
  numTokens: number;
  numSequences: number;
  buffer: GPUBuffer;
}

export function packAttentionBatch(batch: AttentionBatch): Uint32Array {
  const T = batch.numTokens;
  const S = batch.numSequences;
  const words = new Uint32Array(2 * T + S + batch.pageTables.length);
  words.set(batch.tokenSeq, 0);
  words.set(batch.tokenPos, T);
  words.set(batch.pageTableOffset, 2 * T);
  words.set(batch.pageTables, 2 * T + S);
  return words;
}

export function uploadAttentionBatch(ctx: WebGpuContext, batch: AttentionBatch): DeviceAttentionBatch {
  return {
    numTokens: batch.numTokens,
    numSequences: batch.numSequences,
    buffer: uploadBuffer(ctx, packAttentionBatch(batch), 'attention-batch'),
  };
}

/** Checks the layout constraints the kernels rely on (vec4 access). */
export function checkKvLayout(layout: KvLayout): void {
  if (layout.kvDim % 4 !== 0 || layout.pageSize % 4 !== 0)
    throw new Error(
      `kv layout: kvDim ${layout.kvDim} and page size ${layout.pageSize} must be multiples of 4`,
    );
}
