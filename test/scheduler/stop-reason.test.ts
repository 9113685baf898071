import { describe, expect, it } from 'vitest';
import { StopChecker, type StopConditions } from '../../scheduler/stop-checker.js';

const vocab = ['Hel', 'lo', ' wor', 'ld', '!', 'EOS', 'x'];
const EOS = 5;

function checker(over: Partial<StopConditions> = {}): StopChecker {
  return new StopChecker(
    { stop: [], stopTokenIds: new Set([EOS, 4]), maxTokens: 4, promptLength: 3, maxModelLen: 1000, ...over },
    { push: (id) => vocab[id], flush: () => '' },
  );
}

/** The verdict of the token that ended the choice, or of the last one fed. */
function last(c: StopChecker, tokens: number[]) {
  let verdict = c.accept(tokens[0]);
  for (const t of tokens.slice(1)) {
    if (verdict.finishReason) break;
    verdict = c.accept(t);
  }
  return verdict;
}

describe("the stop verdict's stop reason (vLLM's stop_reason)", () => {
  it('names the stop token id that ended the choice', () => {
    expect(last(checker(), [0, EOS])).toEqual({ text: '', finishReason: 'stop', stopReason: EOS });
    expect(last(checker(), [0, 4])).toMatchObject({ finishReason: 'stop', stopReason: 4 });
  });

  it('names the stop string that matched, the earliest in the text when several do', () => {
    // "Hello wor": 'lo' starts before 'wor', so 'lo' ends it at the second token although listed
    // second ('He' went out with the first token, the 'l' before the match goes out now).
    expect(last(checker({ stop: ['wor', 'lo'] }), [0, 1, 2])).toMatchObject({
      text: 'l',
      finishReason: 'stop',
      stopReason: 'lo',
    });
    expect(last(checker({ stop: ['zz', 'o w'] }), [0, 1, 2])).toMatchObject({ stopReason: 'o w' });
    // Both complete with ' wor'; 'lo w' starts first in "Hello wor".
    expect(last(checker({ stop: ['o wor', 'lo w'] }), [0, 1, 2])).toMatchObject({ stopReason: 'lo w' });
  });

  it('has none for a length finish or a choice still running', () => {
    expect(last(checker(), [0, 1, 2, 3])).toEqual({ text: 'ld', finishReason: 'length' });
    expect(checker().accept(0)).toEqual({ text: 'Hel', finishReason: null });
  });
});
