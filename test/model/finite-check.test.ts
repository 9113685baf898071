import { describe, expect, it } from 'vitest';
import { checkFiniteHalfWeights, checkFiniteStored, checkFiniteWeights } from '../../model/finite-check.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { toFloat32 } from '../../model/tensor-codec.js';

/** The element a check refuses (its message names it), or null when it accepts the tensor. */
function refused(check: () => void): string | null {
  try {
    check();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(ModelFormatError);
    return (err as ModelFormatError).problem;
  }
}

describe('finite-check on 16-bit patterns', () => {
  it.each(['F16', 'BF16'] as const)(
    'refuses exactly the %s values the f32 check refuses once widened, every one of the 65,536',
    (dtype) => {
      const widened = toFloat32(new Uint16Array(Array.from({ length: 65536 }, (_, b) => b)), dtype);
      let refusedCount = 0;
      for (let b = 0; b < 65536; b++) {
        const bits = new Uint16Array([b]);
        const half = refused(() => checkFiniteHalfWeights('f', 't', bits, dtype));
        const wide = refused(() => checkFiniteWeights('f', 't', widened.subarray(b, b + 1)));
        expect(half).toBe(wide);
        if (half) refusedCount++;
      }
      // F16: Inf and NaN (2 × 1,024 patterns); BF16: also every pattern past ±2^64 (0x5f80).
      expect(refusedCount).toBe(dtype === 'F16' ? 2048 : 2 * (0x7fff - 0x5f80));
    },
  );

  it('names the first bad element and its value, as the f32 check does', () => {
    const bits = new Uint16Array([0x3c00, 0x7e00, 0x7c00]); // 1, NaN, +Inf in F16
    expect(refused(() => checkFiniteStored('a.safetensors', 'w', { dtype: 'F16', data: bits }))).toBe(
      'tensor "w" holds NaN at element 1; weights must be finite and within ±2^64 (f32 overflows past that)',
    );
    const bf16 = new Uint16Array([0x3f80, 0x5f80, 0xdf81]); // 1, 2^64 (allowed), just past −2^64
    expect(refused(() => checkFiniteStored('a.safetensors', 'w', { dtype: 'BF16', data: bf16 }))).toMatch(
      /holds -18590859261785407000 at element 2;/,
    );
  });
});
