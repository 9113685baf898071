import type { LogitAdjustments } from '../logit-adjustments.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Words per edit as logit_edits.wgsl reads them: row, token, bias, repetition, subtract. */
const EDIT_WORDS = 5;

/** The edits of a step's rows (row i's adjustments, or null) packed for logit_edits.wgsl; null when none. */
export function packLogitEdits(rows: ReadonlyArray<LogitAdjustments | null | undefined>): {
  words: Uint32Array;
  count: number;
} | null {
  const count = rows.reduce((n, a) => n + (a?.tokens.length ?? 0), 0);
  if (count === 0) return null;
  const words = new Uint32Array(count * EDIT_WORDS);
  const floats = new Float32Array(words.buffer);
  let e = 0;
  rows.forEach((a, row) => {
    if (!a) return;
    for (let i = 0; i < a.tokens.length; i++, e++) {
      words[e * EDIT_WORDS] = row;
      words[e * EDIT_WORDS + 1] = a.tokens[i];
      floats[e * EDIT_WORDS + 2] = a.bias[i];
      floats[e * EDIT_WORDS + 3] = a.repetition[i];
      floats[e * EDIT_WORDS + 4] = a.subtract[i];
    }
  });
  return { words, count };
}

/**
 * Launcher of logit_edits.wgsl: `apply` edits logits [rows, vocab] in place (kernels/logit-
 * adjustments.ts's arithmetic) and keeps each edited logit's raw value in `saved` (4 bytes an
 * edit); `restore` writes them back, so what reads the logits after sampling sees them raw.
 */
export class LogitEditsKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encodeApply(
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    vocab: number,
    edits: GPUBuffer,
    count: number,
    saved: GPUBuffer,
  ): void {
    this.encode('apply', pass, logits, vocab, edits, count, saved);
  }

  encodeRestore(
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    vocab: number,
    edits: GPUBuffer,
    count: number,
    saved: GPUBuffer,
  ): void {
    this.encode('restore', pass, logits, vocab, edits, count, saved);
  }

  private encode(
    entry: 'apply' | 'restore',
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    vocab: number,
    edits: GPUBuffer,
    count: number,
    saved: GPUBuffer,
  ): void {
    const pipeline = this.ctx.pipelines.pipeline(
      'logit_edits',
      'logit_edits',
      () => loadWgsl('logit_edits.wgsl'),
      entry,
    );
    const bindings = [{ buffer: logits }, { buffer: edits }, { buffer: saved }];
    encodeDispatch(this.ctx, pass, pipeline, bindings, Immediates.of([count, vocab]), Math.ceil(count / 64));
  }
}
