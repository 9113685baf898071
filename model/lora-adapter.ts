import type { TargetModule } from './llama-modules.js';

/** One LoRA pair for one linear layer: delta W = scale · B · A. */
export interface LoraPair {
  a: Float32Array; // [rank, inFeatures], row-major (PEFT's lora_A.weight)
  b: Float32Array; // [outFeatures, rank], row-major (PEFT's lora_B.weight)
}

/** A PEFT LoRA adapter loaded into host memory, f32. */
export interface LoraAdapter {
  name: string;
  path: string;
  rank: number;
  alpha: number;
  /** alpha / rank, or alpha / sqrt(rank) with rsLoRA. */
  scale: number;
  targetModules: TargetModule[];
  /** layers[l][module] is absent where the adapter does not touch that layer's module. */
  layers: Array<Partial<Record<TargetModule, LoraPair>>>;
}

export function loraScale(rank: number, alpha: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}
