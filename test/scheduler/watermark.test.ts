import { describe, expect, it } from 'vitest';
import { SequenceLogitEdits } from '../../scheduler/logit-edits.js';
import { greenList, Mt19937, torchRandperm, WATERMARK_HASH_KEY } from '../../scheduler/watermark.js';

/** LoRAX's watermark: green lists drawn as PyTorch draws them on a CPU device. */
describe('the watermark green lists', () => {
  it('draws as the Mersenne Twister PyTorch seeds: the C++ standard check and torch.rand', () => {
    // The C++ standard's check of mt19937: the 10,000th draw after the default seed 5489.
    const standard = new Mt19937(5489);
    let draw = 0;
    for (let i = 0; i < 10_000; i++) draw = standard.random();
    expect(draw).toBe(4123659995);
    // torch.manual_seed(0); torch.rand(1) is 0.4963 (the first draw's low 24 bits / 2^24).
    expect((new Mt19937(0).random() & 0xffffff) / 2 ** 24).toBeCloseTo(0.49626, 5);
    // Only the seed's low 32 bits count (at::mt19937 seeds state[0] with them).
    expect(new Mt19937(2n ** 32n + 7n).random()).toBe(new Mt19937(7).random());
  });

  it('permutes as torch.randperm does after torch.manual_seed(0)', () => {
    expect(Array.from(torchRandperm(10, new Mt19937(0)))).toEqual([4, 1, 7, 5, 3, 9, 0, 8, 6, 2]);
  });

  it('takes the first ⌊vocab·gamma⌋ of the permutation seeded by hash key × the previous token', () => {
    const green = greenList(42, 1000, 0.25).ids;
    expect(green).toHaveLength(250);
    expect(Array.from(green)).toEqual(
      Array.from(torchRandperm(1000, new Mt19937(BigInt(WATERMARK_HASH_KEY) * 42n)).slice(0, 250)),
    );
    expect(new Set(green).size).toBe(250);
    expect(Array.from(greenList(43, 1000, 0.25).ids)).not.toEqual(Array.from(green));
    // Asked again (the cache), the same list; each id knows its place in it.
    expect(greenList(42, 1000, 0.25).ids).toEqual(green);
    const { position } = greenList(42, 1000, 0.25);
    expect(Array.from(green, (id) => position[id])).toEqual(Array.from(green, (_, i) => i));
    expect(position.filter((at) => at < 0)).toHaveLength(750);
  });

  it("adds delta to the previous token's green list first, before the repetition penalty", () => {
    const watermark = { gamma: 0.5, delta: 2, vocabSize: 16 };
    const edits = SequenceLogitEdits.for(
      {
        presencePenalty: 0,
        frequencyPenalty: 0,
        repetitionPenalty: 2,
        logitBias: new Map(),
        minTokens: 0,
        watermark,
      },
      [3, 5],
      [],
    )!;
    const adjustments = edits.adjustments([3, 5], 2)!;
    const green = new Set(greenList(5, 16, 0.5).ids);
    expect(green.size).toBe(8);
    for (let i = 0; i < adjustments.tokens.length; i++) {
      const token = adjustments.tokens[i];
      expect(adjustments.bias[i], `token ${token}`).toBe(green.has(token) ? 2 : 0);
      expect(adjustments.repetition[i]).toBe(token === 3 || token === 5 ? 2 : 1);
    }
    expect(new Set(adjustments.tokens)).toEqual(new Set([...green, 3, 5]));
  });
});
