import type { TokenLogprobs } from '../logprobs.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** A row's request as logprobs.wgsl reads it: the token to score (SAMPLED_TOKEN: the sampled one) and k (null: none). */
export interface RowLogprobRequest {
  target: number | typeof SAMPLED_TOKEN;
  topK: number | null;
}

export const SAMPLED_TOKEN = 'sampled';
const ALL_BITS = 0xffffffff;

/** u32 words of one row's record when the step's largest k is `maxTopK`. */
export function logprobRecordWords(maxTopK: number): number {
  return 3 + 2 * maxTopK;
}

/** Per-row (target, k) pairs as logprobs.wgsl reads them. */
export function packLogprobRequests(rows: ReadonlyArray<RowLogprobRequest>): Uint32Array {
  const out = new Uint32Array(rows.length * 2);
  rows.forEach((r, i) => {
    // The server bounds k (--max-logprobs); the kernel takes any k, one workgroup argmax a token.
    if (r.topK !== null && !(Number.isInteger(r.topK) && r.topK >= 0))
      throw new Error(`logprobs: top-k ${r.topK} is not a non-negative integer`);
    out[i * 2] = r.target === SAMPLED_TOKEN ? ALL_BITS : r.target;
    out[i * 2 + 1] = r.topK ?? ALL_BITS;
  });
  return out;
}

/** Row `row`'s record read back: its token and, where it asked for k, the log-probabilities. */
export function unpackLogprobRecord(
  words: Uint32Array,
  row: number,
  stride: number,
  topK: number,
): TokenLogprobs {
  const floats = new Float32Array(words.buffer, words.byteOffset, words.length);
  const at = row * stride;
  return {
    tokenId: words[at],
    logprob: floats[at + 1],
    rank: words[at + 2],
    topIds: Int32Array.from({ length: topK }, (_, r) => words[at + 3 + 2 * r]),
    topLogprobs: Float32Array.from({ length: topK }, (_, r) => floats[at + 4 + 2 * r]),
  };
}

/** Launcher of logprobs.wgsl: one record of `stride` u32 words per row of logits [rows, vocab]. */
export class LogprobsKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    rows: number,
    vocab: number,
    requests: GPUBuffer,
    sampled: GPUBuffer,
    stride: number,
    out: GPUBuffer,
  ): void {
    const pipeline = this.ctx.pipelines.pipeline('logprobs', 'logprobs', () => loadWgsl('logprobs.wgsl'));
    const bindings = [{ buffer: logits }, { buffer: requests }, { buffer: sampled }, { buffer: out }];
    encodeDispatch(this.ctx, pass, pipeline, bindings, Immediates.of([vocab, stride]), rows);
  }
}
