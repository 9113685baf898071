import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { type AttentionBatch, buildAttentionBatch } from '../attention-batch.js';
import type { StepPlan } from '../engine.js';
import { packAttentionBatch } from './attention-meta.js';
import type { LoraForm } from './lora-meta.js';

/** What one step's layers share on the device. */
export interface StepState {
  plan: StepPlan;
  batch: AttentionBatch;
  attention: { numTokens: number; numSequences: number; buffer: GPUBuffer };
  positions: GPUBuffer;
  adapters: Array<AdapterLayout | null>;
  anyAdapter: boolean;
  loraForm: LoraForm;
  /** Σ over the step's tokens of their adapter's largest module rank: no module's packed shrink output is longer. */
  maxLoraV: number;
}

/** The step's attention batch and token positions uploaded through `upload`, and each token's adapter. */
export function prepareStep(
  plan: StepPlan,
  upload: (name: string, data: ArrayBufferView) => GPUBuffer,
): StepState {
  const batch = buildAttentionBatch(plan);
  const adapters: Array<AdapterLayout | null> = [];
  let singleTokens = true;
  for (const s of plan.sequences) {
    if (s.tokens.length !== 1) singleTokens = false;
    for (let i = 0; i < s.tokens.length; i++) adapters.push(s.adapter);
  }
  return {
    plan,
    batch,
    attention: {
      numTokens: batch.numTokens,
      numSequences: batch.numSequences,
      buffer: upload('attention-batch', packAttentionBatch(batch)),
    },
    positions: upload('positions', Uint32Array.from(batch.tokenPos)),
    adapters,
    anyAdapter: adapters.some((a) => a !== null),
    loraForm: singleTokens ? 'mbgmv' : 'mbgmm',
    maxLoraV: adapters.reduce((sum, a) => sum + (a?.rank ?? 0), 0),
  };
}
