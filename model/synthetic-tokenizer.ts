/**
 * A byte-level tokenizer in Hugging Face `tokenizer.json` form for synthetic models.
 *
 * Ids follow Llama-2's layout: 0 `<unk>`, 1 `<s>`, 2 `</s>`, then the 256 bytes (id 3 + byte).
 * Ids past those are filler "syllable words" (e.g. `ba`, `Ġkome`) that encoding never produces
 * (there are no merges) but that decode to readable text, so a synthetic model whose vocabulary is
 * bigger than 259 still decodes every id it can emit.
 */

export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const FIRST_BYTE_ID = 3;
export const BYTE_TOKENIZER_SIZE = FIRST_BYTE_ID + 256;

export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';
export const UNK_TOKEN = '<unk>';

/** GPT-2's byte → printable character map, which the ByteLevel pre-tokenizer and decoder use. */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) map[b] = String.fromCodePoint(b);
    else map[b] = String.fromCodePoint(256 + extra++);
  }
  return map;
}

const CONSONANTS = 'bdfghklmnprstvz';
const VOWELS = 'aeiou';
const SYLLABLES = [...CONSONANTS].flatMap((c) => [...VOWELS].map((v) => c + v));

/** The k-th filler word: bijective base-|SYLLABLES| numeral, every other one with a leading space. */
function fillerToken(k: number, space: string): string {
  let m = (k >> 1) + 1;
  let word = '';
  while (m > 0) {
    m -= 1;
    word = SYLLABLES[m % SYLLABLES.length] + word;
    m = Math.floor(m / SYLLABLES.length);
  }
  return k % 2 === 1 ? space + word : word;
}

/** True for ids whose text reads well: printable ASCII bytes and filler words. */
export function isReadableTokenId(id: number): boolean {
  if (id >= BYTE_TOKENIZER_SIZE) return true;
  const byte = id - FIRST_BYTE_ID;
  return byte >= 0x20 && byte <= 0x7e;
}

/** One `added_tokens` entry of a tokenizer.json: a special token, matched whole, never normalized. */
export function specialAddedToken(id: number, content: string) {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/** tokenizer.json for a byte-level vocabulary of `vocabSize` ids (at least BYTE_TOKENIZER_SIZE). */
export function byteTokenizerJson(vocabSize: number): Record<string, unknown> {
  if (vocabSize < BYTE_TOKENIZER_SIZE) {
    throw new Error(`a byte-level tokenizer needs at least ${BYTE_TOKENIZER_SIZE} ids, got ${vocabSize}`);
  }
  const bytes = byteToUnicode();
  const vocab: Record<string, number> = { [UNK_TOKEN]: UNK_ID, [BOS_TOKEN]: BOS_ID, [EOS_TOKEN]: EOS_ID };
  for (let b = 0; b < 256; b++) vocab[bytes[b]] = FIRST_BYTE_ID + b;
  for (let id = BYTE_TOKENIZER_SIZE; id < vocabSize; id++) {
    vocab[fillerToken(id - BYTE_TOKENIZER_SIZE, bytes[0x20])] = id;
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      specialAddedToken(UNK_ID, UNK_TOKEN),
      specialAddedToken(BOS_ID, BOS_TOKEN),
      specialAddedToken(EOS_ID, EOS_TOKEN),
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BOS_TOKEN, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [BOS_ID], tokens: [BOS_TOKEN] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** A Llama-2-like chat template; it writes the BOS text itself, as Llama's templates do. */
export const SYNTHETIC_CHAT_TEMPLATE = [
  '{{ bos_token }}',
  // Tools (OpenAI's `tools`) as a system turn of their own, one JSON definition a line.
  '{% if tools %}',
  '{{ \'<|system|>\\nYou may call these functions, each call written as <tool_call>{"name": ..., "arguments": ...}</tool_call>:\\n\' }}',
  "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}",
  "{{ eos_token + '\\n' }}",
  '{% endif %}',
  '{% for message in messages %}',
  "{% if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}",
  "{{ raise_exception('Unknown role: ' + message['role']) }}",
  '{% endif %}',
  "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}",
  "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}",
  "{{ '<tool_call>' + (call['function'] | tojson) + '</tool_call>' }}",
  '{% endfor %}{% endif %}',
  "{{ eos_token + '\\n' }}",
  '{% endfor %}',
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
].join('');

export function byteTokenizerConfigJson(): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    unk_token: UNK_TOKEN,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1_000_000,
    chat_template: SYNTHETIC_CHAT_TEMPLATE,
  };
}
