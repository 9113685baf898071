/**
 * --seed: the seeds of requests that bring none come from a fixed mulberry32 sequence, so a
 * restarted server samples the same texts for the same request order. Without --seed the
 * scheduler draws them at random.
 */
export function seededDraws(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
