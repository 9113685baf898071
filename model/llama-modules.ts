import type { LlamaConfig } from './llama-config.js';

/** The seven linear layers of a Llama decoder layer that LoRA may target, in a fixed order. */
export const TARGET_MODULES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type TargetModule = (typeof TARGET_MODULES)[number];

export function isTargetModule(name: string): name is TargetModule {
  return (TARGET_MODULES as readonly string[]).includes(name);
}

/** Input and output features of one linear layer (HF stores its weight as [out, in]). */
export function moduleShape(
  config: LlamaConfig,
  module: TargetModule,
): { inFeatures: number; outFeatures: number } {
  const h = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  const i = config.intermediateSize;
  switch (module) {
    case 'q_proj':
      return { inFeatures: h, outFeatures: q };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: h, outFeatures: kv };
    case 'o_proj':
      return { inFeatures: q, outFeatures: h };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: h, outFeatures: i };
    case 'down_proj':
      return { inFeatures: i, outFeatures: h };
  }
}

/** HF parameter name of a module's weight inside layer `layer`. */
export function moduleWeightName(layer: number, module: TargetModule): string {
  return `${moduleName(layer, module)}.weight`;
}

/** The module's name in LlamaForCausalLM's `named_modules()`, what PEFT matches its patterns against. */
export function moduleName(layer: number, module: TargetModule): string {
  const group =
    module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${module}`;
}
