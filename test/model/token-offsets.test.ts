import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../../model/tokenizer.js';
import {
  LLAMA3_BOS,
  LLAMA3_EOS,
  llama2StyleTokenizerJson,
  llama3StyleTokenizer,
} from './tokenizer-fixtures.js';

/** The characters (code points) each span covers, joined: what the offsets say the tokens read. */
function spanned(text: string, offsets: Array<[number, number]>): string[] {
  const chars = [...text];
  return offsets.map(([start, stop]) => chars.slice(start, stop).join(''));
}

describe('token character offsets (HF encode_char_offsets)', () => {
  it('sentencepiece style: the dummy prefix belongs to the first word, byte-fallback pieces to their character', () => {
    const tokenizer = new TextTokenizer({
      tokenizerJson: llama2StyleTokenizerJson(),
      tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', legacy: false },
    });
    const text = 'Hello world 🎉 Hello';
    const ids = tokenizer.encode(text);
    const offsets = tokenizer.charOffsets(text, ids)!;
    // <s> ▁Hello ▁world ▁ <F0> <9F> <8E> <89> ▁Hello; the emoji is one code point, the 13th.
    expect(offsets).toEqual([
      [0, 0],
      [0, 5],
      [5, 11],
      [11, 12],
      [12, 13],
      [12, 13],
      [12, 13],
      [12, 13],
      [13, 19],
    ]);
    expect(tokenizer.idsToTokens(ids.slice(0, 3))).toEqual(['<s>', '▁Hello', '▁world']);
    // A text that starts with a character the prefix cannot merge into: the lone ▁ spans it.
    const digits = tokenizer.encode('e', true);
    expect(tokenizer.idsToTokens(digits)).toEqual(['<s>', '▁', 'e']);
    expect(tokenizer.charOffsets('e', digits)).toEqual([
      [0, 0],
      [0, 1],
      [0, 1],
    ]);
  });

  it('byte-level BPE: every byte piece of a character spans it, specials in the text span their spelling', () => {
    // The fixture has no merges: each byte is a token.
    const { json } = llama3StyleTokenizer([]);
    const tokenizer = new TextTokenizer({
      tokenizerJson: json,
      tokenizerConfig: { bos_token: LLAMA3_BOS, eos_token: LLAMA3_EOS },
    });
    const text = `Hi é${LLAMA3_EOS}🎉`;
    const ids = tokenizer.encode(text);
    expect(ids).toHaveLength(1 + 3 + 2 + 1 + 4);
    const offsets = tokenizer.charOffsets(text, ids)!;
    const eosEnd = 4 + LLAMA3_EOS.length;
    expect(offsets).toEqual([
      [0, 0],
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [3, 4],
      [4, eosEnd],
      [eosEnd, eosEnd + 1],
      [eosEnd, eosEnd + 1],
      [eosEnd, eosEnd + 1],
      [eosEnd, eosEnd + 1],
    ]);
    expect(spanned(text, offsets.slice(0, 7))).toEqual(['', 'H', 'i', ' ', 'é', 'é', LLAMA3_EOS]);
    expect(tokenizer.idsToTokens(ids.slice(0, 4))).toEqual([LLAMA3_BOS, 'H', 'i', 'Ġ']);
  });

  it('gives none where a normalizer rewrote the text or the decoder is not byte-wise', () => {
    const { json } = llama3StyleTokenizer([]);
    const tokenizer = new TextTokenizer({
      tokenizerJson: { ...json, normalizer: { type: 'Lowercase' } },
      tokenizerConfig: { bos_token: LLAMA3_BOS, eos_token: LLAMA3_EOS },
    });
    expect(tokenizer.charOffsets('Hi', tokenizer.encode('Hi'))).toBeNull();
    // A decoder whose pieces are not bytes places nothing either.
    const wordPiece = new TextTokenizer({
      tokenizerJson: { ...json, decoder: { type: 'WordPiece', prefix: '##', cleanup: true } },
      tokenizerConfig: { bos_token: LLAMA3_BOS, eos_token: LLAMA3_EOS },
    });
    expect(wordPiece.charOffsets('hi', wordPiece.encode('hi'))).toBeNull();
    expect(tokenizer.charOffsets('hi', tokenizer.encode('hi'))).toEqual([
      [0, 0],
      [0, 1],
      [1, 2],
    ]);
  });
});
