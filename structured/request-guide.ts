import type { Grammar } from './grammar-nodes.js';
import { TokenGuide, VocabularyTrie } from './token-guide.js';

/** A tokenizer as structured output needs it: the bytes each token adds (null: a special token). */
export interface TokenByteSource {
  tokenBytes(): ReadonlyArray<Uint8Array | null>;
}

/** One vocabulary trie per tokenizer, built on the first structured request (tens of ms at 32k tokens). */
const tries = new WeakMap<TokenByteSource, VocabularyTrie>();

/** A request's grammar over `tokenizer`'s vocabulary. */
export function tokenGuide(tokenizer: TokenByteSource, grammar: Grammar): TokenGuide {
  let trie = tries.get(tokenizer);
  if (!trie) {
    trie = new VocabularyTrie(tokenizer.tokenBytes());
    tries.set(tokenizer, trie);
  }
  return new TokenGuide(grammar, trie);
}
