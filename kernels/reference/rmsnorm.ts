/**
 * Hugging Face LlamaRMSNorm over each row of x[rows, hidden]:
 *   weight · (x / sqrt(mean(x²) + eps))
 * HF normalises in f32 and casts back to the input dtype before multiplying by the weight; the
 * normalised value is rounded to f32 here at the same point. The mean is summed in f64.
 */
export function rmsNorm(x: Float32Array, rows: number, weight: Float32Array, eps: number): Float32Array {
  const hidden = weight.length;
  if (x.length < rows * hidden) throw new Error(`rmsNorm: x has ${x.length} < ${rows}×${hidden}`);
  const y = new Float32Array(rows * hidden);
  for (let r = 0; r < rows; r++) {
    const base = r * hidden;
    let sumSquares = 0;
    for (let i = 0; i < hidden; i++) sumSquares += x[base + i] * x[base + i];
    const inverseRms = Math.fround(1 / Math.sqrt(Math.fround(sumSquares / hidden) + eps));
    for (let i = 0; i < hidden; i++) y[base + i] = weight[i] * Math.fround(x[base + i] * inverseRms);
  }
  return y;
}
