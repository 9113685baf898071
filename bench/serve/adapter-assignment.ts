import type { Uniform } from '../../scheduler/prng.js';

export type AdapterAssignment = 'random' | 'round-robin' | 'power-law';
export const ADAPTER_ASSIGNMENTS: readonly AdapterAssignment[] = ['random', 'round-robin', 'power-law'];

/**
 * Which adapter each request asks for. `random` is vLLM's (uniform over `--lora-modules`);
 * `round-robin` cycles through them; `power-law` is S-LoRA's trace generator: index =
 * floor(x · n) with x drawn from numpy's power distribution (density α·x^(α−1) on [0, 1], drawn
 * as U^(1/α)), so α = 1 is uniform and a small α concentrates requests on the first adapters.
 */
export function assignAdapters(
  uniform: Uniform,
  names: readonly string[],
  count: number,
  assignment: AdapterAssignment,
  alpha = 1,
): string[] {
  if (names.length === 0) throw new RangeError('assignAdapters needs at least one adapter name');
  if (assignment === 'power-law' && !(alpha > 0))
    throw new RangeError(`--lora-alpha must be > 0, got ${alpha}`);
  const n = names.length;
  const pick = (i: number): number => {
    switch (assignment) {
      case 'round-robin':
        return i % n;
      case 'random':
        return Math.floor(uniform() * n);
      case 'power-law':
        return Math.min(n - 1, Math.floor(uniform() ** (1 / alpha) * n));
    }
  };
  return Array.from({ length: count }, (_, i) => names[pick(i)]);
}
