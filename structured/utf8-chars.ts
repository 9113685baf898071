import type { LinearRegex } from '../model/linear-regex.js';

/**
 * Reading the output's UTF-8 a byte at a time, for the matcher's character-level frames (a regex
 * root, a `pattern` string, a grammar's character classes): a character in progress, the code
 * points it can still become, and whether a regex can read one of them next.
 */

/**
 * A UTF-8 lead byte's character: how many continuation bytes follow, and the range of the first
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF); null: not a lead byte.
 */
export function utf8Lead(b: number): { cont: number; lo: number; hi: number } | null {
  if (b >= 0xc2 && b <= 0xdf) return { cont: 1, lo: 0x80, hi: 0xbf };
  if (b === 0xe0) return { cont: 2, lo: 0xa0, hi: 0xbf };
  if (b === 0xed) return { cont: 2, lo: 0x80, hi: 0x9f };
  if (b >= 0xe1 && b <= 0xef) return { cont: 2, lo: 0x80, hi: 0xbf };
  if (b === 0xf0) return { cont: 3, lo: 0x90, hi: 0xbf };
  if (b >= 0xf1 && b <= 0xf3) return { cont: 3, lo: 0x80, hi: 0xbf };
  if (b === 0xf4) return { cont: 3, lo: 0x80, hi: 0x8f };
  return null;
}

/** A UTF-8 character being read: continuation bytes still due, the next one's range, the bits so far. */
export interface Utf8Char {
  cont: number;
  lo: number;
  hi: number;
  cp: number;
}

/** The character after byte `b`; null where `b` breaks UTF-8 (RFC 3629). */
export function utf8Step(c: Utf8Char, b: number): Utf8Char | null {
  if (c.cont > 0) {
    if (b < c.lo || b > c.hi) return null;
    return { cont: c.cont - 1, lo: 0x80, hi: 0xbf, cp: (c.cp << 6) | (b & 0x3f) };
  }
  if (b < 0x80) return { cont: 0, lo: 0, hi: 0, cp: b };
  const lead = utf8Lead(b);
  if (!lead) return null;
  return { ...lead, cp: b & (lead.cont === 1 ? 0x1f : lead.cont === 2 ? 0x0f : 0x07) };
}

/** The first and last code points a character in progress can still become. */
export function partialRange(c: Utf8Char): [number, number] {
  const rest = 6 * (c.cont - 1);
  const first = ((c.cp << 6) | (c.lo & 0x3f)) * 2 ** rest;
  return [first, ((c.cp << 6) | (c.hi & 0x3f)) * 2 ** rest + (2 ** rest - 1)];
}

/**
 * Whether some code point in [first, last] can be read next from `states`: ranges of at most
 * 4,096 are tried one by one. A 4-byte character's lead alone spans 2^18; it is taken where a
 * probe in its range (each plane's first character, the emoji blocks) can be read, and its next
 * byte, 4,096 characters, is then checked exactly. So a pattern that reads only other astral
 * characters cannot start them from a lone lead-byte token (never the other way round: an
 * output is never left with a character the pattern cannot read).
 */
export function regexMayRead(
  regex: LinearRegex,
  states: readonly number[],
  first: number,
  last: number,
): boolean {
  const readable = (cp: number) => regex.streamStep(states, String.fromCodePoint(cp)).length > 0;
  if (last - first < 4096) {
    for (let cp = first; cp <= last; cp++) if (readable(cp)) return true;
    return false;
  }
  return ASTRAL_PROBES.some((cp) => cp >= first && cp <= last && readable(cp));
}

const ASTRAL_PROBES = [
  ...Array.from({ length: 16 }, (_, plane) => (plane + 1) * 0x10000),
  0x1f300,
  0x1f600,
  0x1f900,
];
