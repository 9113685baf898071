import { describe, expect, it } from 'vitest';
import { StopChecker, type StopConditions, type TokenDecoder } from '../../scheduler/stop-checker.js';

const vocab = ['Hel', 'lo', ' wor', 'ld', '!', '\n\n', 'EOS', 'x', '##', 'END'];
const EOS = 6;

function decoder(): TokenDecoder {
  return { push: (id) => vocab[id], flush: () => '' };
}

function checker(over: Partial<StopConditions> = {}, dec: TokenDecoder = decoder()): StopChecker {
  return new StopChecker(
    { stop: [], stopTokenIds: new Set([EOS]), maxTokens: 100, promptLength: 3, maxModelLen: 1000, ...over },
    dec,
  );
}

/** Feeds tokens until one finishes the choice; returns the text emitted per token and the reason. */
function run(c: StopChecker, tokens: number[]): { pieces: string[]; reason: string | null } {
  const pieces: string[] = [];
  for (const t of tokens) {
    const v = c.accept(t);
    pieces.push(v.text);
    if (v.finishReason) return { pieces, reason: v.finishReason };
  }
  return { pieces, reason: null };
}

describe('stop checker', () => {
  it('emits text as it comes when no stop string could start', () => {
    expect(run(checker(), [0, 1, 2, 3])).toEqual({ pieces: ['Hel', 'lo', ' wor', 'ld'], reason: null });
  });

  it('holds back a possible start of a stop string across token boundaries, drops the match', () => {
    // "lo wo" spans three tokens: the 'l' of 'Hel' is held (it could start the match), then the 'lo'
    // of 'llo'; ' wor' completes the match, and nothing of it is emitted.
    expect(run(checker({ stop: ['lo wo'] }), [0, 1, 2, 3])).toEqual({
      pieces: ['He', 'l', ''],
      reason: 'stop',
    });
  });

  it('releases held text once it can no longer start a stop string', () => {
    expect(run(checker({ stop: ['lox'] }), [0, 1, 2])).toEqual({
      pieces: ['He', 'l', 'lo wor'],
      reason: null,
    });
  });

  it('finds the earliest of several stop strings, and a stop string inside one token', () => {
    expect(run(checker({ stop: ['ld', 'o w'] }), [0, 1, 2, 3])).toEqual({
      pieces: ['He', 'll', ''],
      reason: 'stop',
    });
    expect(run(checker({ stop: ['#'] }), [7, 8])).toEqual({ pieces: ['x', ''], reason: 'stop' });
  });

  it('stops at EOS without emitting its text, unless EOS is ignored', () => {
    expect(run(checker(), [0, EOS, 1])).toEqual({ pieces: ['Hel', ''], reason: 'stop' });
    expect(run(checker({ stopTokenIds: new Set() }), [0, EOS, 1])).toEqual({
      pieces: ['Hel', 'EOS', 'lo'],
      reason: null,
    });
  });

  it('stops at a request stop token id and releases held text', () => {
    const c = checker({ stop: ['lo!'], stopTokenIds: new Set([9]) });
    expect(run(c, [0, 1, 9])).toEqual({ pieces: ['He', 'l', 'lo'], reason: 'stop' });
  });

  it('ends with length at maxTokens, releasing held text and what the decoder still holds', () => {
    let held = '';
    const dec: TokenDecoder = {
      push: (id) => {
        if (id === 7) {
          held = '\uFFFD';
          return '';
        }
        return vocab[id];
      },
      flush: () => {
        const rest = held;
        held = '';
        return rest;
      },
    };
    const c = checker({ maxTokens: 3, stop: ['lo!!'] }, dec);
    expect(run(c, [0, 1, 7])).toEqual({ pieces: ['He', 'l', 'lo\uFFFD'], reason: 'length' });
  });

  it('ends with length at the model context limit', () => {
    const c = checker({ promptLength: 3, maxModelLen: 5 });
    expect(run(c, [0, 1, 2])).toEqual({ pieces: ['Hel', 'lo'], reason: 'length' });
  });

  it('a stop string takes precedence over length on the same token', () => {
    expect(run(checker({ maxTokens: 2, stop: ['lo'] }), [0, 1])).toEqual({
      pieces: ['He', 'l'],
      reason: 'stop',
    });
  });

  it('drain releases held text when the choice ends from outside', () => {
    const c = checker({ stop: ['lo!'] });
    expect(run(c, [0, 1])).toEqual({ pieces: ['He', 'l'], reason: null });
    expect(c.drain()).toBe('lo');
  });

  it('ignores empty stop strings', () => {
    expect(run(checker({ stop: [''] }), [0, 1])).toEqual({ pieces: ['Hel', 'lo'], reason: null });
  });
});

describe('stop checker with min_tokens (vLLM)', () => {
  it('lets neither a stop token nor a stop string end the choice before min_tokens tokens', () => {
    // A stop token counts from the min_tokens-th token on: EOS as the 2nd of min_tokens 2 stops.
    expect(run(checker({ minTokens: 2 }), [EOS, EOS])).toEqual({ pieces: ['EOS', ''], reason: 'stop' });
    // A stop string counts only after min_tokens tokens: "x" twice is output, the third ends it.
    expect(run(checker({ stop: ['x'], minTokens: 2 }), [7, 7, 7, 3])).toEqual({
      pieces: ['x', 'x', ''],
      reason: 'stop',
    });
    expect(run(checker({ stop: ['x'] }), [7])).toEqual({ pieces: [''], reason: 'stop' });
  });
});

describe('stop checker with include_stop_str_in_output (vLLM)', () => {
  it('ends the text with the stop string, holding nothing back, a match across tokens included', () => {
    // 'lo wo' starts in 'lo' (already out: nothing is held) and ends inside ' wor'.
    expect(run(checker({ stop: ['lo wo'], includeStopStr: true }), [0, 1, 2, 3])).toEqual({
      pieces: ['Hel', 'lo', ' wo'],
      reason: 'stop',
    });
    // Text after the match in the same token is cut.
    expect(run(checker({ stop: ['#'], includeStopStr: true }), [7, 8, 7])).toEqual({
      pieces: ['x', '#'],
      reason: 'stop',
    });
    // Without it the same run drops the match and held text that could start one.
    expect(run(checker({ stop: ['lo wo'] }), [0, 1, 2, 3])).toEqual({
      pieces: ['He', 'l', ''],
      reason: 'stop',
    });
  });

  it("keeps the stop token's text", () => {
    expect(run(checker({ includeStopStr: true }), [0, EOS])).toEqual({
      pieces: ['Hel', 'EOS'],
      reason: 'stop',
    });
    expect(run(checker(), [0, EOS])).toEqual({ pieces: ['Hel', ''], reason: 'stop' });
  });
});
