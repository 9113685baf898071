import type { LlamaConfig } from './llama-config.js';
import type { TargetModule } from './llama-modules.js';

/** One decoder layer's weights in f32, HF layout (linear weights are [out, in], row-major). */
export interface LayerWeights {
  inputNorm: Float32Array; // [hidden]
  postAttentionNorm: Float32Array; // [hidden]
  linear: Record<TargetModule, Float32Array>;
}

/** A whole base model's weights in f32. `lmHead` is `embedTokens` itself when embeddings are tied. */
export interface ModelWeights {
  config: LlamaConfig;
  embedTokens: Float32Array; // [vocab, hidden]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [hidden]
  lmHead: Float32Array; // [vocab, hidden]
}
