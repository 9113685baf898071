/**
 * Where each token of an encoding lies in the text it was encoded from, in characters (Unicode
 * code points), as Hugging Face tokenizers' `encode_char_offsets` gives it (LoRAX's /tokenize
 * answers with these). The JS tokenizer keeps no offsets, so they are found again by walking the
 * text's UTF-8 with the bytes each token adds (model/token-bytes.ts):
 *  - a token whose bytes come next in the text spans them; one that ends inside a character (a
 *    byte-level or byte-fallback piece of a multi-byte character) spans that whole character, as
 *    HF aligns every byte of a character to it;
 *  - a leading space the text does not have is the normalizer's (SentencePiece's dummy prefix,
 *    Llama 2's Prepend "▁"), aligned, as HF aligns it, to the character that follows;
 *  - a special token the text spells at that point spans its spelling; one the post-processor
 *    added (BOS) spans nothing, (0, 0).
 * Null where a token's bytes are nowhere next (a normalizer that rewrote the text, NFKC's
 * ligatures or lowercasing): no offsets can be given honestly then.
 */
export function tokenCharOffsets(
  text: string,
  ids: readonly number[],
  tokenBytes: ReadonlyArray<Uint8Array | null>,
  specialText: (id: number) => string | undefined,
): Array<[number, number]> | null {
  const utf8 = new TextEncoder();
  const bytes = utf8.encode(text);
  // charOf[b]: the character that byte b belongs to; charOf[bytes.length]: the character count.
  const charOf = new Int32Array(bytes.length + 1);
  let chars = 0;
  for (let b = 0; b < bytes.length; b++) {
    if ((bytes[b] & 0xc0) !== 0x80 && b > 0) chars++;
    charOf[b] = chars;
  }
  charOf[bytes.length] = bytes.length === 0 ? 0 : chars + 1;
  const matchesAt = (piece: Uint8Array, at: number, from = 0): boolean => {
    if (at + piece.length - from > bytes.length) return false;
    for (let i = from; i < piece.length; i++) if (bytes[at + i - from] !== piece[i]) return false;
    return true;
  };
  const span = (start: number, end: number): [number, number] =>
    end > start ? [charOf[start], charOf[end - 1] + 1] : [charOf[start], charOf[start]];
  const out: Array<[number, number]> = [];
  let at = 0;
  for (const id of ids) {
    const piece = tokenBytes[id] ?? null;
    if (piece === null) {
      const spelled = specialText(id);
      const spelling = spelled === undefined ? null : utf8.encode(spelled);
      if (spelling && spelling.length > 0 && matchesAt(spelling, at)) {
        out.push(span(at, at + spelling.length));
        at += spelling.length;
      } else out.push([0, 0]);
      continue;
    }
    if (matchesAt(piece, at)) {
      out.push(span(at, at + piece.length));
      at += piece.length;
    } else if (piece.length > 0 && piece[0] === 0x20 && matchesAt(piece, at, 1)) {
      // The normalizer's space: aligned to the next character; alone, it spans that character.
      const end = at + piece.length - 1;
      out.push(end > at ? span(at, end) : at < bytes.length ? span(at, at + 1) : span(at, at));
      at = end;
    } else return null;
  }
  return out;
}
