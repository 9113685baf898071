/**
 * y[rows, outFeatures] = x[rows, inFeatures] · Wᵀ, with W in Hugging Face's [out, in] layout.
 * Each output is summed over k in order, in f64 (JS numbers), and rounded once to f32, so this
 * oracle is at least as accurate as any f32-accumulating kernel it is compared with. Four
 * outputs are summed side by side only to give the CPU independent chains; the result is the
 * same as one output at a time.
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
  const blockedOut = outFeatures - (outFeatures % 4);
  for (let r = 0; r < rows; r++) {
    const xBase = r * inFeatures;
    const yBase = r * outFeatures;
    for (let o = 0; o < blockedOut; o += 4) {
      const w0 = o * inFeatures;
      const w1 = w0 + inFeatures;
      const w2 = w1 + inFeatures;
      const w3 = w2 + inFeatures;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < inFeatures; k++) {
        const xk = x[xBase + k];
        s0 += xk * w[w0 + k];
        s1 += xk * w[w1 + k];
        s2 += xk * w[w2 + k];
        s3 += xk * w[w3 + k];
      }
      y[yBase + o] = s0;
      y[yBase + o + 1] = s1;
      y[yBase + o + 2] = s2;
      y[yBase + o + 3] = s3;
    }
    for (let o = blockedOut; o < outFeatures; o++) {
      const wBase = o * inFeatures;
      let sum = 0;
      for (let k = 0; k < inFeatures; k++) sum += x[xBase + k] * w[wBase + k];
      y[yBase + o] = sum;
    }
  }
  return y;
}
