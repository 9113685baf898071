import type { LlamaConfig } from './llama-config.js';
import { moduleShape, moduleWeightName, TARGET_MODULES, type TargetModule } from './llama-modules.js';
import type { LayerWeights, ModelWeights } from './model-weights.js';

/** One tensor a Llama checkpoint must hold, by its Hugging Face name. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
}

export const EMBED_NAME = 'model.embed_tokens.weight';
export const FINAL_NORM_NAME = 'model.norm.weight';
export const LM_HEAD_NAME = 'lm_head.weight';

function layerNormNames(layer: number): { input: string; post: string } {
  return {
    input: `model.layers.${layer}.input_layernorm.weight`,
    post: `model.layers.${layer}.post_attention_layernorm.weight`,
  };
}

/** Every tensor the config implies, in checkpoint order; lm_head only when embeddings are not tied. */
export function expectedModelTensors(config: LlamaConfig): ExpectedTensor[] {
  const h = config.hiddenSize;
  const out: ExpectedTensor[] = [{ name: EMBED_NAME, shape: [config.vocabSize, h] }];
  for (let l = 0; l < config.numLayers; l++) {
    const norms = layerNormNames(l);
    out.push({ name: norms.input, shape: [h] });
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      out.push({ name: moduleWeightName(l, m), shape: [outFeatures, inFeatures] });
    }
    out.push({ name: norms.post, shape: [h] });
  }
  out.push({ name: FINAL_NORM_NAME, shape: [h] });
  if (!config.tieWordEmbeddings) out.push({ name: LM_HEAD_NAME, shape: [config.vocabSize, h] });
  return out;
}

/** Builds ModelWeights from tensors looked up by name (the caller has checked names and shapes). */
export function assembleWeights(config: LlamaConfig, tensor: (name: string) => Float32Array): ModelWeights {
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const norms = layerNormNames(l);
    const linear = {} as Record<TargetModule, Float32Array>;
    for (const m of TARGET_MODULES) linear[m] = tensor(moduleWeightName(l, m));
    layers.push({ inputNorm: tensor(norms.input), postAttentionNorm: tensor(norms.post), linear });
  }
  const embedTokens = tensor(EMBED_NAME);
  return {
    config,
    embedTokens,
    layers,
    finalNorm: tensor(FINAL_NORM_NAME),
    lmHead: config.tieWordEmbeddings ? embedTokens : tensor(LM_HEAD_NAME),
  };
}

/** The inverse of assembleWeights: each checkpoint tensor with its data, in checkpoint order. */
export function weightTensors(weights: ModelWeights): Array<ExpectedTensor & { data: Float32Array }> {
  const byName = new Map<string, Float32Array>([
    [EMBED_NAME, weights.embedTokens],
    [FINAL_NORM_NAME, weights.finalNorm],
    [LM_HEAD_NAME, weights.lmHead],
  ]);
  weights.layers.forEach((layer, l) => {
    const norms = layerNormNames(l);
    byName.set(norms.input, layer.inputNorm);
    byName.set(norms.post, layer.postAttentionNorm);
    for (const m of TARGET_MODULES) byName.set(moduleWeightName(l, m), layer.linear[m]);
  });
  return expectedModelTensors(weights.config).map((t) => ({ ...t, data: byName.get(t.name)! }));
}
