import { moduleShape, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { type StorageDtype, uploadBuffer } from './buffers.js';
import type { WebGpuContext } from './device.js';
import {
  type DeviceWeight,
  destroyWeight,
  isQuantizedDtype,
  uploadWeight,
  type WeightLayout,
} from './gemm.js';

/** One decoder layer on the device: norms in f32, linear weights in the engine's storage dtype. */
export interface DeviceLayer {
  inputNorm: GPUBuffer;
  postAttentionNorm: GPUBuffer;
  linear: Record<TargetModule, DeviceWeight>;
}

/** A whole base model on the device; `lmHead` is `embedTokens` itself when embeddings are tied. */
export interface DeviceModel {
  embedTokens: DeviceWeight;
  layers: DeviceLayer[];
  finalNorm: GPUBuffer;
  lmHead: DeviceWeight;
}

/**
 * Uploads `weights`, splitting any matrix bigger than one binding. The embedding table stays f32
 * and [vocab, hidden] (embed reads its rows; a tied lm_head reuses it); linear layers and an
 * untied lm_head use `dtype` and `layout` (out-in ran faster in f32 on lavapipe, in-out in f16:
 * bench/results/webgpu-kernels.md; int8/int4 are quantized at upload and keep out-in).
 */
export function uploadModel(
  ctx: WebGpuContext,
  weights: ModelWeights,
  dtype: StorageDtype,
  maxChunkBytes?: number,
  layout: WeightLayout = 'out-in',
): DeviceModel {
  const c = weights.config;
  const embedTokens = uploadWeight(
    ctx,
    weights.embedTokens,
    c.vocabSize,
    c.hiddenSize,
    'f32',
    'embed_tokens',
    maxChunkBytes,
  );
  // int8/int4 quantize a tied lm_head into a copy of its own (as the onnx engine does): the table
  // stays f32 for embed, and the step's largest product reads a quarter of the bytes or less.
  const tied = weights.lmHead === weights.embedTokens && !isQuantizedDtype(dtype);
  const lmHead = tied
    ? embedTokens
    : uploadWeight(
        ctx,
        weights.lmHead,
        c.vocabSize,
        c.hiddenSize,
        dtype,
        'lm_head',
        maxChunkBytes,
        // in-out writes outputs four at a time; a vocabulary not a multiple of 4 keeps HF's layout.
        c.vocabSize % 4 === 0 ? layout : 'out-in',
      );
  const layers = weights.layers.map((lw, l): DeviceLayer => {
    const linear = {} as Record<TargetModule, DeviceWeight>;
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(c, m);
      linear[m] = uploadWeight(
        ctx,
        lw.linear[m],
        outFeatures,
        inFeatures,
        dtype,
        `layers.${l}.${m}`,
        maxChunkBytes,
      );
    }
    return {
      inputNorm: uploadBuffer(ctx, lw.inputNorm, `layers.${l}.input_layernorm`),
      postAttentionNorm: uploadBuffer(ctx, lw.postAttentionNorm, `layers.${l}.post_attention_layernorm`),
      linear,
    };
  });
  return { embedTokens, layers, finalNorm: uploadBuffer(ctx, weights.finalNorm, 'norm'), lmHead };
}

export function destroyModel(ctx: WebGpuContext, model: DeviceModel): void {
  destroyWeight(ctx, model.embedTokens);
  if (model.lmHead !== model.embedTokens) destroyWeight(ctx, model.lmHead);
  for (const layer of model.layers) {
    for (const m of TARGET_MODULES) destroyWeight(ctx, layer.linear[m]);
    layer.inputNorm.destroy();
    layer.postAttentionNorm.destroy();
  }
  model.finalNorm.destroy();
}
