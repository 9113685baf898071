import { type AttentionBatch, buildAttentionBatch } from '../attention-batch.js';
import type { StepPlan } from '../engine.js';
import { type AdapterSlotTable, NO_SLOT } from './adapter-slots.js';
import { packAttentionBatch } from './attention-meta.js';
import { type DeviceStepLora, packStepLora } from './lora-meta.js';

/** What one step's layers share on the device. */
export interface StepState {
  plan: StepPlan;
  batch: AttentionBatch;
  attention: { numTokens: number; numSequences: number; buffer: GPUBuffer };
  positions: GPUBuffer;
  /** Each token's adapter slot and the work lists, one buffer for every layer and module; null without adapters. */
  lora: DeviceStepLora | null;
}

/** The step's attention batch, token positions and LoRA slot ids, each uploaded once through `upload`. */
export function prepareStep(
  plan: StepPlan,
  slots: AdapterSlotTable,
  upload: (name: string, data: ArrayBufferView) => GPUBuffer,
): StepState {
  const batch = buildAttentionBatch(plan);
  return {
    plan,
    batch,
    attention: {
      numTokens: batch.numTokens,
      numSequences: batch.numSequences,
      buffer: upload('attention-batch', packAttentionBatch(batch)),
    },
    positions: upload('positions', Uint32Array.from(batch.tokenPos)),
    lora: prepareStepLora(plan, slots, upload),
  };
}

/**
 * Each token's adapter slot and the step's work lists, packed and uploaded once for every layer
 * and module (the whole per-step LoRA metadata); null when no token has an adapter.
 */
export function prepareStepLora(
  plan: StepPlan,
  slots: AdapterSlotTable,
  upload: (name: string, data: ArrayBufferView) => GPUBuffer,
): DeviceStepLora | null {
  let numTokens = 0;
  for (const s of plan.sequences) numTokens += s.tokens.length;
  const tokenSlots = new Uint32Array(numTokens).fill(NO_SLOT);
  let singleTokens = true;
  let anyAdapter = false;
  let t = 0;
  for (const s of plan.sequences) {
    if (s.tokens.length !== 1) singleTokens = false;
    if (s.adapter) {
      anyAdapter = true;
      tokenSlots.fill(slots.slotOf(s.adapter), t, t + s.tokens.length);
    }
    t += s.tokens.length;
  }
  if (!anyAdapter) return null;
  const packed = packStepLora(
    tokenSlots,
    (slot) => slots.info(slot),
    slots.entriesPerSlot,
    singleTokens ? 'mbgmv' : 'mbgmm',
  );
  return { packed, buffer: upload('lora-step', packed.words) };
}
