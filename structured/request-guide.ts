import type { Grammar } from './grammar-nodes.js';
import { TokenGuide, VocabularyTrie } from './token-guide.js';
import { TokenVocabulary } from './token-vocabulary.js';

/** A tokenizer as structured output needs it. */
export interface TokenByteSource {
  /** The bytes each token adds to the text (null: a special token). */
  tokenBytes(): ReadonlyArray<Uint8Array | null>;
  /** Each id's vocabulary entry ('' where none): the text of a special token, which token-level formats name. */
  idsToTokens(ids: readonly number[]): string[];
}

/** One vocabulary trie per tokenizer, built on the first structured request (tens of ms at 32k tokens). */
const tries = new WeakMap<TokenByteSource, VocabularyTrie>();
const vocabularies = new WeakMap<TokenByteSource, TokenVocabulary>();

/** The tokenizer's tokens by id and text, as structural tags' token-level formats name them; one per tokenizer. */
export function tokenVocabulary(tokenizer: TokenByteSource): TokenVocabulary {
  let vocabulary = vocabularies.get(tokenizer);
  if (!vocabulary) {
    const bytes = tokenizer.tokenBytes();
    vocabulary = new TokenVocabulary(bytes, tokenizer.idsToTokens(Array.from(bytes.keys())));
    vocabularies.set(tokenizer, vocabulary);
  }
  return vocabulary;
}

/** A request's grammar over `tokenizer`'s vocabulary. */
export function tokenGuide(tokenizer: TokenByteSource, grammar: Grammar): TokenGuide {
  let trie = tries.get(tokenizer);
  if (!trie) {
    trie = new VocabularyTrie(tokenizer.tokenBytes());
    tries.set(tokenizer, trie);
  }
  return new TokenGuide(grammar, trie, () => tokenVocabulary(tokenizer));
}
