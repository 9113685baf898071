import type { StepPlan } from './engine.js';

/**
 * A step's tokens, flattened, with what causal paged attention needs to find each token's
 * keys and values: token t of sequence s = tokenSeq[t] sits at position tokenPos[t] and attends
 * to positions 0…tokenPos[t] of its own sequence, read through that sequence's page table
 * pageTables[pageTableOffset[s] …] (layout: memory/kv-layout.ts). K/V of the step's own tokens
 * are written to the pages before attention runs.
 */
export interface AttentionBatch {
  numTokens: number;
  numSequences: number;
  tokenSeq: Int32Array; // [T]
  tokenPos: Int32Array; // [T]
  pageTableOffset: Int32Array; // [S]
  pageTableLength: Int32Array; // [S]
  pageTables: Int32Array; // concatenated
  /** Longest context (positions 0…maxPos) any token reads, for sizing work. */
  maxContext: number;
}

export function buildAttentionBatch(plan: StepPlan): AttentionBatch {
  const S = plan.sequences.length;
  let T = 0;
  let tableLen = 0;
  for (const s of plan.sequences) {
    T += s.tokens.length;
    tableLen += s.pageTable.length;
  }
  const tokenSeq = new Int32Array(T);
  const tokenPos = new Int32Array(T);
  const pageTableOffset = new Int32Array(S);
  const pageTableLength = new Int32Array(S);
  const pageTables = new Int32Array(tableLen);
  let t = 0;
  let off = 0;
  let maxContext = 0;
  plan.sequences.forEach((s, i) => {
    pageTableOffset[i] = off;
    pageTableLength[i] = s.pageTable.length;
    pageTables.set(s.pageTable, off);
    off += s.pageTable.length;
    for (let j = 0; j < s.tokens.length; j++, t++) {
      tokenSeq[t] = i;
      tokenPos[t] = s.startPos + j;
    }
    maxContext = Math.max(maxContext, s.startPos + s.tokens.length);
  });
  return {
    numTokens: T,
    numSequences: S,
    tokenSeq,
    tokenPos,
    pageTableOffset,
    pageTableLength,
    pageTables,
    maxContext,
  };
}
