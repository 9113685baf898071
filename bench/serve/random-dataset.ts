import type { Uniform } from '../../scheduler/prng.js';

/** One request of the workload: what to send and when. */
export interface BenchRequest {
  index: number;
  /** The request's `model`: an adapter's name or the base model's. */
  model: string;
  /** Token ids of the prompt (exact input length). */
  promptIds: number[];
  /** The same prompt as text, for peers and routes that only take text. */
  promptText: string | null;
  outputLen: number;
  /** Seconds after the benchmark's start at which it is sent. */
  offsetSeconds: number;
}

/**
 * vLLM's random dataset lengths: uniform integers in [⌊len·(1−r)⌋, ⌈len·(1+r)⌉], output at
 * least 1 token. r = `--random-range-ratio` in [0, 1): 0 gives every request the same length.
 */
export function lengthRange(len: number, rangeRatio: number, minimum: number): [number, number] {
  if (!Number.isInteger(len) || len < minimum)
    throw new RangeError(`length must be an integer ≥ ${minimum}, got ${len}`);
  if (!(rangeRatio >= 0 && rangeRatio < 1))
    throw new RangeError(`--random-range-ratio must be in [0, 1), got ${rangeRatio}`);
  return [Math.max(minimum, Math.floor(len * (1 - rangeRatio))), Math.ceil(len * (1 + rangeRatio))];
}

export function uniformInt(uniform: Uniform, low: number, high: number): number {
  return low + Math.floor(uniform() * (high - low + 1));
}

/** Prompt token ids drawn uniformly from the vocabulary (as vLLM's random dataset does). */
export function randomTokenIds(uniform: Uniform, length: number, vocabSize: number): number[] {
  return Array.from({ length }, () => Math.floor(uniform() * vocabSize));
}
