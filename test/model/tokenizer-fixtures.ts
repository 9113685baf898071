import { byteToUnicode, specialAddedToken } from '../../model/synthetic-tokenizer.js';

/**
 * A miniature Llama-2-style tokenizer.json (▁ for spaces, byte fallback, a decoder that strips
 * the leading space): the shape of real Llama/TinyLlama/Mistral tokenizers, where a token's text
 * depends on what precedes it, which the synthetic byte-level tokenizer cannot show. Its
 * post-processor adds `<s>`, as Llama-2's tokenizer.json does.
 */
export function llama2StyleTokenizerJson(extraPieces: string[] = []): Record<string, unknown> {
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
  for (const piece of [...pieces, '▁world', '▁Hello', ...extraPieces]) {
    if (!(piece in vocab)) vocab[piece] = Object.keys(vocab).length;
  }
  const merges = ['H e', 'l l', 'He ll', 'Hell o', '▁ w', 'o r', '▁w or', 'l d', '▁wor ld', '▁ Hello'];
  return {
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
}

export const LLAMA3_BOS = '<|begin_of_text|>';
export const LLAMA3_EOS = '<|end_of_text|>';

/**
 * A miniature Llama-3-style tokenizer.json: byte-level BPE (GPT-2's byte map, `Ġ` for a space),
 * a ByteLevel decoder, and `<|begin_of_text|>` added by a TemplateProcessing post-processor.
 * Ids 0–255 are the bytes, then `pieces` (plain text, one id each, in order), then the two
 * special tokens. `idOf` maps a piece's plain text to its id.
 */
export function llama3StyleTokenizer(pieces: string[]): {
  json: Record<string, unknown>;
  idOf: (piece: string) => number;
} {
  const bytes = byteToUnicode();
  const encoder = new TextEncoder();
  const asByteLevel = (text: string) => [...encoder.encode(text)].map((b) => bytes[b]).join('');
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[bytes[b]] = b;
  const ids = new Map<string, number>();
  for (const piece of pieces) {
    const key = asByteLevel(piece);
    if (!(key in vocab)) vocab[key] = Object.keys(vocab).length;
    ids.set(piece, vocab[key]);
  }
  const bosId = Object.keys(vocab).length;
  const json = {
    version: '1.0',
    added_tokens: [specialAddedToken(bosId, LLAMA3_BOS), specialAddedToken(bosId + 1, LLAMA3_EOS)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: LLAMA3_BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { [LLAMA3_BOS]: { id: LLAMA3_BOS, ids: [bosId], tokens: [LLAMA3_BOS] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [],
    },
  };
  return {
    json,
    idOf: (piece) => {
      const id = ids.get(piece) ?? (piece.length === 1 ? vocab[asByteLevel(piece)] : undefined);
      if (id === undefined) throw new Error(`no id for piece ${JSON.stringify(piece)}`);
      return id;
    },
  };
}
