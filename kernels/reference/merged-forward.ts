import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import type { LayerWeights, ModelWeights } from '../../model/model-weights.js';
import { ropeRotation } from '../../model/rope-frequencies.js';
import { embed } from './embed.js';
import { linear } from './linear.js';
import { rmsNorm } from './rmsnorm.js';
import { applyRope } from './rope.js';
import { siluMul } from './silu-mul.js';

/**
 * A second, independent route to the same logits, for tests: LoRA merged into the weights
 * (W + scale·B·A with each module's own rank and scale, as PEFT's merge_and_unload does) and one sequence run densely, with no pages,
 * no per-token adapters and a plain causal attention over the whole prompt.
 */

/** Base weights with `adapter` merged into every linear layer it targets (base weights untouched). */
export function mergeAdapter(weights: ModelWeights, adapter: LoraAdapter): ModelWeights {
  const layers = weights.layers.map((layer, l): LayerWeights => {
    const linearWeights = { ...layer.linear };
    const pairs = adapter.layers[l] ?? {};
    for (const m of TARGET_MODULES) {
      const pair = pairs[m];
      if (!pair) continue;
      const base = layer.linear[m];
      // Each module's own rank and scale (rank_pattern / alpha_pattern), as PEFT merges it.
      const { rank, scale } = pair;
      const inFeatures = pair.a.length / rank;
      const outFeatures = pair.b.length / rank;
      const merged = new Float32Array(base.length);
      for (let o = 0; o < outFeatures; o++) {
        for (let k = 0; k < inFeatures; k++) {
          let delta = 0;
          for (let r = 0; r < rank; r++) delta += pair.b[o * rank + r] * pair.a[r * inFeatures + k];
          merged[o * inFeatures + k] = base[o * inFeatures + k] + scale * delta;
        }
      }
      linearWeights[m] = merged;
    }
    return { ...layer, linear: linearWeights };
  });
  return { ...weights, layers };
}

/** Logits [ids.length, vocab] of one sequence at positions 0…ids.length−1. */
export function denseForward(weights: ModelWeights, ids: ArrayLike<number>): Float32Array {
  const c = weights.config;
  const n = ids.length;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const positions = Array.from({ length: n }, (_, i) => i);
  const rope = ropeRotation(c);
  const x = embed(weights.embedTokens, c.hiddenSize, ids);
  for (const lw of weights.layers) {
    const h = rmsNorm(x, n, lw.inputNorm, c.rmsNormEps);
    const q = linear(h, n, lw.linear.q_proj, c.hiddenSize, qDim);
    const k = linear(h, n, lw.linear.k_proj, c.hiddenSize, kvDim);
    const v = linear(h, n, lw.linear.v_proj, c.hiddenSize, kvDim);
    applyRope(q, n, c.numHeads, c.headDim, positions, rope);
    applyRope(k, n, c.numKvHeads, c.headDim, positions, rope);
    const attention = causalAttention(q, k, v, n, c.numHeads, c.numKvHeads, c.headDim);
    const o = linear(attention, n, lw.linear.o_proj, qDim, c.hiddenSize);
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const m = rmsNorm(x, n, lw.postAttentionNorm, c.rmsNormEps);
    const gate = linear(m, n, lw.linear.gate_proj, c.hiddenSize, c.intermediateSize);
    const up = linear(m, n, lw.linear.up_proj, c.hiddenSize, c.intermediateSize);
    const down = linear(siluMul(gate, up), n, lw.linear.down_proj, c.intermediateSize, c.hiddenSize);
    for (let i = 0; i < x.length; i++) x[i] += down[i];
  }
  const normed = rmsNorm(x, n, weights.finalNorm, c.rmsNormEps);
  return linear(normed, n, weights.lmHead, c.hiddenSize, c.vocabSize);
}

/** Full causal softmax(q·kᵀ/sqrt(d))·v over contiguous [n, heads·d] rows, GQA by head groups. */
function causalAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  n: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
): Float32Array {
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  const group = numHeads / numKvHeads;
  const out = new Float32Array(n * qDim);
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < numHeads; h++) {
      const kvHead = Math.floor(h / group);
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++)
          dot += q[i * qDim + h * headDim + d] * k[j * kvDim + kvHead * headDim + d];
        scores[j] = dot / Math.sqrt(headDim);
        max = Math.max(max, scores[j]);
      }
      let total = 0;
      for (let j = 0; j <= i; j++) {
        scores[j] = Math.exp(scores[j] - max);
        total += scores[j];
      }
      for (let d = 0; d < headDim; d++) {
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += scores[j] * v[j * kvDim + kvHead * headDim + d];
        out[i * qDim + h * headDim + d] = sum / total;
      }
    }
  }
  return out;
}
