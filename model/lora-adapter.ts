import type { TargetModule } from './llama-modules.js';

/**
 * One LoRA pair for one linear layer: delta W = scale · B · A. Rank and scale belong to the pair:
 * PEFT's rank_pattern / alpha_pattern give modules of one adapter different ones.
 */
export interface LoraPair {
  a: Float32Array; // [rank, inFeatures], row-major (PEFT's lora_A.weight)
  b: Float32Array; // [outFeatures, rank], row-major (PEFT's lora_B.weight)
  rank: number;
  /** alpha / rank, or alpha / sqrt(rank) with rsLoRA, with this module's rank and alpha. */
  scale: number;
}

/** A PEFT LoRA adapter loaded into host memory, f32. */
export interface LoraAdapter {
  name: string;
  path: string;
  /**
   * The largest rank of its modules (all of them without rank_pattern): what --max-lora-rank and
   * padded baselines compare. Per-module ranks are on each LoraPair.
   */
  rank: number;
  /** `lora_alpha`; alpha_pattern may give modules their own (each pair's scale holds the result). */
  alpha: number;
  targetModules: TargetModule[];
  /** layers[l][module] is absent where the adapter does not touch that layer's module. */
  layers: Array<Partial<Record<TargetModule, LoraPair>>>;
}

export function loraScale(rank: number, alpha: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}
