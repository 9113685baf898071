import { describe, expect, it } from 'vitest';
import { logitRows, logitTokenIndices, type SequenceStep, type StepPlan } from '../../kernels/engine.js';

function seq(seqId: number, numTokens: number, logits: SequenceStep['logits']): SequenceStep {
  return {
    seqId,
    tokens: Array.from({ length: numTokens }, (_, i) => i + 1),
    startPos: 0,
    pageTable: new Int32Array(0),
    adapter: null,
    logits,
  };
}

describe('logitTokenIndices / logitRows', () => {
  it('pick the last token, every token or none, in plan order', () => {
    const plan: StepPlan = {
      sequences: [seq(1, 3, 'last'), seq(2, 2, 'all'), seq(3, 4, 'none'), seq(4, 1, 'last')],
    };
    expect(logitTokenIndices(plan)).toEqual([2, 3, 4, 9]);
    expect(logitRows(plan)).toBe(4);
  });

  it("agree that a sequence with logits 'last' and no tokens gets no row", () => {
    const plan: StepPlan = { sequences: [seq(1, 0, 'last'), seq(2, 2, 'last'), seq(3, 0, 'all')] };
    expect(logitTokenIndices(plan)).toEqual([1]);
    expect(logitRows(plan)).toBe(1);
  });
});
