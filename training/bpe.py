"""Byte-level BPE (GPT-2 / Llama-3 style), learnt here and written as a Hugging Face tokenizer.json.

Text is first split by PRE_TOKENIZE (Llama-3's pattern with ASCII letter and digit classes: Python's
`re` has no \\p{L}, and the same pattern must split identically in Python, Hugging Face's Rust
tokenizers and @huggingface/tokenizers), each piece's UTF-8 bytes are mapped to GPT-2's printable
characters, and merges are applied by rank inside each piece. Special tokens are added tokens,
matched whole before any of that.
"""

import json
import re
from collections import Counter, defaultdict

PRE_TOKENIZE = (r"'(?:[sdmtSDMT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}"
                r"| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS = '<s>', '</s>'
SPECIAL_TOKENS = [BOS, EOS, '<|system|>', '<|user|>', '<|assistant|>']
_PIECE = re.compile(PRE_TOKENIZE)
_SPECIAL = re.compile('(' + '|'.join(re.escape(t) for t in SPECIAL_TOKENS) + ')')


def bytes_to_unicode():
    """GPT-2's byte → printable character map (what the ByteLevel pre-tokenizer and decoder use)."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()


def pieces(text):
    return [''.join(BYTE_CHARS[b] for b in p.encode('utf-8')) for p in _PIECE.findall(text)]


def train_bpe(texts, vocab_size):
    """Learns vocab_size − |specials| − 256 merges from texts; ties go to the pair seen first."""
    word_counts = Counter()
    for text in texts:
        for part in _SPECIAL.split(text):
            if part and part not in SPECIAL_TOKENS:
                word_counts.update(pieces(part))
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_counts = Counter()
    where = defaultdict(set)
    for i, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    merges = []
    num_merges = vocab_size - len(SPECIAL_TOKENS) - 256
    while len(merges) < num_merges and pair_counts:
        best = max(pair_counts.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        joined = best[0] + best[1]
        for i in sorted(where.pop(best, ())):
            symbols, count = words[i], counts[i]
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] -= count
                if pair_counts[pair] <= 0:
                    del pair_counts[pair]
            merged, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == best[0] and symbols[j + 1] == best[1]:
                    merged.append(joined)
                    j += 2
                else:
                    merged.append(symbols[j])
                    j += 1
            words[i] = merged
            for pair in zip(merged, merged[1:]):
                pair_counts[pair] += count
                where[pair].add(i)
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = merges
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for b in range(256):
            self.vocab[BYTE_CHARS[b]] = len(self.vocab)
        for a, b in merges:
            self.vocab[a + b] = len(self.vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.byte_of = {c: b for b, c in BYTE_CHARS.items()}
        self._cache = {}

    @property
    def bos_id(self):
        return self.vocab[BOS]

    @property
    def eos_id(self):
        return self.vocab[EOS]

    def _bpe(self, piece):
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        symbols = list(piece)
        while len(symbols) > 1:
            ranked = [(self.ranks.get(p, 1 << 30), k) for k, p in enumerate(zip(symbols, symbols[1:]))]
            rank, k = min(ranked)
            if rank == 1 << 30:
                break
            symbols[k:k + 2] = [symbols[k] + symbols[k + 1]]
        ids = [self.vocab[s] for s in symbols]
        self._cache[piece] = ids
        return ids

    def encode(self, text):
        """Token ids of text, special tokens matched whole (no BOS added)."""
        ids = []
        for part in _SPECIAL.split(text):
            if part in SPECIAL_TOKENS:
                ids.append(self.vocab[part])
            elif part:
                for piece in pieces(part):
                    ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if token in SPECIAL_TOKENS:
                out += token.encode('utf-8')
            else:
                out += bytes(self.byte_of[c] for c in token)
        return out.decode('utf-8', errors='replace')

    def tokenizer_json(self):
        def added(i, content):
            return {'id': i, 'content': content, 'single_word': False, 'lstrip': False,
                    'rstrip': False, 'normalized': False, 'special': True}

        bos = {'SpecialToken': {'id': BOS, 'type_id': 0}}
        return {
            'version': '1.0',
            'truncation': None,
            'padding': None,
            'added_tokens': [added(i, t) for i, t in enumerate(SPECIAL_TOKENS)],
            'normalizer': None,
            'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
                {'type': 'Split', 'pattern': {'Regex': PRE_TOKENIZE}, 'behavior': 'Isolated', 'invert': False},
                {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False},
            ]},
            'post_processor': {
                'type': 'TemplateProcessing',
                'single': [bos, {'Sequence': {'id': 'A', 'type_id': 0}}],
                'pair': [bos, {'Sequence': {'id': 'A', 'type_id': 0}},
                         {'SpecialToken': {'id': BOS, 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
                'special_tokens': {BOS: {'id': BOS, 'ids': [self.bos_id], 'tokens': [BOS]}},
            },
            'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False},
            'model': {
                'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                'vocab': self.vocab,
                'merges': [f'{a} {b}' for a, b in self.merges],
            },
        }


# Llama-2-like turns; the template writes BOS itself, so chat prompts are tokenized without one.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    # Tools (OpenAI's `tools`) as a system turn of their own, one JSON definition a line.
    "{% if tools %}"
    "{{ '<|system|>\\nTools, called as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>:\\n' }}"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}"
    "{{ eos_token + '\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('Unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}"
    "{{ '<tool_call>' + (call['function'] | tojson) + '</tool_call>' }}"
    "{% endfor %}{% endif %}"
    "{{ eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def render_chat(messages, add_generation_prompt):
    """CHAT_TEMPLATE rendered in Python, for the chat-shaped training documents."""
    text = BOS
    for m in messages:
        text += f"<|{m['role']}|>\n{m['content']}{EOS}\n"
    if add_generation_prompt:
        text += '<|assistant|>\n'
    return text


def tokenizer_config_json():
    return {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'bos_token': BOS,
        'eos_token': EOS,
        'add_bos_token': True,
        'add_eos_token': False,
        'clean_up_tokenization_spaces': False,
        'model_max_length': 1024,
        'chat_template': CHAT_TEMPLATE,
    }


def write_json(path, value):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(value, f, ensure_ascii=False, indent=1 if 'tokenizer.json' not in path else None)
        f.write('\n')
