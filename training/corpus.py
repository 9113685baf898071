"""The training text: public-domain books that Debian packages ship, as documents.

Each sub-corpus is a list of documents (a Bible chapter, one fortune, one dictionary entry).
A fixed share of each, picked by a hash of the document's text (so the split does not depend on
the order files are read in), is held out: neither the base model nor an adapter trains on it,
and the held-out losses in the training report and Loom's tests are measured on it.
"""

import gzip
import hashlib
import os
import re
import subprocess

FORTUNES_DIR = '/usr/share/games/fortunes'
DICTD_DIR = '/usr/share/dictd'
# fortune-mod's files with plain sayings and quotations; the ones about politics, drugs, ethnic
# jokes and ASCII art stay out of a model whose output is shown to newcomers.
FORTUNE_FILES = [
    'computers', 'education', 'food', 'fortunes', 'humorists', 'kids', 'law', 'literature',
    'love', 'magic', 'medicine', 'miscellaneous', 'people', 'pets', 'platitudes', 'riddles',
    'science', 'wisdom', 'work',
]
HELD_OUT_PERCENT = 3


class CorpusMissing(Exception):
    pass


def _need(path, package):
    if not os.path.exists(path):
        raise CorpusMissing(f'{path} is missing: apt-get install {package}')


def unwrap(text):
    """Joins lines wrapped at 80 columns into paragraphs (one per line), spaces collapsed."""
    paragraphs = re.split(r'\n\s*\n', text.strip())
    return '\n'.join(' '.join(p.split()) for p in paragraphs if p.strip())


def kjv_chapters():
    """The King James Bible (bible-kjv), one document per chapter: its name, then one verse a line."""
    _need('/usr/bin/bible', 'bible-kjv bible-kjv-text')
    out = subprocess.run(['/usr/bin/bible', '-l', '100000', 'gen1:1-rev22:21'],
                         check=True, capture_output=True, text=True).stdout
    chapters = []
    title, verses = None, []
    for line in out.splitlines():
        verse = re.match(r'^\s*(\d+)\s+(.*)$', line)
        if verse and title is not None:
            verses.append(verse.group(2).strip())
        elif line.strip() and not line.startswith(' '):
            if title is not None and verses:
                chapters.append(title + '\n' + '\n'.join(verses))
            title, verses = line.strip(), []
        elif line.strip() and verses:
            verses[-1] += ' ' + line.strip()
    if title is not None and verses:
        chapters.append(title + '\n' + '\n'.join(verses))
    return chapters


def fortunes():
    """fortune-mod's sayings (fortunes, fortunes-min), one document per fortune."""
    docs = []
    for name in FORTUNE_FILES:
        path = os.path.join(FORTUNES_DIR, name)
        _need(path, 'fortunes fortunes-min')
        with open(path, encoding='utf-8', errors='replace') as f:
            for piece in re.split(r'\n%\n', f.read()):
                piece = piece.strip('\n')
                if piece.strip():
                    docs.append(piece.rstrip())
    return docs


_B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def _dictd_number(text):
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def dictd_entries(name, package):
    """A dictd dictionary's entries in index order, without its 00-database-* records."""
    index_path = os.path.join(DICTD_DIR, f'{name}.index')
    _need(index_path, package)
    with gzip.open(os.path.join(DICTD_DIR, f'{name}.dict.dz'), 'rb') as f:
        data = f.read()
    entries = []
    with open(index_path, encoding='utf-8') as f:
        for line in f:
            word, offset, length = line.rstrip('\n').split('\t')[:3]
            if word.startswith('00-database') or word.startswith('00database'):
                continue
            start, size = _dictd_number(offset), _dictd_number(length)
            entries.append(data[start:start + size].decode('utf-8', errors='replace'))
    return entries


def jargon():
    """The Jargon File 4.4.7 (dict-jargon): headword, pronunciation and part of speech, then the text."""
    docs = []
    for entry in dictd_entries('jargon', 'dict-jargon'):
        head, _, body = entry.strip('\n').partition('\n')
        lead, _, rest = body.partition('\n\n')
        text = unwrap(rest)
        if text:
            docs.append(f'{head.strip()} {" ".join(lead.split())}\n{text}'.replace(' \n', '\n'))
    return docs


def devils_dictionary():
    """Ambrose Bierce's The Devil's Dictionary (dict-devil), one document per entry."""
    return [unwrap(e) for e in dictd_entries('devil', 'dict-devil') if e.strip()]


def load_corpora():
    """Sub-corpus name → documents. The names are the demo adapters' names."""
    corpora = {
        'bible': kjv_chapters(),
        'fortunes': fortunes(),
        'jargon': jargon(),
        'devil': devils_dictionary(),
    }
    # dictd entries can repeat (one per headword spelling); a held-out entry must not also train.
    return {name: list(dict.fromkeys(docs)) for name, docs in corpora.items()}


def is_held_out(doc):
    digest = hashlib.sha256(doc.encode('utf-8')).digest()
    return int.from_bytes(digest[:4], 'big') % 100 < HELD_OUT_PERCENT


def split_held_out(docs):
    train = [d for d in docs if not is_held_out(d)]
    held = [d for d in docs if is_held_out(d)]
    return train, held
