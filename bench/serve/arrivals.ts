import type { Uniform } from '../../scheduler/prng.js';

/**
 * Request arrival times as `vllm bench serve` draws them: gaps between requests are Gamma
 * distributed with shape `burstiness` and mean 1/rate, so burstiness 1 is a Poisson process,
 * below 1 burstier, above 1 more regular. S-LoRA's traces give the coefficient of variation
 * instead: cv = 1/√burstiness.
 */

/** A standard normal draw (Box–Muller; the second value of the pair is dropped for simplicity). */
export function normalDraw(uniform: Uniform): number {
  const u1 = 1 - uniform(); // (0, 1]: log stays finite
  const u2 = uniform();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * A Gamma(shape, scale) draw: Marsaglia and Tsang's squeeze method for shape ≥ 1, and for
 * shape < 1 their boost Gamma(shape + 1) · U^(1/shape).
 */
export function gammaDraw(uniform: Uniform, shape: number, scale: number): number {
  if (!(shape > 0) || !(scale > 0))
    throw new RangeError(`gamma needs shape > 0 and scale > 0, got ${shape}, ${scale}`);
  if (shape < 1) return gammaDraw(uniform, shape + 1, scale) * (1 - uniform()) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normalDraw(uniform);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - uniform();
    if (u < 1 - 0.0331 * x ** 4) return d * v * scale;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
  }
}

/**
 * Send offsets in seconds from the start, one per request. The first request goes at 0;
 * `rate` Infinity sends every request at once, as vLLM's `--request-rate inf` does.
 */
export function arrivalOffsets(uniform: Uniform, count: number, rate: number, burstiness = 1): number[] {
  if (!(rate > 0)) throw new RangeError(`request rate must be > 0 (or inf), got ${rate}`);
  if (!(burstiness > 0)) throw new RangeError(`burstiness must be > 0, got ${burstiness}`);
  if (rate === Number.POSITIVE_INFINITY) return new Array(count).fill(0);
  const scale = 1 / (rate * burstiness);
  const offsets: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) {
    offsets.push(t);
    t += gammaDraw(uniform, burstiness, scale);
  }
  return offsets;
}
