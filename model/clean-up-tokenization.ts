/**
 * Hugging Face's `clean_up_tokenization` (applied by `decode` when tokenizer_config.json sets
 * `clean_up_tokenization_spaces: true`): ten plain replacements, in this order, each over the
 * whole text, left to right without overlap (Python's `str.replace`, JS's global replace).
 */
export function cleanUpTokenization(text: string): string {
  return text
    .replace(/ \./g, '.')
    .replace(/ \?/g, '?')
    .replace(/ !/g, '!')
    .replace(/ ,/g, ',')
    .replace(/ ' /g, "'")
    .replace(/ n't/g, "n't")
    .replace(/ 'm/g, "'m")
    .replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve")
    .replace(/ 're/g, "'re");
}

/**
 * Whether text[i] can be part of no match of any replacement above, whatever comes later. Every
 * pattern starts with a space and the replacements only ever delete spaces, so a non-space
 * character's neighbours to the left stay fixed up to the nearest space; what it may follow in a
 * pattern ("'" before m/s/v/r/t, " " before . ? ! , ' n, "'v"/"'r" before e) decides it.
 * Cutting the text right after such a character splits it into two parts that clean up
 * independently: no match can reach across a character no match can contain.
 */
function isInert(text: string, i: number): boolean {
  const c = text[i];
  const p1 = text[i - 1];
  const p2 = text[i - 2];
  const code = c.charCodeAt(0);
  // A high surrogate waits for its low half, so a streamed piece never splits a character.
  if (code >= 0xd800 && code <= 0xdbff) return false;
  switch (c) {
    case ' ':
      return false;
    case '.':
    case '?':
    case '!':
    case ',':
    case 'n':
      return p1 !== ' ';
    case "'":
      return p1 !== ' ' && !(p1 === 'n' && p2 === ' ');
    case 't':
    case 'm':
    case 's':
    case 'v':
    case 'r':
      return p1 !== "'" && p1 !== ' ';
    case 'e':
      return p1 !== ' ' && !((p1 === 'v' || p1 === 'r') && (p2 === "'" || p2 === ' '));
    default:
      return true;
  }
}

/** How many raw characters before the held text the inertness check looks at. */
const CONTEXT_CHARS = 2;

/**
 * Applies cleanUpTokenization to text that arrives in pieces, so that the pieces it returns join
 * to exactly `cleanUpTokenization(all the raw text)`: it holds back the tail after the last
 * character no replacement can touch (typically a trailing space or a word that could still
 * become " 's" or " n't") until a later piece settles it, or until flush.
 */
export class CleanUpStream {
  private held = '';
  /** The last raw characters already released, which decide whether the first held ones are inert. */
  private context = '';

  push(raw: string): string {
    this.held += raw;
    const text = this.context + this.held;
    let cut = -1;
    for (let i = text.length - 1; i >= this.context.length; i--) {
      if (isInert(text, i)) {
        cut = i - this.context.length;
        break;
      }
    }
    if (cut < 0) return '';
    const ready = this.held.slice(0, cut + 1);
    this.context = (this.context + ready).slice(-CONTEXT_CHARS);
    this.held = this.held.slice(cut + 1);
    return cleanUpTokenization(ready);
  }

  /** Releases everything held (the text has ended); then starts over. */
  flush(): string {
    const out = cleanUpTokenization(this.held);
    this.held = '';
    this.context = '';
    return out;
  }
}
