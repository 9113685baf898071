/**
 * y[rows, outFeatures] = x[rows, inFeatures] · Wᵀ, with W in Hugging Face's [out, in] layout.
 * Sums run in f64 (JS numbers) and each output is rounded once to f32, so this oracle is at
 * least as accurate as any f32-accumulating kernel it is compared with.
 */
export function linear(
  x: Float32Array,
  rows: number,
  w: Float32Array,
  inFeatures: number,
  outFeatures: number,
): Float32Array {
  if (x.length < rows * inFeatures) throw new Error(`linear: x has ${x.length} < ${rows}×${inFeatures}`);
  if (w.length !== outFeatures * inFeatures)
    throw new Error(`linear: w has ${w.length} elements, expected ${outFeatures}×${inFeatures}`);
  const y = new Float32Array(rows * outFeatures);
  for (let r = 0; r < rows; r++) {
    const xBase = r * inFeatures;
    for (let o = 0; o < outFeatures; o++) {
      const wBase = o * inFeatures;
      let sum = 0;
      for (let k = 0; k < inFeatures; k++) sum += x[xBase + k] * w[wBase + k];
      y[r * outFeatures + o] = sum;
    }
  }
  return y;
}
