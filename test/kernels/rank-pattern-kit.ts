import type { SequenceStep, StepPlan } from '../../kernels/engine.js';
import { denseForward, mergeAdapter } from '../../kernels/reference/merged-forward.js';
import { argmax } from '../../kernels/sample.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import type { ModelWeights } from '../../model/model-weights.js';
import type { SyntheticAdapterSpec } from '../../model/synthetic.js';
import { maxAbsDiff, randomTokens, rowOf } from './reference-harness.js';

/**
 * An adapter of base rank 8 whose rank_pattern / alpha_pattern give its modules other ranks and
 * alphas, by short key ("q_proj": every layer), full key (one layer's down_proj) and regex: five
 * different (rank, scale) pairs over two layers, so any kernel reading one rank or one scale per
 * adapter is wrong somewhere.
 */
export const RANK_PATTERN_SPEC: SyntheticAdapterSpec = {
  name: 'rank-pattern',
  rank: 8,
  alpha: 16,
  targetModules: [...TARGET_MODULES],
  seed: 41,
  rankPattern: { q_proj: 4, 'model.layers.1.mlp.down_proj': 16 },
  alphaPattern: { v_proj: 4, 'model\\.layers\\.0\\.mlp\\..*': 32 },
};

/** The same patterns with rsLoRA (scale alpha / sqrt(rank) per module), on some modules only. */
export const RSLORA_PATTERN_SPEC: SyntheticAdapterSpec = {
  name: 'rslora-pattern',
  rank: 6,
  alpha: 12,
  targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
  seed: 42,
  useRslora: true,
  rankPattern: { 'layers\\.1\\..*': 2, o_proj: 10 },
  alphaPattern: { 'model.layers.1.self_attn.v_proj': 3 },
};

/** An engine's step, and what it needs to place a sequence's tokens. */
export interface SteppingEngine {
  step(plan: StepPlan): Promise<Float32Array>;
}
export type StepOf = (
  seqId: number,
  tokens: number[],
  startPos: number,
  adapter: AdapterLayout | null,
  logits: SequenceStep['logits'],
) => SequenceStep;

/**
 * Runs one sequence with `layout`'s adapter through `engine` (a prompt, then greedy decode steps)
 * and returns the largest logit difference from the dense forward pass of the weights with the
 * adapter merged per module (W + s_m·B_m·A_m), the oracle PEFT's merge_and_unload gives.
 */
export async function worstDiffFromMerged(
  engine: SteppingEngine,
  stepOf: StepOf,
  weights: ModelWeights,
  adapter: LoraAdapter,
  layout: AdapterLayout,
  seqId: number,
  promptLength = 6,
  decodeSteps = 3,
): Promise<number> {
  const vocab = weights.config.vocabSize;
  const merged = mergeAdapter(weights, adapter);
  const tokens = randomTokens(promptLength, vocab, 100 + seqId);
  const logits = await engine.step({ sequences: [stepOf(seqId, tokens, 0, layout, 'all')] });
  let worst = maxAbsDiff(logits, denseForward(merged, tokens));
  let last = rowOf(logits, promptLength - 1, vocab);
  for (let d = 0; d < decodeSteps; d++) {
    const next = argmax(last);
    const startPos = tokens.length;
    tokens.push(next);
    last = await engine.step({ sequences: [stepOf(seqId, [next], startPos, layout, 'last')] });
    worst = Math.max(worst, maxAbsDiff(last, rowOf(denseForward(merged, tokens), tokens.length - 1, vocab)));
  }
  return worst;
}
