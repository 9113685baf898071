/** SwiGLU's activation: silu(gate) · up, elementwise (silu(g) = g / (1 + e^-g)). */
export function siluMul(gate: Float32Array, up: Float32Array): Float32Array {
  if (gate.length !== up.length) throw new Error(`siluMul: gate ${gate.length} ≠ up ${up.length}`);
  const y = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    y[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return y;
}
