import { describe, expect, it } from 'vitest';
import { IncrementalDecoder } from '../../model/incremental-decoder.js';
import { specialAddedToken } from '../../model/synthetic-tokenizer.js';
import { TextTokenizer } from '../../model/tokenizer.js';

/**
 * A miniature Llama-2-style tokenizer.json (▁ for spaces, byte fallback, a decoder that strips
 * the leading space): the shape of real Llama/TinyLlama tokenizers, where a token's text depends
 * on what precedes it, which the synthetic byte-level tokenizer cannot show.
 */
function llama2StyleTokenizer(): TextTokenizer {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = [
    '▁',
    'H',
    'e',
    'l',
    'o',
    'w',
    'r',
    'd',
    'He',
    'll',
    'Hell',
    'Hello',
    '▁w',
    'or',
    '▁wor',
    'ld',
  ];
  for (const piece of [...pieces, '▁world', '▁Hello']) vocab[piece] = Object.keys(vocab).length;
  const merges = ['H e', 'l l', 'He ll', 'Hell o', '▁ w', 'o r', '▁w or', 'l d', '▁wor ld', '▁ Hello'];
  const tokenizerJson = {
    version: '1.0',
    added_tokens: [specialAddedToken(0, '<unk>'), specialAddedToken(1, '<s>'), specialAddedToken(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges },
  };
  return new TextTokenizer(tokenizerJson, { bos_token: '<s>', eos_token: '</s>', legacy: false });
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
