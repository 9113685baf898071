import {
  logitRows,
  type RowSampling,
  type SampledStep,
  type SequenceStep,
  type StepPlan,
  sequenceLogitRows,
} from './engine.js';
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
    /** A row the sampler reads (the plan's own logit rows). */
    const sampled = (): WideRow => ({
      sequence,
      sampleRow: sampleRow++,
      promptIndex: -1,
      target: 'sampled',
      topK: topKSampled,
    });
    if (targets.length === 0) {
      for (let r = 0; r < numSampled; r++) rows.push(sampled());
      return s;
    }
    if (s.logits === 'all' || targets.length > s.tokens.length - numSampled)
      throw new Error(
        `sequence ${s.seqId}: ${targets.length} prompt targets beside logits '${s.logits}' for ${s.tokens.length} tokens`,
      );
    for (let t = 0; t < s.tokens.length; t++) {
      if (t < targets.length)
        rows.push({
          sequence,
          sampleRow: -1,
          promptIndex: t,
          target: targets[t],
          topK: request?.promptTopK ?? request?.topK ?? 0,
        });
      else if (t === s.tokens.length - 1 && numSampled === 1) rows.push(sampled());
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

/** One part of a step split by splitForLogitRows: its plan, and where its rows and sequences sit in the whole. */
export interface StepPart {
  plan: StepPlan;
  /** Plan sequence index (in the whole step) of each of the part's sequences. */
  sequences: number[];
}

/**
 * Splits a step so that no part, once widened for prompt log-probabilities, has more than
 * `maxRows` logit rows (an engine whose logits must fit one buffer runs the parts one after
 * another). A scoring sequence too wide for what is left is cut into consecutive chunks, as
 * chunked prefill would: each chunk scores its share of promptTargets, and only the last keeps
 * the sequence's sampled row. Parts keep the plan's order, so rows come out in plan order.
 */
export function splitForLogitRows(plan: StepPlan, maxRows: number): StepPart[] {
  if (!(maxRows >= 1)) throw new Error(`maxRows must be at least 1, got ${maxRows}`);
  const parts: StepPart[] = [];
  let current: StepPart = { plan: { sequences: [] }, sequences: [] };
  let rows = 0;
  const close = () => {
    if (current.sequences.length > 0) parts.push(current);
    current = { plan: { sequences: [] }, sequences: [] };
    rows = 0;
  };
  const add = (s: SequenceStep, index: number, numRows: number) => {
    if (rows + numRows > maxRows) close();
    current.plan.sequences.push(s);
    current.sequences.push(index);
    rows += numRows;
  };
  plan.sequences.forEach((s, index) => {
    const targets = s.logprobs?.promptTargets;
    if (!targets?.length) {
      add(s, index, sequenceLogitRows(s));
      return;
    }
    let start = 0;
    while (start < s.tokens.length) {
      if (rows >= maxRows) close();
      const end = Math.min(s.tokens.length, start + maxRows - rows);
      const isLast = end === s.tokens.length;
      const chunk: SequenceStep = {
        ...s,
        tokens: Array.from(s.tokens).slice(start, end),
        startPos: s.startPos + start,
        logits: isLast ? s.logits : 'none',
        logprobs: {
          ...s.logprobs,
          topK: s.logprobs?.topK ?? 0,
          sampled: isLast && (s.logprobs?.sampled ?? false),
          promptTargets: targets.subarray(Math.min(start, targets.length), Math.min(end, targets.length)),
        },
      };
      add(chunk, index, end - start);
      start = end;
    }
  });
  close();
  return parts;
}

/**
 * Samples `plan` as splitForLogitRows' parts, one `run` after another, and puts the answers back
 * together in plan order (a sequence cut into chunks gets its prompt scores joined).
 */
export async function sampleInParts(
  plan: StepPlan,
  sampling: ReadonlyArray<RowSampling>,
  maxRows: number,
  run: (part: StepPlan, sampling: ReadonlyArray<RowSampling>) => Promise<SampledStep>,
): Promise<SampledStep> {
  const parts = splitForLogitRows(plan, maxRows);
  if (parts.length <= 1) return run(plan, sampling);
  const whole: SampledStep = {
    tokens: new Int32Array(sampling.length),
    logprobs: [],
    promptLogprobs: plan.sequences.map(() => null),
  };
  let row = 0;
  for (const part of parts) {
    const numRows = logitRows(part.plan);
    const result = await run(part.plan, sampling.slice(row, row + numRows));
    whole.tokens.set(result.tokens, row);
    whole.logprobs.push(...result.logprobs);
    row += numRows;
    part.sequences.forEach((index, j) => {
      const scored = result.promptLogprobs[j];
      if (scored) whole.promptLogprobs[index] = [...(whole.promptLogprobs[index] ?? []), ...scored];
    });
  }
  return whole;
}
