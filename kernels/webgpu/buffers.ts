import type { WebGpuContext } from './device.js';

const STORAGE = 0x80; // GPUBufferUsage.STORAGE, readable before the globals are installed
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;

/** Buffers are sized in multiples of 16 bytes so vec4 views and copies never run off the end. */
function paddedSize(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/** A storage buffer of at least `bytes`, readable, writable and copyable. */
export function createStorageBuffer(ctx: WebGpuContext, bytes: number, label: string): GPUBuffer {
  return ctx.device.createBuffer({ label, size: paddedSize(bytes), usage: STORAGE | COPY_SRC | COPY_DST });
}

/** A storage buffer holding `data` (copied through the queue). */
export function uploadBuffer(ctx: WebGpuContext, data: ArrayBufferView, label: string): GPUBuffer {
  const buffer = createStorageBuffer(ctx, data.byteLength, label);
  writeBuffer(ctx, buffer, 0, data);
  return buffer;
}

/** Writes `data` at byte `offset`; pads the tail to 4 bytes as writeBuffer requires. */
export function writeBuffer(
  ctx: WebGpuContext,
  buffer: GPUBuffer,
  offset: number,
  data: ArrayBufferView,
): void {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    ctx.device.queue.writeBuffer(buffer, offset, bytes);
    return;
  }
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  ctx.device.queue.writeBuffer(buffer, offset, padded);
}

/** Copies `bytes` from `buffer` (at byte `offset`) back to the host, after all queued work. */
export async function readBuffer(
  ctx: WebGpuContext,
  buffer: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = ctx.device.createBuffer({ label: 'readback', size, usage: MAP_READ | COPY_DST });
  const encoder = ctx.device.createCommandEncoder({ label: 'readback' });
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
  ctx.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(1);
  const copy = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  ctx.check();
  return copy;
}

export async function readF32(
  ctx: WebGpuContext,
  buffer: GPUBuffer,
  count: number,
  offset = 0,
): Promise<Float32Array> {
  return new Float32Array(await readBuffer(ctx, buffer, count * 4, offset * 4));
}

export async function readU32(
  ctx: WebGpuContext,
  buffer: GPUBuffer,
  count: number,
  offset = 0,
): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(ctx, buffer, count * 4, offset * 4));
}

/**
 * Element storage of a device tensor. int8 and int4 hold block-quantized weight codes (gemm.ts),
 * counted in bytes (an int4 byte holds two codes).
 */
export type StorageDtype = 'f32' | 'f16' | 'bf16' | 'int8' | 'int4';

export const DTYPE_BYTES: Record<StorageDtype, number> = { f32: 4, f16: 2, bf16: 2, int8: 1, int4: 1 };

/**
 * A tensor too big for one storage binding (lavapipe caps a binding at 128 MiB: TinyLlama's f32
 * embedding table is 262 MB, the page pool more), cut into chunks of whole units (rows or
 * pages) that each fit one binding. Element e lives in chunk ⌊e / chunkElements⌋.
 */
export interface SplitBuffer {
  dtype: StorageDtype;
  numElements: number;
  /** Elements per chunk (a multiple of `unitElements`); the last chunk may hold fewer. */
  chunkElements: number;
  unitElements: number;
  chunks: GPUBuffer[];
}

/**
 * Allocates a split tensor of `numElements`, never cutting a unit of `unitElements` (a row or a
 * page, a multiple of 4 elements). `maxChunkBytes` defaults to the device's binding limit.
 */
export function createSplitBuffer(
  ctx: WebGpuContext,
  numElements: number,
  unitElements: number,
  dtype: StorageDtype,
  label: string,
  maxChunkBytes = ctx.maxBindingBytes,
): SplitBuffer {
  if (unitElements % 4 !== 0)
    throw new Error(`${label}: unit of ${unitElements} elements is not a multiple of 4`);
  const unitBytes = unitElements * DTYPE_BYTES[dtype];
  const unitsPerChunk = Math.floor(maxChunkBytes / unitBytes);
  if (unitsPerChunk < 1)
    throw new Error(`${label}: one unit (${unitBytes} B) exceeds a binding (${maxChunkBytes} B)`);
  const chunkElements = unitsPerChunk * unitElements;
  const chunks: GPUBuffer[] = [];
  for (let start = 0; start < numElements; start += chunkElements) {
    const count = Math.min(chunkElements, numElements - start);
    chunks.push(createStorageBuffer(ctx, count * DTYPE_BYTES[dtype], `${label}[${chunks.length}]`));
  }
  if (chunks.length === 0) chunks.push(createStorageBuffer(ctx, 16, `${label}[0]`));
  return { dtype, numElements, chunkElements, unitElements, chunks };
}

/** Writes `data` (f32 values, f16/bf16 bits or code bytes, as the tensor's dtype) starting at element `offset`. */
export function writeSplit(
  ctx: WebGpuContext,
  split: SplitBuffer,
  offset: number,
  data: Float32Array | Uint16Array | Uint8Array,
): void {
  const bytesPer = DTYPE_BYTES[split.dtype];
  if (data.BYTES_PER_ELEMENT !== bytesPer)
    throw new Error(`writeSplit: ${split.dtype} tensor given other data`);
  let done = 0;
  while (done < data.length) {
    const e = offset + done;
    const chunk = Math.floor(e / split.chunkElements);
    const within = e - chunk * split.chunkElements;
    const count = Math.min(data.length - done, split.chunkElements - within);
    writeBuffer(ctx, split.chunks[chunk], within * bytesPer, data.subarray(done, done + count));
    done += count;
  }
}

/** Reads `count` f32 elements of an f32 split tensor from element `offset`. */
export async function readSplitF32(
  ctx: WebGpuContext,
  split: SplitBuffer,
  offset: number,
  count: number,
): Promise<Float32Array> {
  const out = new Float32Array(count);
  let done = 0;
  while (done < count) {
    const e = offset + done;
    const chunk = Math.floor(e / split.chunkElements);
    const within = e - chunk * split.chunkElements;
    const n = Math.min(count - done, split.chunkElements - within);
    out.set(await readF32(ctx, split.chunks[chunk], n, within), done);
    done += n;
  }
  return out;
}

export function destroySplit(ctx: WebGpuContext, split: SplitBuffer): void {
  for (const b of split.chunks) {
    ctx.pipelines.forgetBuffer(b);
    b.destroy();
  }
}

/** Binding entries for every chunk, in order. */
export function splitBindings(split: SplitBuffer): GPUBufferBinding[] {
  return split.chunks.map((buffer) => ({ buffer }));
}

/**
 * A pool split into chunks of whole pages: chunk c holds pages [c·pagesPerChunk, (c+1)·pagesPerChunk).
 * Kernels bind a window of consecutive chunks per dispatch (chunkWindows) and skip pages outside
 * it.
 */
export function pagesPerChunk(pool: SplitBuffer): number {
  return pool.chunkElements / pool.unitElements;
}

/** The chunks (ascending) holding any of `pages`. */
export function chunksHolding(pool: SplitBuffer, pages: ArrayLike<number>): number[] {
  if (pool.chunks.length === 1) return pages.length > 0 ? [0] : [];
  const per = pagesPerChunk(pool);
  const used = new Uint8Array(pool.chunks.length);
  for (let i = 0; i < pages.length; i++) used[Math.floor(pages[i] / per)] = 1;
  const out: number[] = [];
  used.forEach((u, c) => {
    if (u) out.push(c);
  });
  return out;
}

/**
 * Most pool chunks one LoRA dispatch may bind: all of them where the device's storage-binding
 * limit leaves room beside the kernel's `ownBindings`, else as many as it does. One on a software
 * adapter: lavapipe's JIT took minutes on a binding switch inside a hot loop. A dispatch costs
 * an H200 about as much as a LoRA kernel's work at decode: a step's adapters spread over five
 * 2 GiB chunks made a TinyLlama decode step 1.85× slower than the same adapters in one, one
 * dispatch per chunk (bench/webgpu-lora-step).
 */
export function maxPoolChunksPerDispatch(ctx: WebGpuContext, pool: SplitBuffer, ownBindings: number): number {
  if (ctx.adapter.isFallbackAdapter) return 1;
  const limit = ctx.device.limits.maxStorageBuffersPerShaderStage - ownBindings;
  return Math.max(1, Math.min(pool.chunks.length, limit));
}

/**
 * How a step's LoRA dispatches bind the pool: `width` chunks per dispatch (a power of two, up to
 * `maxWidth`: the smallest that spans the chunks holding the step's pages, so a step whose
 * adapters lie in one chunk runs the one-binding code), and the first chunk of each disjoint
 * window. A window may run past the pool's last chunk (see windowBindings).
 */
export function chunkWindows(
  chunks: readonly number[],
  maxWidth: number,
): { width: number; firsts: number[] } {
  const span = chunks.length === 0 ? 1 : chunks[chunks.length - 1] - chunks[0] + 1;
  let width = 1;
  while (width < span && width * 2 <= maxWidth) width *= 2;
  const firsts: number[] = [];
  let covered = -1;
  for (const c of chunks) {
    if (c <= covered) continue;
    firsts.push(c);
    covered = c + width - 1;
  }
  return { width, firsts };
}

/**
 * The pool chunks bound for the window from `first`: past the pool's end, chunk 0 again (a
 * read-only binding may repeat), which no page maps to there, since a page's chunk is its number
 * over pagesPerChunk.
 */
export function windowBindings(pool: SplitBuffer, first: number, width: number): GPUBufferBinding[] {
  return Array.from({ length: width }, (_, k) => ({ buffer: pool.chunks[first + k] ?? pool.chunks[0] }));
}

/**
 * WGSL for `width` pool chunks bound from binding `firstBinding` (pool_0 …) and
 * `pool_load(k, i)`, vec4 i of bound chunk k: a plain load for one chunk, else a switch on k
 * (uniform across a workgroup in the LoRA kernels, which compute k once per page).
 */
export function poolWindowWgsl(width: number, firstBinding: number): { bindings: string; load: string } {
  const bindings = Array.from(
    { length: width },
    (_, k) => `@group(0) @binding(${firstBinding + k}) var<storage, read> pool_${k}: array<vec4<f32>>;`,
  ).join('\n');
  const body =
    width === 1
      ? '  return pool_0[i];'
      : [
          '  switch k {',
          ...Array.from({ length: width - 1 }, (_, k) => `    case ${k}u: { return pool_${k}[i]; }`),
          `    default: { return pool_${width - 1}[i]; }`,
          '  }',
        ].join('\n');
  return { bindings, load: `fn pool_load(k: u32, i: u32) -> vec4<f32> {\n${body}\n}` };
}
