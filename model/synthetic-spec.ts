import type { TensorDtype } from './float-convert.js';
import { type LlamaConfig, parseLlamaConfig } from './llama-config.js';
import { TARGET_MODULES, type TargetModule } from './llama-modules.js';
import { BOS_ID, BYTE_TOKENIZER_SIZE, EOS_ID } from './synthetic-tokenizer.js';

/** Shape and seed of a deterministic synthetic Llama model. */
export interface SyntheticModelSpec {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  seed: number;
  tieWordEmbeddings?: boolean;
  /** Hugging Face `rope_scaling` object, copied into config.json as is. */
  ropeScaling?: Record<string, unknown>;
  /** Storage dtype of the written checkpoint; in-memory weights are rounded to it. Default F32. */
  dtype?: TensorDtype;
}

/** Shape and seed of a deterministic synthetic LoRA adapter. */
export interface SyntheticAdapterSpec {
  name: string;
  rank: number;
  alpha: number;
  targetModules: TargetModule[];
  seed: number;
  useRslora?: boolean;
  /** PEFT's rank_pattern: module-name pattern → rank replacing `rank` where it matches. */
  rankPattern?: Record<string, number>;
  /** PEFT's alpha_pattern: module-name pattern → alpha replacing `alpha` where it matches. */
  alphaPattern?: Record<string, number>;
}

/** For tests: small enough that a reference forward pass takes milliseconds. */
export const TINY_SPEC: SyntheticModelSpec = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 128,
  vocabSize: BYTE_TOKENIZER_SIZE,
  maxPositionEmbeddings: 512,
  seed: 1,
};

/** A small synthetic model (about the embedded default's size) for quick benchmarks and timings. */
export const DEFAULT_SPEC: SyntheticModelSpec = {
  hiddenSize: 256,
  numLayers: 4,
  numHeads: 8,
  numKvHeads: 4,
  intermediateSize: 688,
  vocabSize: 2048,
  maxPositionEmbeddings: 2048,
  seed: 42,
};

/** TinyLlama-1.1B's shape, for benchmarks (about 1.1 billion parameters, 4.4 GB in f32). */
export const TINYLLAMA_SPEC: SyntheticModelSpec = {
  hiddenSize: 2048,
  numLayers: 22,
  numHeads: 32,
  numKvHeads: 4,
  intermediateSize: 5632,
  vocabSize: 32000,
  maxPositionEmbeddings: 2048,
  seed: 7,
};

const TORCH_DTYPE: Record<TensorDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The Hugging Face config.json of a synthetic model. */
export function syntheticConfigJson(spec: SyntheticModelSpec): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: spec.hiddenSize,
    intermediate_size: spec.intermediateSize,
    num_attention_heads: spec.numHeads,
    num_hidden_layers: spec.numLayers,
    num_key_value_heads: spec.numKvHeads,
    head_dim: spec.hiddenSize / spec.numHeads,
    vocab_size: spec.vocabSize,
    max_position_embeddings: spec.maxPositionEmbeddings,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: spec.ropeScaling ?? null,
    tie_word_embeddings: spec.tieWordEmbeddings ?? false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    torch_dtype: TORCH_DTYPE[spec.dtype ?? 'F32'],
  };
}

export function syntheticGenerationConfigJson(): Record<string, unknown> {
  return { bos_token_id: BOS_ID, eos_token_id: EOS_ID, do_sample: false };
}

export function syntheticConfig(spec: SyntheticModelSpec): LlamaConfig {
  return parseLlamaConfig(
    syntheticConfigJson(spec),
    'synthetic config.json',
    syntheticGenerationConfigJson(),
  );
}

/** adapter_config.json as PEFT writes it for a synthetic LoRA adapter. */
export function syntheticPeftConfigJson(
  spec: SyntheticAdapterSpec,
  baseModel = 'loom-synthetic',
): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: spec.rank,
    lora_alpha: spec.alpha,
    lora_dropout: 0,
    target_modules: TARGET_MODULES.filter((m) => spec.targetModules.includes(m)),
    use_rslora: spec.useRslora ?? false,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    modules_to_save: null,
    rank_pattern: spec.rankPattern ?? {},
    alpha_pattern: spec.alphaPattern ?? {},
    use_dora: false,
    revision: null,
  };
}
