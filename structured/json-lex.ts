import { utf8Lead } from './utf8-chars.js';

/**
 * JSON's lexical pieces as the byte matcher (byte-matcher.ts) reads them a byte at a time: a
 * string's body (escapes, UTF-8 checked, its length in characters) and a number's phases.
 */

export const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
export const QUOTE = 0x22;

/**
 * `cont`: continuation bytes still due in a UTF-8 character, the next within [lo, hi]; `cp`: the
 * code point of the character being read (or last read), its bits so far.
 */
export type StringLex = {
  readonly esc: boolean;
  readonly hex: number;
  readonly cont: number;
  readonly lo: number;
  readonly hi: number;
  readonly len: number;
  readonly cp: number;
};
export const LEX_START: StringLex = { esc: false, hex: 0, cont: 0, lo: 0x80, hi: 0xbf, len: 0, cp: 0 };

/** The characters JSON's one-letter escapes stand for. */
const ESCAPED: Readonly<Record<number, number>> = {
  34: 0x22,
  92: 0x5c,
  47: 0x2f,
  98: 0x08,
  102: 0x0c,
  110: 0x0a,
  114: 0x0d,
  116: 0x09,
};

export type NumberPhase = 'sign' | 'zero' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp';
export const NUMBER_ENDS: ReadonlySet<NumberPhase> = new Set(['zero', 'int', 'frac', 'exp']);

export function lexKey(l: StringLex, min: number, max: number): string {
  const counted = min > 0 || max !== Infinity;
  return `${l.esc ? 'e' : ''}${l.hex}${l.cont}${l.lo}-${l.hi}${counted ? `:${Math.min(l.len, max === Infinity ? min : l.len)}` : ''}`;
}

/**
 * One byte of a JSON string's body (after its opening quote): the lexer after it, 'close' for
 * the closing quote, or null where the byte may not come (a control character, a bad escape,
 * broken UTF-8, a character past `maxLength`). Lengths count characters (code points).
 */
export function lexString(l: StringLex, b: number, maxLength: number): StringLex | 'close' | null {
  if (l.cont > 0)
    return b >= l.lo && b <= l.hi
      ? { ...l, cont: l.cont - 1, lo: 0x80, hi: 0xbf, cp: (l.cp << 6) | (b & 0x3f) }
      : null;
  if (l.hex > 0) {
    if (!isHex(b)) return null;
    return { ...l, hex: l.hex - 1, len: l.hex === 1 ? l.len + 1 : l.len, cp: l.cp * 16 + hexValue(b) };
  }
  if (l.esc) {
    if (b === 0x75) return { ...l, esc: false, hex: 4, cp: 0 };
    const cp = ESCAPED[b];
    return cp === undefined ? null : { ...l, esc: false, len: l.len + 1, cp };
  }
  if (b === QUOTE) return 'close';
  if (b < 0x20 || l.len + 1 > maxLength) return null;
  if (b === 0x5c) return { ...l, esc: true };
  if (b < 0x80) return { ...l, len: l.len + 1, cp: b };
  const lead = utf8Lead(b);
  return lead
    ? { ...l, ...lead, len: l.len + 1, cp: b & (lead.cont === 1 ? 0x1f : lead.cont === 2 ? 0x0f : 0x07) }
    : null;
}

function hexValue(b: number): number {
  return isDigit(b) ? b - 0x30 : (b | 0x20) - 0x61 + 10;
}

export function numberStart(b: number): NumberPhase | null {
  if (b === 0x2d) return 'sign';
  if (b === 0x30) return 'zero';
  return isDigit(b) ? 'int' : null;
}

export function numberStep(p: NumberPhase, b: number, integer: boolean): NumberPhase | null {
  const digit = isDigit(b);
  const e = (b === 0x65 || b === 0x45) && !integer;
  const dot = b === 0x2e && !integer;
  switch (p) {
    case 'sign':
      return b === 0x30 ? 'zero' : digit ? 'int' : null;
    case 'zero':
      return dot ? 'dot' : e ? 'e' : null;
    case 'int':
      return digit ? 'int' : dot ? 'dot' : e ? 'e' : null;
    case 'dot':
      return digit ? 'frac' : null;
    case 'frac':
      return digit ? 'frac' : e ? 'e' : null;
    case 'e':
      return b === 0x2b || b === 0x2d ? 'esign' : digit ? 'exp' : null;
    case 'esign':
    case 'exp':
      return digit ? 'exp' : null;
  }
}
