import { describe, expect, it } from 'vitest';
import { CleanUpStream, cleanUpTokenization } from '../../model/clean-up-tokenization.js';
import { IncrementalDecoder } from '../../model/incremental-decoder.js';
import { TextTokenizer } from '../../model/tokenizer.js';
import { mulberry32 } from '../../scheduler/prng.js';
import {
  LLAMA3_BOS,
  LLAMA3_EOS,
  llama2StyleTokenizerJson,
  llama3StyleTokenizer,
} from './tokenizer-fixtures.js';

/** transformers' clean_up_tokenization, transcribed as Python's str.replace (split + join), in its order. */
const HF_REPLACEMENTS: Array<[string, string]> = [
  [' .', '.'],
  [' ?', '?'],
  [' !', '!'],
  [' ,', ','],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
];
function hfCleanUp(text: string): string {
  return HF_REPLACEMENTS.reduce((s, [from, to]) => s.split(from).join(to), text);
}

/** Text pieces that make every replacement, and every near miss, likely in a random sequence. */
const TRICKY = [
  ' ',
  '  ',
  ' .',
  '.',
  ' ?',
  '!',
  ' ,',
  "'",
  " '",
  "' ",
  'n',
  ' n',
  "n't",
  "'t",
  't',
  'm',
  's',
  "'s",
  've',
  're',
  'v',
  'r',
  'e',
  ' e',
  'a',
  ' the',
  'x',
  '\n',
  ':',
  '🎉',
  'é',
  ' don',
  ' can',
];

function streamed(tokenizer: TextTokenizer, ids: number[]): { pieces: string[]; text: string } {
  const decoder = new IncrementalDecoder(tokenizer);
  const pieces = ids.map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  return { pieces, text: pieces.join('') };
}

describe('cleanUpTokenization', () => {
  it("is transformers' clean-up, replacement by replacement, in its order", () => {
    expect(cleanUpTokenization("if c == 's':")).toBe("if c =='s':");
    expect(cleanUpTokenization("I do n't know , do you ? Yes !")).toBe("I don't know, do you? Yes!");
    // " ' " runs before " 'm", and each replace scans once: both orders are visible here.
    expect(cleanUpTokenization("a  ' m")).toBe("a'm");
    expect(cleanUpTokenization("x ' ve")).toBe("x've");
    expect(cleanUpTokenization('a  .')).toBe('a .');
    const rand = mulberry32(7);
    for (let trial = 0; trial < 2000; trial++) {
      const text = Array.from(
        { length: 1 + Math.floor(rand() * 12) },
        () => TRICKY[Math.floor(rand() * TRICKY.length)],
      ).join('');
      expect(cleanUpTokenization(text)).toBe(hfCleanUp(text));
    }
  });
});

describe('CleanUpStream', () => {
  it('releases pieces that join to the clean-up of the whole text, however the text is cut', () => {
    const rand = mulberry32(11);
    for (let trial = 0; trial < 3000; trial++) {
      const parts = Array.from(
        { length: 1 + Math.floor(rand() * 10) },
        () => TRICKY[Math.floor(rand() * TRICKY.length)],
      );
      const stream = new CleanUpStream();
      const out = parts.map((p) => stream.push(p)).join('') + stream.flush();
      expect(out).toBe(hfCleanUp(parts.join('')));
    }
  });

  it('holds back only what a later piece could still change', () => {
    const stream = new CleanUpStream();
    expect(stream.push('Hello')).toBe('Hello');
    expect(stream.push(' world')).toBe(' world');
    expect(stream.push(' ')).toBe('');
    expect(stream.push("'")).toBe('');
    expect(stream.push('s')).toBe('');
    expect(stream.push(':')).toBe("'s:");
    expect(stream.flush()).toBe('');
  });
});

describe('decoding with clean_up_tokenization_spaces', () => {
  // Llama 3's own tokenizer_config.json sets clean_up_tokenization_spaces: true.
  const llama3 = llama3StyleTokenizer(['if', ' c', ' ==', " '", 's', "':", ...TRICKY]);
  const llama3Config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: LLAMA3_BOS,
    eos_token: LLAMA3_EOS,
  };

  it("gives Llama 3's `if c == 's':` completion as HF does, streamed and at once alike", () => {
    const tokenizer = new TextTokenizer({
      tokenizerJson: llama3.json,
      tokenizerConfig: { ...llama3Config, clean_up_tokenization_spaces: true },
    });
    const ids = ['if', ' c', ' ==', " '", 's', "':"].map(llama3.idOf);
    expect(tokenizer.decode(ids)).toBe("if c =='s':");
    expect(streamed(tokenizer, ids).text).toBe("if c =='s':");
  });

  it('leaves spaces alone when the flag is absent (transformers defaults it to false)', () => {
    const tokenizer = new TextTokenizer({ tokenizerJson: llama3.json, tokenizerConfig: llama3Config });
    const ids = ['if', ' c', ' ==', " '", 's', "':"].map(llama3.idOf);
    expect(tokenizer.decode(ids)).toBe("if c == 's':");
    expect(streamed(tokenizer, ids).text).toBe("if c == 's':");
  });

  it('streams exactly the one-shot decode, for byte-level and sentencepiece-style tokenizers', () => {
    const llama2 = new TextTokenizer({
      tokenizerJson: llama2StyleTokenizerJson(TRICKY.map((p) => p.replaceAll(' ', '▁'))),
      tokenizerConfig: { tokenizer_class: 'LlamaTokenizer', clean_up_tokenization_spaces: true },
    });
    const byteLevel = new TextTokenizer({
      tokenizerJson: llama3.json,
      tokenizerConfig: { ...llama3Config, clean_up_tokenization_spaces: true },
    });
    const rand = mulberry32(5);
    for (const tokenizer of [llama2, byteLevel]) {
      const vocabSize = tokenizer.vocabSize;
      for (let trial = 0; trial < 300; trial++) {
        const ids = Array.from({ length: 1 + Math.floor(rand() * 16) }, () => Math.floor(rand() * vocabSize));
        const oneShot = tokenizer.decode(ids);
        expect(oneShot).toBe(hfCleanUp(tokenizer.decodeRaw(ids)));
        expect(streamed(tokenizer, ids).text).toBe(oneShot);
      }
    }
  });
});
