/**
 * The vocabulary as structural tags' token-level formats name it (xgrammar's TokenizerInfo): a
 * token given as a string is the first id whose decoded text is exactly that string (the bytes a
 * token adds, or a special token's own text such as "<|eot_id|>"), and "any token but these" means
 * every id that is a token of the tokenizer (ids past its vocabulary, padding of the model's
 * embedding, are none).
 */
export class TokenVocabulary {
  /** Ids of every token, ascending. */
  readonly ids: Int32Array;
  /** Each token's text, its bytes as one char each, to the first id with it. */
  private readonly byText = new Map<string, number>();

  /**
   * `tokenBytes`: the bytes each id adds (null: a special token); `pieces`: each id's vocabulary
   * entry ('' where the id is none), which is a special token's text.
   */
  constructor(tokenBytes: ReadonlyArray<Uint8Array | null>, pieces: readonly string[]) {
    const ids: number[] = [];
    const utf8 = new TextEncoder();
    tokenBytes.forEach((bytes, id) => {
      const text = bytes ?? (pieces[id] ? utf8.encode(pieces[id]) : null);
      if (!text) return;
      ids.push(id);
      const key = byteKey(text);
      if (!this.byText.has(key)) this.byText.set(key, id);
    });
    this.ids = Int32Array.from(ids);
  }

  /** The first token whose text is `text`; undefined when none is. */
  idOf(text: string): number | undefined {
    return this.byText.get(byteKey(new TextEncoder().encode(text)));
  }

  /** Whether `id` is a token of the vocabulary. */
  has(id: number): boolean {
    let lo = 0;
    let hi = this.ids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.ids[mid] === id) return true;
      if (this.ids[mid] < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  /** The tokens but `excluded` (each list's ids), ascending. */
  allBut(excluded: readonly number[]): Int32Array {
    if (excluded.length === 0) return this.ids;
    const out = new Set(excluded);
    return this.ids.filter((id) => !out.has(id));
  }
}

function byteKey(bytes: Uint8Array): string {
  let key = '';
  for (let i = 0; i < bytes.length; i += 4096)
    key += String.fromCharCode(...bytes.subarray(i, Math.min(i + 4096, bytes.length)));
  return key;
}
