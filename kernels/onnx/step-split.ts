import type { SequenceStep, StepPlan } from '../engine.js';

/**
 * Bounds the padded attention of one graph run. The step graph pads every sequence's attention
 * rows to the longest sequence's new tokens, and its scores hold B·heads·S·C floats; a plan that
 * mixes a long prompt with many decodes, or one very long prompt, would pay that in time and
 * memory. So a plan is cut into parts, each one `session.run`:
 *   - a sequence's tokens are cut into chunks of at most `maxChunkTokens` (chunked prefill: chunk
 *     k starts where chunk k-1 ended, so it runs in a later round and reads its K/V from pages);
 *   - within a round, sequences are grouped so that padded rows stay ≤ 2× real ones, or their
 *     padded attention stays small (PADDING_BUDGET): a short prompt beside decodes costs a few
 *     padded score rows, where a run of its own reads every weight once more.
 * Pure decode batches and batches of similar prompts stay a single part.
 */

/**
 * Padding rows × attention slots (past + new) a part may carry past the 2× rule: at TinyLlama's
 * 32 heads, 4M padded scores, a few ms of attention, against tens of ms for one more run.
 */
export const PADDING_BUDGET = 1 << 17;
export interface PlanPart {
  plan: StepPlan;
  /** For each sequence of `plan`, the index of the sequence it came from in the original plan. */
  origin: number[];
}

export function splitPlan(plan: StepPlan, maxChunkTokens: number): PlanPart[] {
  const rounds: Array<Array<{ step: SequenceStep; origin: number }>> = [];
  plan.sequences.forEach((s, origin) => {
    const n = s.tokens.length;
    const chunks = Math.max(1, Math.ceil(n / maxChunkTokens));
    for (let k = 0; k < chunks; k++) {
      const from = k * maxChunkTokens;
      const isLast = k === chunks - 1;
      const tokens = chunks === 1 ? s.tokens : Array.from(s.tokens).slice(from, from + maxChunkTokens);
      const logits = s.logits === 'all' || isLast ? s.logits : 'none';
      rounds[k] ??= [];
      rounds[k].push({ step: { ...s, tokens, startPos: s.startPos + from, logits }, origin });
    }
  });
  const parts: PlanPart[] = [];
  for (const round of rounds) {
    const sorted = [...round].sort((a, b) => b.step.tokens.length - a.step.tokens.length);
    let group: typeof round = [];
    let real = 0;
    let slots = 0;
    for (const item of sorted) {
      const n = item.step.tokens.length;
      const longest = group.length > 0 ? group[0].step.tokens.length : n;
      const padded = (group.length + 1) * longest;
      const withSlots = Math.max(slots, item.step.startPos + longest);
      const tooPadded = padded > 2 * (real + n) && (padded - real - n) * withSlots > PADDING_BUDGET;
      if (group.length > 0 && tooPadded) {
        parts.push(toPart(group));
        group = [];
        real = 0;
        slots = 0;
      }
      group.push(item);
      real += n;
      slots = Math.max(slots, item.step.startPos + group[0].step.tokens.length);
    }
    if (group.length > 0) parts.push(toPart(group));
  }
  return parts;
}

function toPart(group: Array<{ step: SequenceStep; origin: number }>): PlanPart {
  return { plan: { sequences: group.map((g) => g.step) }, origin: group.map((g) => g.origin) };
}
