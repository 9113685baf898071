/**
 * A small seeded generator per sequence, so a seeded request samples the same tokens whatever
 * else shares its batches. mulberry32: 32-bit state, passes the tests that matter for sampling,
 * and is a few lines with no dependency.
 */
export type Uniform = () => number;

/** mulberry32's raw 32-bit outputs, as unsigned integers. */
export function mulberry32Words(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform draws in [0, 1): each 32-bit word scaled by 2^-32 (exact in a double). */
export function mulberry32(seed: number): Uniform {
  const next = mulberry32Words(seed);
  return () => next() / 4294967296;
}

/**
 * One stream per (request seed, choice index): choices of one request differ, and each is
 * reproducible on its own. The seed may be any integer (negative or above 2^32 too), so it is
 * folded to 32 bits before mixing.
 */
export function sequenceSeed(requestSeed: number, choiceIndex: number): number {
  const low = requestSeed >>> 0;
  const high = Math.floor(requestSeed / 4294967296) >>> 0;
  let h = Math.imul(low ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ high, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ Math.imul(choiceIndex + 1, 0x27d4eb2f), 0x165667b1);
  return (h ^ (h >>> 15)) >>> 0;
}
