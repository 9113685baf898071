import type { TensorDtype } from './float-convert.js';
import type { LlamaConfig } from './llama-config.js';
import type { TargetModule } from './llama-modules.js';
import type { TensorFileRef } from './safetensors.js';

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
  /**
   * Linear weights (and lm_head, the embedding's bytes when tied) that sit in F32 safetensors
   * files, by Hugging Face name: their arrays are read from the file on first access
   * (file-backed-weights.ts), so an engine that reads the file itself keeps no host copy.
   * Absent for weights made in memory.
   */
  files?: ReadonlyMap<string, TensorFileRef>;
  /**
   * The dtype the checkpoint stores its linear weights in (the first layer's q_proj), for
   * `--dtype auto`; absent for weights made in memory.
   */
  checkpointDtype?: TensorDtype;
}
