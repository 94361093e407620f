/**
 * Strict IP address and prefix parsing (TRUST.md, "Strict parsing").
 *
 * Hand-written rather than delegated to ipaddr.js or `net.isIP` because this is the security
 * boundary and the hot path at once: ipaddr.js accepts octal, hex, short and integer IPv4 forms
 * and zone ids, and both allocate per call. Here one function per kind of value is used by the
 * metadata loader, the trust-list loader and the request hook alike, so what the loader accepts
 * is exactly what a request can present.
 *
 * Addresses are written into a caller-owned `Uint32Array(4)` (big-endian words, IPv4 in word 0)
 * so the request path allocates nothing.
 */
import ipaddr from 'ipaddr.js'

/** Address family: 4, 6, or 0 for "not an address". */
export type Family = 0 | 4 | 6

/** Longest textual IPv6 address (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`). */
export const MAX_ADDRESS_LENGTH = 45

/**
 * Parses dotted-quad IPv4: exactly four decimal parts 0–255, no leading zeros, ASCII digits only.
 * Returns the address as an unsigned 32-bit number, or -1.
 */
export function parseIPv4(text: string): number {
  const n = text.length
  if (n < 7 || n > 15) return -1
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
      continue
    }
    const d = c - 48
    if (d < 0 || d > 9) return -1
    // A second digit after a leading 0 is the octal look-alike form: refused.
    if (digits !== 0 && part === 0) return -1
    part = part * 10 + d
    digits++
    if (part > 255) return -1
  }
  if (dots !== 3 || digits === 0) return -1
  return value * 256 + part
}

const groups = new Uint16Array(8)

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/**
 * Parses standard IPv6 text (RFC 4291 section 2.2: hex groups, one `::`, optional dotted IPv4
 * tail). No zone id, brackets or port. IPv4-mapped addresses are unwrapped to IPv4 (family 4).
 */
function parseIPv6Into(text: string, out: Uint32Array): Family {
  const n = text.length
  if (n < 2 || n > MAX_ADDRESS_LENGTH) return 0
  let g = 0
  let gap = -1
  let i = 0
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return 0
    gap = 0
    i = 2
  }
  while (i < n) {
    const start = i
    let value = 0
    let h: number
    while (i < n && (h = hexValue(text.charCodeAt(i))) >= 0) {
      value = value * 16 + h
      i++
    }
    if (i < n && text.charCodeAt(i) === 46) {
      // Dotted IPv4 tail: it must be last and leaves room for exactly two groups.
      if (g > 6) return 0
      const v4 = parseIPv4(text.slice(start))
      if (v4 < 0) return 0
      groups[g++] = v4 >>> 16
      groups[g++] = v4 & 0xffff
      i = n
      break
    }
    if (i === start || i - start > 4 || g === 8) return 0
    groups[g++] = value
    if (i === n) break
    if (text.charCodeAt(i) !== 58) return 0
    i++
    if (i === n) return 0
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return 0
      gap = g
      i++
    }
  }
  if (gap >= 0) {
    if (g === 8) return 0
    const shift = 8 - g
    for (let k = g - 1; k >= gap; k--) groups[k + shift] = groups[k] as number
    for (let k = gap; k < gap + shift; k++) groups[k] = 0
  } else if (g !== 8) {
    return 0
  }
  for (let w = 0; w < 4; w++) {
    out[w] = (((groups[2 * w] as number) << 16) | (groups[2 * w + 1] as number)) >>> 0
  }
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3] as number
    return 4
  }
  return 6
}

/**
 * Parses one address strictly into `out` (IPv4 in `out[0]`, IPv6 in `out[0..3]`).
 * Returns the family, or 0 when the text is not exactly an address.
 */
export function parseAddress(text: string, out: Uint32Array): Family {
  const v4 = parseIPv4(text)
  if (v4 >= 0) {
    out[0] = v4
    return 4
  }
  return parseIPv6Into(text, out)
}

/** A parsed prefix in network order words: one word for IPv4, four for IPv6. */
export interface IpPrefix {
  family: 4 | 6
  words: Uint32Array
  length: number
}

export type PrefixParse =
  | { ok: true; prefix: IpPrefix; hostBitsSet: boolean }
  | { ok: false; message: string }

function parsePrefixLength(text: string, max: number): number {
  if (text.length === 0 || text.length > 3) return -1
  let v = 0
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    if (i > 0 && v === 0) return -1
    v = v * 10 + d
  }
  return v <= max ? v : -1
}

/** Mask word `w` of a prefix of `length` bits. */
export function maskWord(length: number, w: number): number {
  const bits = Math.min(32, Math.max(0, length - 32 * w))
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
}

/**
 * Parses a prefix in CIDR form (`10.1.0.0/18`, `2001:db8::/32`) or IPv4 address and dotted
 * mask (`10.1.0.0/255.255.192.0`, the seed draft's wording). Host bits are masked and reported
 * through `hostBitsSet` so the caller decides whether that is a warning or an error.
 */
export function parsePrefix(text: string): PrefixParse {
  if (text.length > MAX_ADDRESS_LENGTH + 16) {
    return { ok: false, message: 'is too long to be a prefix' }
  }
  const slash = text.indexOf('/')
  if (slash < 0 || slash !== text.lastIndexOf('/')) {
    return { ok: false, message: 'must be address/length (CIDR) or IPv4 address/dotted mask' }
  }
  const addressText = text.slice(0, slash)
  const maskText = text.slice(slash + 1)
  const words = new Uint32Array(4)
  const family = parseAddress(addressText, words)
  if (family === 0) {
    return { ok: false, message: `"${addressText}" is not a strict IPv4 or IPv6 address` }
  }
  if (family === 4 && addressText.includes(':')) {
    return { ok: false, message: 'IPv4-mapped IPv6 prefixes are not accepted; write the IPv4 prefix' }
  }
  let length: number
  if (maskText.includes('.')) {
    const mask = parseIPv4(maskText)
    if (family !== 4 || mask < 0) {
      return { ok: false, message: `"${maskText}" is not a dotted IPv4 mask` }
    }
    const inverse = ~mask >>> 0
    if ((inverse & (inverse + 1)) !== 0) {
      return { ok: false, message: `mask ${maskText} is not contiguous` }
    }
    length = 32 - Math.log2(inverse + 1)
  } else {
    length = parsePrefixLength(maskText, family === 4 ? 32 : 128)
    if (length < 0) {
      return { ok: false, message: `prefix length "${maskText}" must be 0–${family === 4 ? 32 : 128} without leading zeros` }
    }
  }
  const wordCount = family === 4 ? 1 : 4
  let hostBitsSet = false
  const masked = new Uint32Array(wordCount)
  for (let w = 0; w < wordCount; w++) {
    const value = words[w] as number
    masked[w] = (value & maskWord(length, w)) >>> 0
    if (masked[w] !== value) hostBitsSet = true
  }
  return { ok: true, prefix: { family, words: masked, length }, hostBitsSet }
}

/** Canonical text of a prefix, for warnings and explanations. */
export function formatPrefix(prefix: IpPrefix): string {
  const bytes: number[] = []
  for (const word of prefix.words) bytes.push(word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255)
  return `${ipaddr.fromByteArray(bytes).toString()}/${prefix.length}`
}

/** Canonical text of an address held in words. */
export function formatAddress(family: Family, words: Uint32Array): string {
  return formatPrefix({ family: family === 4 ? 4 : 6, words: words.subarray(0, family === 4 ? 1 : 4), length: family === 4 ? 32 : 128 }).replace(/\/\d+$/, '')
}
