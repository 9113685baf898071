import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../../model/tokenizer.js';
import { jsonObjectGrammar } from '../../structured/grammar-nodes.js';
import { ReasoningGatedGuide } from '../../structured/reasoning-gate.js';
import { tokenGuide } from '../../structured/request-guide.js';
import { llama3StyleTokenizer } from '../model/tokenizer-fixtures.js';

/**
 * Structured output after a reasoning model's reasoning: nothing is constrained until the output
 * has written `</think>` (cut over tokens or not), and the grammar follows from the byte after it,
 * the rest of the token that ended the marker included.
 */
const PIECES = ['</think>', '</', 'thi', 'nk>', 'nk>{', 'hmm', ' ', '{', '}', '"', 'a', '":', '1', '\n'];
const { json, idOf } = llama3StyleTokenizer(PIECES);
const tokenizer = new TextTokenizer({ tokenizerJson: json });
const EOS = 2;
const allowedText = (ids: Int32Array | null) =>
  ids === null
    ? null
    : [...ids]
        .filter((id) => id !== EOS)
        .map((id) => tokenizer.decode([id], false))
        .sort();

const bytes = tokenizer.tokenBytes();
function gated(budget: number | null = null, grammar = true) {
  return new ReasoningGatedGuide({
    marker: new TextEncoder().encode('</think>'),
    bytesOf: (id) => bytes[id] ?? null,
    inner: grammar ? tokenGuide(tokenizer, jsonObjectGrammar()) : null,
    budget,
    markerTokens: [idOf('</'), idOf('thi'), idOf('nk>')],
  }).start();
}

describe('ReasoningGatedGuide', () => {
  it('constrains nothing while the reasoning runs, then the grammar from its first byte', () => {
    const cursor = gated();
    expect(cursor.allowedTokens([EOS])).toBeNull();
    for (const piece of ['hmm', ' ', '{', '</', 'thi']) {
      cursor.advance(idOf(piece));
      expect(cursor.allowedTokens([EOS]), piece).toBeNull();
    }
    cursor.advance(idOf('nk>'));
    // A JSON object may start only with whitespace or its brace.
    expect(allowedText(cursor.allowedTokens([EOS]))).toEqual(['\t', '\n', '\r', ' ', '{'].sort());
    cursor.advance(idOf('{'));
    expect(allowedText(cursor.allowedTokens([EOS]))).toContain('}');
    expect(cursor.isDead).toBe(false);
  });

  it('a token that ends the marker hands the rest of its bytes to the grammar', () => {
    for (const path of [
      ['</think>', '{'],
      ['</', 'thi', 'nk>{'],
    ]) {
      const cursor = gated();
      for (const piece of path) cursor.advance(idOf(piece));
      const next = allowedText(cursor.allowedTokens([EOS]));
      expect(next, path.join('|')).toContain('}');
      expect(next).not.toContain('{');
    }
  });

  it('a thinking budget: after that many reasoning tokens the marker is forced, then the grammar', () => {
    const cursor = gated(2);
    expect(cursor.allowedTokens([EOS])).toBeNull();
    cursor.advance(idOf('hmm'));
    expect(cursor.allowedTokens([EOS])).toBeNull();
    cursor.advance(idOf(' '));
    // Two tokens of reasoning: its end is forced, a token at a time.
    for (const piece of ['</', 'thi', 'nk>']) {
      expect(allowedText(cursor.allowedTokens([EOS]))).toEqual([piece]);
      cursor.advance(idOf(piece));
    }
    expect(allowedText(cursor.allowedTokens([EOS]))).toEqual(['\t', '\n', '\r', ' ', '{'].sort());
    // Reasoning that ends by itself within the budget is not cut; no grammar, no constraint after it.
    const early = gated(5, false);
    for (const piece of ['hmm', '</think>', 'hmm', 'hmm', 'hmm', 'hmm', 'hmm']) {
      expect(early.allowedTokens([EOS]), piece).toBeNull();
      early.advance(idOf(piece));
    }
    // A budget of 0 ends the reasoning at once.
    expect(allowedText(gated(0).allowedTokens([EOS]))).toEqual(['</']);
  });
});
