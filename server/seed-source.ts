import { mulberry32Words } from '../scheduler/prng.js';

/**
 * --seed: the seeds of requests that bring none come from a fixed mulberry32 sequence, so a
 * restarted server samples the same texts for the same request order. Without --seed the
 * scheduler draws them at random.
 */
export function seededDraws(seed: number): () => number {
  return mulberry32Words(seed);
}
