import { type SequenceStep, type StepPlan, sequenceLogitRows } from './engine.js';
import type { TokenLogprobs } from './logprobs.js';

/** One logit row of a step widened for prompt log-probabilities (see widenForLogprobs). */
export interface WideRow {
  /** Plan sequence the row belongs to. */
  sequence: number;
  /** Index among the plan's logit rows when the row is sampled from; -1 for a prompt row (scored only). */
  sampleRow: number;
  /** Index into the sequence's promptTargets for a prompt row; -1 otherwise. */
  promptIndex: number;
  /** The token the row scores: a prompt target, or 'sampled' (the id drawn from the row). */
  target: number | 'sampled';
  /** Top tokens the row lists; null when its sequence asked for no log-probabilities here. */
  topK: number | null;
}

/**
 * The step the engine runs when sequences ask for prompt log-probabilities: those sequences get
 * logits for every token ('all'), so their prompt rows come back beside the sampled one. `rows`
 * describes each logit row of the widened plan, in its order.
 */
export function widenForLogprobs(plan: StepPlan): { wide: StepPlan; rows: WideRow[] } {
  const rows: WideRow[] = [];
  let sampleRow = 0;
  const sequences = plan.sequences.map((s, sequence): SequenceStep => {
    const request = s.logprobs;
    const targets = request?.promptTargets ?? new Int32Array(0);
    const numSampled = sequenceLogitRows(s);
    const topKSampled = request?.sampled ? request.topK : null;
    if (targets.length === 0) {
      for (let r = 0; r < numSampled; r++)
        rows.push({
          sequence,
          sampleRow: sampleRow++,
          promptIndex: -1,
          target: 'sampled',
          topK: topKSampled,
        });
      return s;
    }
    if (s.logits === 'all' || targets.length > s.tokens.length - numSampled)
      throw new Error(
        `sequence ${s.seqId}: ${targets.length} prompt targets beside logits '${s.logits}' for ${s.tokens.length} tokens`,
      );
    for (let t = 0; t < s.tokens.length; t++) {
      if (t < targets.length)
        rows.push({ sequence, sampleRow: -1, promptIndex: t, target: targets[t], topK: request?.topK ?? 0 });
      else if (t === s.tokens.length - 1 && numSampled === 1)
        rows.push({
          sequence,
          sampleRow: sampleRow++,
          promptIndex: -1,
          target: 'sampled',
          topK: topKSampled,
        });
      else rows.push({ sequence, sampleRow: -1, promptIndex: -1, target: 'sampled', topK: null });
    }
    return { ...s, logits: 'all' };
  });
  return { wide: { sequences }, rows };
}

/** Sorts each wide row's answer into SampledStep's two lists. */
export function collectLogprobs(
  plan: StepPlan,
  rows: readonly WideRow[],
  answer: (wideRow: number) => TokenLogprobs,
): { logprobs: Array<TokenLogprobs | null>; promptLogprobs: Array<TokenLogprobs[] | null> } {
  const numSampled = rows.reduce((n, r) => n + (r.sampleRow >= 0 ? 1 : 0), 0);
  const logprobs: Array<TokenLogprobs | null> = new Array(numSampled).fill(null);
  const promptLogprobs: Array<TokenLogprobs[] | null> = plan.sequences.map((s) =>
    s.logprobs?.promptTargets?.length ? [] : null,
  );
  rows.forEach((row, w) => {
    if (row.topK === null) return;
    if (row.sampleRow >= 0) logprobs[row.sampleRow] = answer(w);
    else if (row.promptIndex >= 0) promptLogprobs[row.sequence]?.push(answer(w));
  });
  return { logprobs, promptLogprobs };
}
