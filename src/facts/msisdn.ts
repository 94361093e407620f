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

/** A normalized subscriber number: international digits, and the national significant number
 * when the number belongs to the gateway's home country. */
export interface Msisdn {
  international: string
  national: string | null
}

/** Longest raw header value considered: `+` or `00`, 15 digits, nothing else. */
const MAX_RAW_LENGTH = MAX_MSISDN_DIGITS + 2

/**
 * Normalizes one MSISDN header value strictly (docs/TRUST.md, "Strict parsing"): ASCII digits with
 * an optional leading `+` (and `00` only where configured), at most 15 digits, no leading 0 in
 * international form. Returns null for anything else, including the `, `-joined value of a
 * repeated header.
 */
export function normalizeMsisdn(raw: string, format: MsisdnFormat): Msisdn | null {
  if (raw.length === 0 || raw.length > MAX_RAW_LENGTH) return null
  let international: string
  if (raw.charCodeAt(0) === 43) {
    international = raw.slice(1)
  } else if (format.allowDoubleZero && raw.startsWith('00')) {
    international = raw.slice(2)
  } else if (format.numbering === 'national') {
    if (!isDigitString(raw)) return null
    if (format.countryCode.length + raw.length > MAX_MSISDN_DIGITS) return null
    return { international: format.countryCode + raw, national: raw }
  } else {
    international = raw
  }
  // No E.164 country code starts with 0: such a number is a national or misconfigured form.
  if (!isDigitString(international) || international.charCodeAt(0) === 48) return null
  const national =
    international.startsWith(format.countryCode) && international.length > format.countryCode.length
      ? international.slice(format.countryCode.length)
      : null
  return { international, national }
}

/** Masks a number for logs: keeps the first five digits, the rest become `x`. */
export function maskMsisdn(digits: string): string {
  return digits.slice(0, 5) + 'x'.repeat(Math.max(0, digits.length - 5))
}
