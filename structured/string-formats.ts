/**
 * JSON Schema `format`s a string is generated to, as regular expressions (full matches over the
 * string's characters, in the syntax of model/linear-regex.ts). vLLM's xgrammar backend follows
 * these formats rather than reading them as annotations, so a schema written for vLLM (pydantic's
 * `date`, `datetime`, `UUID`, `EmailStr`, `AnyUrl`, `IPv4Address`…) gets the same kind of text.
 * Each expression is written from its RFC, and accepts a subset of what the RFC allows where the
 * full grammar is not regular or not worth it (noted per format): every string generated is valid.
 * Formats not listed stay annotations, as JSON Schema 2020-12 has them by default.
 */

const DIGIT = '[0-9]';
const HEX = '[0-9A-Fa-f]';

// RFC 3339 §5.6. Letters upper case only ('T', 'Z'), which the RFC allows in either case.
const FULL_DATE = `${DIGIT}{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]${DIGIT}|3[01])`;
const TIME_OFFSET = `(?:Z|[+-](?:[01]${DIGIT}|2[0-3]):[0-5]${DIGIT})`;
const FULL_TIME = `(?:[01]${DIGIT}|2[0-3]):[0-5]${DIGIT}:(?:[0-5]${DIGIT}|60)(?:\\.${DIGIT}+)?${TIME_OFFSET}`;

// RFC 3339 Appendix A (ISO 8601 durations).
const DUR_SECOND = `${DIGIT}+S`;
const DUR_MINUTE = `${DIGIT}+M(?:${DUR_SECOND})?`;
const DUR_HOUR = `${DIGIT}+H(?:${DUR_MINUTE})?`;
const DUR_TIME = `T(?:${DUR_HOUR}|${DUR_MINUTE}|${DUR_SECOND})`;
const DUR_DAY = `${DIGIT}+D`;
const DUR_MONTH = `${DIGIT}+M(?:${DUR_DAY})?`;
const DUR_YEAR = `${DIGIT}+Y(?:${DUR_MONTH})?`;
const DURATION = `P(?:(?:${DUR_DAY}|${DUR_MONTH}|${DUR_YEAR})(?:${DUR_TIME})?|${DUR_TIME}|${DIGIT}+W)`;

// RFC 2673 dotted quad, RFC 4291 §2.2 text forms (RFC 3986's IPv6address).
const DEC_OCTET = `(?:25[0-5]|2[0-4]${DIGIT}|1${DIGIT}${DIGIT}|[1-9]?${DIGIT})`;
const IPV4 = `${DEC_OCTET}(?:\\.${DEC_OCTET}){3}`;
const IPV6 = ipv6();

// RFC 1123 host names: labels of letters, digits and inner hyphens, at most 63 characters each.
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = `${LABEL}(?:\\.${LABEL})*`;

// RFC 5321 mailbox, dot-atom local part (quoted local parts left out), host-name domain.
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const EMAIL = `${ATOM}(?:\\.${ATOM})*@${HOSTNAME}`;

// RFC 3986 URI: scheme ":" hier-part ["?" query] ["#" fragment] (IPvFuture hosts left out).
const UNRESERVED = '[A-Za-z0-9._~-]';
const PCT = `%${HEX}{2}`;
const SUB_DELIMS = "[!$&'()*+,;=]";
const PCHAR = `(?:${UNRESERVED}|${PCT}|${SUB_DELIMS}|[:@])`;
const USERINFO = `(?:${UNRESERVED}|${PCT}|${SUB_DELIMS}|:)*`;
const REG_NAME = `(?:${UNRESERVED}|${PCT}|${SUB_DELIMS})*`;
const HOST = `(?:\\[${IPV6}\\]|${IPV4}|${REG_NAME})`;
const AUTHORITY = `(?:${USERINFO}@)?${HOST}(?::${DIGIT}*)?`;
const SEGMENT = `${PCHAR}*`;
const SEGMENT_NZ = `${PCHAR}+`;
const HIER_PART = `(?://${AUTHORITY}(?:/${SEGMENT})*|/(?:${SEGMENT_NZ}(?:/${SEGMENT})*)?|${SEGMENT_NZ}(?:/${SEGMENT})*|)`;
const QUERY = `(?:${PCHAR}|[/?])*`;
const URI = `[A-Za-z][A-Za-z0-9+.-]*:${HIER_PART}(?:\\?${QUERY})?(?:#${QUERY})?`;

/** The formats Loom generates to, by name; any other `format` is an annotation. */
export const STRING_FORMATS: ReadonlyMap<string, string> = new Map([
  ['date', FULL_DATE],
  ['time', FULL_TIME],
  ['date-time', `${FULL_DATE}T${FULL_TIME}`],
  ['duration', DURATION],
  ['uuid', `${HEX}{8}-${HEX}{4}-${HEX}{4}-${HEX}{4}-${HEX}{12}`],
  ['ipv4', IPV4],
  ['ipv6', IPV6],
  ['hostname', HOSTNAME],
  ['email', EMAIL],
  ['uri', URI],
]);

/** RFC 3986's nine IPv6address forms: n groups before "::" and m after, n + m within the 8 (7 with "::"). */
function ipv6(): string {
  const h16 = `${HEX}{1,4}`;
  const ls32 = `(?:${h16}:${h16}|${IPV4})`;
  /** k groups each followed by ":" (k = 0: nothing). */
  const groups = (k: number) => (k === 0 ? '' : `(?:${h16}:){${k}}`);
  /** Up to k groups joined by ":" (none allowed). */
  const upTo = (k: number) => (k === 0 ? '' : `(?:(?:${h16}:){0,${k - 1}}${h16})?`);
  const forms = [`${groups(6)}${ls32}`, `::${groups(5)}${ls32}`];
  for (let before = 1; before <= 7; before++) {
    const after = 7 - before - 1;
    // [ *(before-1)(h16 ":") h16 ] "::" then `after` groups and ls32 (or one h16, or nothing).
    if (after >= 1) forms.push(`${upTo(before)}::${groups(after - 1)}${ls32}`);
    else if (after === 0) forms.push(`${upTo(before)}::${h16}`);
    else forms.push(`${upTo(before)}::`);
  }
  return `(?:${forms.join('|')})`;
}
