import { describe, expect, it } from 'vitest';
import { IncrementalDecoder } from '../../model/incremental-decoder.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { llama2StyleTokenizerJson } from './tokenizer-fixtures.js';

function llama2StyleTokenizer(): TextTokenizer {
  return new TextTokenizer({
    tokenizerJson: llama2StyleTokenizerJson(),
    tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', legacy: false },
  });
}

describe('a sentencepiece-style tokenizer', () => {
  const tokenizer = llama2StyleTokenizer();
  const text = 'Hello world 🎉 Hello';

  it('encodes with merges, byte fallback and BOS, and decodes back', () => {
    const ids = tokenizer.encode(text);
    expect(ids[0]).toBe(1);
    expect(ids).toHaveLength(9); // <s> ▁Hello ▁world ▁ <4 emoji bytes> ▁Hello
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('streams the spaces that the decoder strips from a lone token', () => {
    const decoder = new IncrementalDecoder(tokenizer);
    const pieces = tokenizer.encode(text).map((id) => decoder.push(id));
    expect(pieces).toEqual(['', 'Hello', ' world', ' ', '', '', '', '🎉', ' Hello']);
    expect(decoder.flush()).toBe('');
  });
});
