import { byteToUnicode } from './synthetic-tokenizer.js';

/** The tokenizer's decoder is one whose pieces cannot be mapped to bytes. */
export class UnsupportedTokenizerError extends Error {}

/**
 * The bytes each vocabulary entry adds to the output text, which a grammar over bytes needs to
 * tell which tokens may come next (structured output). Read from tokenizer.json, by the decoder
 * the tokenizer declares:
 *   - ByteLevel (GPT-2, Llama 3): each character of a piece stands for one byte;
 *   - SentencePiece-style (Llama 2: Replace "▁" → " " with ByteFallback, or Metaspace): "▁" is a
 *     space, "<0xNN>" is byte NN, the rest is the piece's UTF-8.
 * Added tokens that are not special add their content. Special tokens add nothing a grammar may
 * use: their entry is null (EOS is allowed by the grammar's end, not by its bytes).
 * A decoder that strips the text's first space (Llama 2's Strip) is not modelled: grammars that
 * allow whitespace before a value accept the space either way.
 */
export function tokenByteStrings(
  tokenizerJson: Record<string, unknown>,
  vocab: ReadonlyMap<string, number>,
  vocabSize: number,
): Array<Uint8Array | null> {
  const decode = pieceDecoder(tokenizerJson.decoder);
  const added = new Map<number, { content: string; special: boolean }>();
  for (const t of (tokenizerJson.added_tokens ?? []) as Array<Record<string, unknown>>)
    added.set(Number(t.id), { content: String(t.content), special: t.special === true });
  const out = new Array<Uint8Array | null>(vocabSize).fill(null);
  const utf8 = new TextEncoder();
  for (const [piece, id] of vocab) {
    if (id < 0 || id >= vocabSize) continue;
    const a = added.get(id);
    if (a) out[id] = a.special ? null : utf8.encode(a.content);
    else out[id] = decode(piece);
  }
  return out;
}

function pieceDecoder(decoder: unknown): (piece: string) => Uint8Array {
  const d = (decoder ?? {}) as {
    type?: string;
    decoders?: Array<Record<string, unknown>>;
    replacement?: string;
  };
  if (d.type === 'ByteLevel') {
    const toByte = new Map(byteToUnicode().map((ch, b) => [ch, b]));
    return (piece) => {
      const bytes: number[] = [];
      for (const ch of piece) {
        const b = toByte.get(ch);
        if (b === undefined) return new TextEncoder().encode(piece); // not a byte-level piece
        bytes.push(b);
      }
      return Uint8Array.from(bytes);
    };
  }
  const parts = d.type === 'Sequence' ? (d.decoders ?? []) : [d as Record<string, unknown>];
  const metaspace = parts.find((p) => p.type === 'Metaspace');
  const replace = parts.find(
    (p) =>
      p.type === 'Replace' &&
      (p.pattern as { String?: string } | undefined)?.String === '▁' &&
      p.content === ' ',
  );
  if (metaspace || replace) {
    const marker = (metaspace?.replacement as string | undefined) ?? '▁';
    const byteFallback = parts.some((p) => p.type === 'ByteFallback');
    const utf8 = new TextEncoder();
    return (piece) => {
      const m = byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
      if (m) return Uint8Array.of(Number.parseInt(m[1], 16));
      return utf8.encode(piece.replaceAll(marker, ' '));
    };
  }
  throw new UnsupportedTokenizerError(
    `structured output needs a ByteLevel or SentencePiece-style tokenizer decoder; this tokenizer's decoder is ${JSON.stringify(d.type ?? null)}`,
  );
}
