import type { LogitAdjustments } from '../logit-adjustments.js';
import type { WebGpuContext } from './device.js';
import { encodeDispatch, Immediates } from './dispatch.js';
import { loadWgsl } from './wgsl.js';

/** Words per edit as logit_edits.wgsl reads them: row, token, bias, repetition, subtract. */
const EDIT_WORDS = 5;

/**
 * The edits of a step's rows (row i's adjustments, or null) packed for logit_edits.wgsl; null when
 * none. A row's allowOnly becomes a −Infinity bias on every other token of the `vocab`: one more
 * edit per masked token, so the kernel and its restore stay one pass over a list.
 */
export function packLogitEdits(
  rows: ReadonlyArray<LogitAdjustments | null | undefined>,
  vocab: number,
): { words: Uint32Array; count: number } | null {
  const masks = rows.map((a) => (a?.allowOnly ? maskedTokens(a, vocab) : null));
  const count = rows.reduce((n, a, r) => n + (a?.tokens.length ?? 0) + (masks[r]?.length ?? 0), 0);
  if (count === 0) return null;
  const words = new Uint32Array(count * EDIT_WORDS);
  const floats = new Float32Array(words.buffer);
  let e = 0;
  const push = (row: number, token: number, bias: number, repetition: number, subtract: number) => {
    words[e * EDIT_WORDS] = row;
    words[e * EDIT_WORDS + 1] = token;
    floats[e * EDIT_WORDS + 2] = bias;
    floats[e * EDIT_WORDS + 3] = repetition;
    floats[e * EDIT_WORDS + 4] = subtract;
    e++;
  };
  rows.forEach((a, row) => {
    if (!a) return;
    const allowed = masks[row] ? new Set(a.allowOnly) : null;
    for (let i = 0; i < a.tokens.length; i++) {
      const masked = allowed !== null && !allowed.has(a.tokens[i]);
      push(row, a.tokens[i], masked ? Number.NEGATIVE_INFINITY : a.bias[i], a.repetition[i], a.subtract[i]);
    }
    for (const token of masks[row] ?? []) push(row, token, Number.NEGATIVE_INFINITY, 1, 0);
  });
  return { words, count };
}

/** Tokens of the vocabulary outside a row's allowOnly that its edits do not list already. */
function maskedTokens(a: LogitAdjustments, vocab: number): number[] {
  const keep = new Uint8Array(vocab);
  for (const t of a.allowOnly ?? []) keep[t] = 1;
  for (const t of a.tokens) keep[t] = 1;
  const masked: number[] = [];
  for (let t = 0; t < vocab; t++) if (!keep[t]) masked.push(t);
  return masked;
}

/** A step's packed edits on the device: the list, one saved raw logit per edit, and their count. */
export interface LogitEditBuffers {
  list: GPUBuffer;
  saved: GPUBuffer;
  count: number;
}

/**
 * Launcher of logit_edits.wgsl: `apply` edits logits [rows, vocab] in place (kernels/logit-
 * adjustments.ts's arithmetic) and keeps each edited logit's raw value in `saved` (4 bytes an
 * edit); `restore` writes them back, so what reads the logits after sampling sees them raw.
 */
export class LogitEditsKernel {
  constructor(private readonly ctx: WebGpuContext) {}

  encode(
    entry: 'apply' | 'restore',
    pass: GPUComputePassEncoder,
    logits: GPUBuffer,
    vocab: number,
    { list, saved, count }: LogitEditBuffers,
  ): void {
    const pipeline = this.ctx.pipelines.pipeline(
      'logit_edits',
      'logit_edits',
      () => loadWgsl('logit_edits.wgsl'),
      entry,
    );
    const bindings = [{ buffer: logits }, { buffer: list }, { buffer: saved }];
    encodeDispatch(this.ctx, pass, pipeline, bindings, Immediates.of([count, vocab]), Math.ceil(count / 64));
  }
}
