/**
 * MSISDN numbers and prefixes (README, "The seed's format").
 *
 * Numbers stay digit strings end to end (never `Number()` of the text: leading zeros and the
 * 15-digit E.164 bound matter). For the range table they are encoded as a base-11 key: digit d
 * becomes d + 1 and missing trailing digits are 0, over 15 positions. So "135" and "1350" get
 * different keys, a prefix of k digits is one contiguous key range, and a number shorter than a
 * prefix never falls inside it. 11^15 < 2^53, so the arithmetic is exact in doubles; the key is
 * then split into two 32-bit words for the table.
 */

/** E.164: at most 15 digits. */
export const MAX_MSISDN_DIGITS = 15

const TWO_20 = 2 ** 20

/** Base-11 key of a digit string (1–15 ASCII digits, already validated). */
export function msisdnKey(digits: string): number {
  let key = 0
  for (let i = 0; i < MAX_MSISDN_DIGITS; i++) {
    key = key * 11 + (i < digits.length ? digits.charCodeAt(i) - 47 : 0)
  }
  return key
}

/** The closed key range [start, last] covered by a digit prefix. */
export function msisdnPrefixRange(digits: string): { start: [number, number]; last: [number, number] } {
  const start = msisdnKey(digits)
  const last = start + 11 ** (MAX_MSISDN_DIGITS - digits.length) - 1
  return { start: splitKey(start), last: splitKey(last) }
}

/** Word 0 of a key: its top 32 of 52 bits. */
export function keyHighWord(key: number): number {
  return Math.floor(key / TWO_20)
}

/** Word 1 of a key: its low 20 bits, moved to the top of the word. */
export function keyLowWord(key: number, high: number): number {
  return (key - high * TWO_20) * 4096
}

export function splitKey(key: number): [number, number] {
  const high = keyHighWord(key)
  return [high, keyLowWord(key, high)]
}

/** True when `text` is 1–15 ASCII digits. */
export function isDigitString(text: string, maxDigits = MAX_MSISDN_DIGITS): boolean {
  const n = text.length
  if (n === 0 || n > maxDigits) return false
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/** How an operator gateway writes the subscriber number. */
export interface MsisdnFormat {
  /** Home country code, 1–3 digits (e.g. "86"). */
  countryCode: string
  /** `international`: digits are country code + national number (E.164 without `+`), the usual
   * header-enrichment form. `national`: digits are the national significant number only. */
  numbering: 'international' | 'national'
  /** Accept the `00` international call prefix as a `+`. */
  allowDoubleZero: boolean
}

/**
 * A normalized subscriber number: its international digits, and the range-table keys the policy
 * looks up. The national significant number (when the number belongs to the gateway's home
 * country) is kept only as its key: the international key with the country code's positions
 * shifted out, so the request path builds no string for it.
 */
export interface Msisdn {
  /** International digits: country code and national number, E.164 without the `+`. */
  international: string
  /** msisdnKey of the international digits. */
  key: number
  /** msisdnKey of the national significant number, or -1 when the number is not a home one. */
  nationalKey: number
}

/** Longest raw header value considered: `+` or `00`, 15 digits, nothing else. */
const MAX_RAW_LENGTH = MAX_MSISDN_DIGITS + 2

/** 11^n for n = 0 .. 15. */
const POWERS_OF_11 = Array.from({ length: MAX_MSISDN_DIGITS + 1 }, (_, n) => 11 ** n)

/**
 * Key of the digits `text[from ..]` (1–15 of them), or -1 when one is not an ASCII digit: the
 * validation and the key in one pass.
 */
function digitsKey(text: string, from: number): number {
  const n = text.length - from
  if (n === 0 || n > MAX_MSISDN_DIGITS) return -1
  let key = 0
  for (let i = from; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    key = key * 11 + d + 1
  }
  return key * (POWERS_OF_11[MAX_MSISDN_DIGITS - n] as number)
}

/**
 * Normalizes one MSISDN header value strictly (docs/TRUST.md, "Strict parsing"): ASCII digits with
 * an optional leading `+` (and `00` only where configured), at most 15 digits, no leading 0 in
 * international form. Returns null for anything else, including the `, `-joined value of a
 * repeated header. Runs per gateway request: one pass over the digits, and no string built
 * unless the value carries a `+` or `00` (or the gateway writes national numbers).
 */
export function normalizeMsisdn(raw: string, format: MsisdnFormat): Msisdn | null {
  if (raw.length === 0 || raw.length > MAX_RAW_LENGTH) return null
  let international: string
  let key: number
  const from = raw.charCodeAt(0) === 43 ? 1 : format.allowDoubleZero && raw.startsWith('00') ? 2 : 0
  if (from === 0 && format.numbering === 'national') {
    if (digitsKey(raw, 0) < 0) return null
    international = format.countryCode + raw
    key = digitsKey(international, 0)
  } else {
    // No E.164 country code starts with 0: such a number is a national or misconfigured form.
    key = raw.charCodeAt(from) === 48 ? -1 : digitsKey(raw, from)
    international = from === 0 || key < 0 ? raw : raw.slice(from)
  }
  if (key < 0) return null
  const code = format.countryCode.length
  const home = international.length > code && international.startsWith(format.countryCode)
  // The national digits are the international ones after the country code: the same base-11
  // positions moved `code` places up (exact: every value stays below 11^15 < 2^53).
  const nationalKey = home
    ? (key % (POWERS_OF_11[MAX_MSISDN_DIGITS - code] as number)) * (POWERS_OF_11[code] as number)
    : -1
  return { international, key, nationalKey }
}

/** Masks a number for logs: keeps the first five digits, the rest become `x`. */
export function maskMsisdn(digits: string): string {
  return digits.slice(0, 5) + 'x'.repeat(Math.max(0, digits.length - 5))
}
