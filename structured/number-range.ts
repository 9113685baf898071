/**
 * JSON Schema's numeric constraints (minimum, maximum, exclusiveMinimum, exclusiveMaximum,
 * multipleOf) as the byte matcher follows them: while a number is being written, whether its text
 * so far can still end on an allowed value, so a model is never led into a number it cannot
 * finish. Arithmetic is exact (decimals as BigInt mantissas), since a bound like 0.1 or
 * 9007199254740993 is not a double, and 0.3 is a multiple of 0.1 only in decimal. A constrained
 * number is written without an exponent (JSON allows both; every allowed value has a plain form),
 * so its text's reach is a union of intervals that its digits alone decide: the text can still
 * end well where one of them holds an allowed value (inside the bounds and, with multipleOf, a
 * multiple of it).
 */

/** n × 10^−scale, exactly. */
interface Decimal {
  readonly n: bigint;
  readonly scale: number;
}

/** One end of a range; null where that side is unbounded. */
interface End {
  readonly at: Decimal;
  readonly closed: boolean;
}

/**
 * A constrained number node's values. For integers both ends are closed, on integers, and `step`
 * is the integer whose multiples are the integers that are multiples of multipleOf.
 */
export interface NumberRange {
  readonly integer: boolean;
  readonly min: End | null;
  readonly max: End | null;
  /** multipleOf (> 0), or null. */
  readonly step: Decimal | null;
}

/** A number as JSON (or JS's String) writes it, exponent allowed, as an exact decimal. */
export function decimalOf(text: string): Decimal {
  const m = /^(-?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) throw new Error(`not a number: ${text}`);
  const frac = m[3] ?? '';
  let n = BigInt(m[2] + frac);
  let scale = frac.length - Number(m[4] ?? 0);
  if (scale < 0) {
    n *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { n: m[1] === '-' ? -n : n, scale };
}

function align(a: Decimal, scale: number): bigint {
  return a.n * 10n ** BigInt(scale - a.scale);
}

function compare(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = align(a, scale);
  const y = align(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

const integer = (n: bigint): Decimal => ({ n, scale: 0 });

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** ⌈a / k⌉ for k > 0 (BigInt division truncates toward zero). */
function ceilDiv(a: bigint, k: bigint): bigint {
  const q = a / k;
  return a > 0n && q * k !== a ? q + 1n : q;
}

/** ⌊a⌋ and ⌈a⌉ as integers. */
function floorOf(a: Decimal): bigint {
  const d = 10n ** BigInt(a.scale);
  const q = a.n / d;
  return a.n < 0n && q * d !== a.n ? q - 1n : q;
}
function ceilOf(a: Decimal): bigint {
  return -floorOf({ n: -a.n, scale: a.scale });
}

/**
 * The values a schema's bounds and multipleOf allow (values from JSON.parse, so finite doubles
 * written back exactly by String), or null when it has none of them; `integer`: its ends become
 * the nearest integers inside. Throws a RangeError when no value of the type is allowed.
 */
export function numberRange(
  integerType: boolean,
  bounds: {
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: number;
    exclusiveMaximum?: number;
    multipleOf?: number;
  },
): NumberRange | null {
  const end = (
    inclusive: number | undefined,
    exclusive: number | undefined,
    pickMax: boolean,
  ): End | null => {
    const ends: End[] = [];
    if (inclusive !== undefined) ends.push({ at: decimalOf(String(inclusive)), closed: true });
    if (exclusive !== undefined) ends.push({ at: decimalOf(String(exclusive)), closed: false });
    if (ends.length === 0) return null;
    // The tighter end: the larger minimum, the smaller maximum; at a tie the open one.
    return ends.reduce((a, b) => {
      const c = compare(a.at, b.at);
      if (c === 0) return a.closed ? b : a;
      return c > 0 === pickMax ? a : b;
    });
  };
  let min = end(bounds.minimum, bounds.exclusiveMinimum, true);
  let max = end(bounds.maximum, bounds.exclusiveMaximum, false);
  let step: Decimal | null = null;
  if (bounds.multipleOf !== undefined) {
    if (!(bounds.multipleOf > 0)) throw new RangeError('multipleOf must be greater than 0');
    step = decimalOf(String(bounds.multipleOf));
    if (integerType) {
      // m·n/10^s is an integer exactly when 10^s/gcd(n, 10^s) divides m: the integer multiples
      // of n/10^s are the multiples of n/gcd(n, 10^s).
      step = integer(step.n / gcd(step.n, 10n ** BigInt(step.scale)));
    }
  }
  if (min === null && max === null && step === null) return null;
  if (integerType) {
    if (min) {
      const f = floorOf(min.at);
      min = { at: integer(min.closed ? ceilOf(min.at) : f + 1n), closed: true };
    }
    if (max) {
      const c = ceilOf(max.at);
      max = { at: integer(max.closed ? floorOf(max.at) : c - 1n), closed: true };
    }
  }
  const range: NumberRange = { integer: integerType, min, max, step };
  if (min && max && !reaches(range, { lo: min.at, loClosed: true, hi: max.at, hiClosed: true }))
    throw new RangeError(
      step
        ? `no multiple of ${bounds.multipleOf} lies between its bounds`
        : 'no value lies between its bounds',
    );
  return range;
}

/** An interval of values; null ends are infinite. */
interface Interval {
  lo: Decimal | null;
  loClosed: boolean;
  hi: Decimal | null;
  hiClosed: boolean;
}

/** The part of `iv` inside the range's bounds, or null where there is none. */
function withinBounds(range: NumberRange, iv: Interval): Interval | null {
  let lo = iv.lo;
  let loClosed = iv.loClosed;
  if (range.min && (lo === null || compare(range.min.at, lo) >= 0)) {
    const tie = lo !== null && compare(range.min.at, lo) === 0;
    lo = range.min.at;
    loClosed = tie ? loClosed && range.min.closed : range.min.closed;
  }
  let hi = iv.hi;
  let hiClosed = iv.hiClosed;
  if (range.max && (hi === null || compare(range.max.at, hi) <= 0)) {
    const tie = hi !== null && compare(range.max.at, hi) === 0;
    hi = range.max.at;
    hiClosed = tie ? hiClosed && range.max.closed : range.max.closed;
  }
  if (lo !== null && hi !== null) {
    const c = compare(lo, hi);
    if (c > 0 || (c === 0 && !(loClosed && hiClosed))) return null;
  }
  return { lo, loClosed, hi, hiClosed };
}

/** Whether a non-empty interval holds a multiple of `step`: one side unbounded always does. */
function holdsMultiple(iv: Interval, step: Decimal): boolean {
  if (iv.lo === null || iv.hi === null) return true;
  const scale = Math.max(iv.lo.scale, iv.hi.scale, step.scale);
  const lo = align(iv.lo, scale);
  const hi = align(iv.hi, scale);
  const k = align(step, scale);
  let first = ceilDiv(lo, k) * k;
  if (first === lo && !iv.loClosed) first += k;
  return first < hi || (first === hi && iv.hiClosed);
}

/** Whether some value of `iv` is allowed: inside the bounds, and a multiple of the step if any. */
function reaches(range: NumberRange, iv: Interval): boolean {
  const inside = withinBounds(range, iv);
  return inside !== null && (range.step === null || holdsMultiple(inside, range.step));
}

/** Whether a complete number's text (no exponent) is an allowed value. */
export function rangeHolds(range: NumberRange, text: string): boolean {
  const v = decimalOf(text);
  return reaches(range, { lo: v, loClosed: true, hi: v, hiClosed: true });
}

/**
 * Whether the start of a number, `text` ("-", "12", "0.", "-3.1"; no exponent), can still be
 * finished as an allowed value. Its reach, for magnitude digits D and the sign:
 *  - "-" alone: every magnitude;
 *  - D without a dot: D·10^j up to (D+1)·10^j for every j ≥ 0 (more digits, then maybe a
 *    fraction; "0" takes no more digits, only a fraction), integers only for an integer node;
 *  - D.F: [D.F, D.F + 10^−|F|).
 */
export function rangeReachable(range: NumberRange, text: string): boolean {
  const negative = text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  /** A magnitude interval [a, b) (or [a, b] where `bClosed`) seen with the sign. */
  const signed = (a: Decimal, b: Decimal | null, bClosed: boolean): Interval =>
    negative
      ? {
          lo: b && { n: -b.n, scale: b.scale },
          loClosed: bClosed,
          hi: { n: -a.n, scale: a.scale },
          hiClosed: true,
        }
      : { lo: a, loClosed: true, hi: b, hiClosed: bClosed };
  if (body === '') return reaches(range, signed(integer(0n), null, false));
  const dot = body.indexOf('.');
  if (dot >= 0) {
    const frac = body.slice(dot + 1);
    const base: Decimal = { n: BigInt(body.slice(0, dot) + frac), scale: frac.length };
    return reaches(range, signed(base, { n: base.n + 1n, scale: base.scale }, false));
  }
  const d = BigInt(body);
  if (d === 0n)
    return reaches(range, signed(integer(0n), range.integer ? integer(0n) : integer(1n), range.integer));
  // The far end that limits the magnitude; unbounded there, some long enough number reaches in
  // (past the near bound, and, once 10^j exceeds the step, over one of its multiples).
  const far = negative ? range.min : range.max;
  if (far === null) return true;
  const limit = negative ? -far.at.n : far.at.n;
  const farMagnitude: Decimal = { n: limit, scale: far.at.scale };
  for (let p = 1n; ; p *= 10n) {
    const a = integer(d * p);
    if (compare(a, farMagnitude) > 0) return false;
    const b = range.integer ? integer((d + 1n) * p - 1n) : integer((d + 1n) * p);
    if (reaches(range, signed(a, b, range.integer))) return true;
  }
}
