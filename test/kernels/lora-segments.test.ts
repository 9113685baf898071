import { describe, expect, it } from 'vitest';
import { chooseChunkRank } from '../../kernels/onnx/lora-segments.js';

describe('chooseChunkRank', () => {
  it('keeps one chunk per segment when ranks are uniform', () => {
    expect(chooseChunkRank([8, 8, 8])).toBe(8);
    expect(chooseChunkRank([64])).toBe(64);
  });

  it('cuts mixed ranks into chunks instead of padding every segment to the highest', () => {
    const ranks = [8, 16, 32, 64, 8, 16, 32, 64];
    const chunk = chooseChunkRank(ranks);
    expect(chunk).toBeLessThan(64);
    const rowsComputed = ranks.reduce((sum, r) => sum + Math.ceil(r / chunk) * chunk, 0);
    expect(rowsComputed).toBeLessThan(ranks.length * 64);
  });

  it('never picks chunks so small that per-chunk work dominates', () => {
    expect(chooseChunkRank([1, 64])).toBeGreaterThanOrEqual(4);
  });

  it('has a defined answer for a step without gathered segments', () => {
    expect(chooseChunkRank([])).toBe(1);
  });
});
