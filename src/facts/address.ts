/**
 * Strict IP address and prefix parsing (docs/TRUST.md, "Strict parsing").
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
 * Parses dotted-quad IPv4 into `out[0]`: exactly four decimal parts 0–255, no leading zeros,
 * ASCII digits only. Writes through `out` rather than returning the number because addresses at
 * or above 128.0.0.0 are not small integers, and returning one would allocate per request.
 */
function parseIPv4Into(text: string, out: Uint32Array, from = 0, to = text.length): boolean {
  const n = to - from
  if (n < 7 || n > 15) return false
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return false
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
      continue
    }
    const d = c - 48
    if (d < 0 || d > 9) return false
    // A second digit after a leading 0 is the octal look-alike form: refused.
    if (digits !== 0 && part === 0) return false
    part = part * 10 + d
    digits++
    if (part > 255) return false
  }
  if (dots !== 3 || digits === 0) return false
  out[0] = value * 256 + part
  return true
}

const ipv4Scratch = new Uint32Array(1)

/** Parses dotted-quad IPv4 strictly; returns the unsigned 32-bit value, or -1. */
export function parseIPv4(text: string): number {
  return parseIPv4Into(text, ipv4Scratch) ? (ipv4Scratch[0] as number) : -1
}

const groups = new Uint16Array(8)

/** ASCII code -> hex digit value, or -1. */
const HEX = new Int8Array(128).fill(-1)
for (let c = 0; c < 10; c++) HEX[48 + c] = c
for (let c = 0; c < 6; c++) HEX[97 + c] = HEX[65 + c] = 10 + c

/**
 * Parses standard IPv6 text (RFC 4291 section 2.2: hex groups, one `::`, optional dotted IPv4
 * tail). No zone id, brackets or port. IPv4-mapped addresses are unwrapped to IPv4 (family 4).
 */
function parseIPv6Into(text: string, out: Uint32Array, from: number, to: number): Family {
  const n = to
  if (to - from < 2 || to - from > MAX_ADDRESS_LENGTH) return 0
  let g = 0
  let gap = -1
  let i = from
  if (text.charCodeAt(from) === 58) {
    if (text.charCodeAt(from + 1) !== 58) return 0
    gap = 0
    i = from + 2
  }
  while (i < n) {
    const start = i
    let value = 0
    let h: number
    while (i < n && (h = HEX[text.charCodeAt(i) & 127] as number) >= 0 && text.charCodeAt(i) < 128) {
      value = value * 16 + h
      i++
    }
    if (i < n && text.charCodeAt(i) === 46) {
      // Dotted IPv4 tail: it must be last and leaves room for exactly two groups.
      if (g > 6) return 0
      if (!parseIPv4Into(text, ipv4Scratch, start, to)) return 0
      const v4 = ipv4Scratch[0] as number
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
 * Parses one address strictly into `out` (IPv4 in `out[0]`, IPv6 in `out[0..3]`): all of
 * `text`, or its characters `from` .. `to` (so a list entry needs no substring).
 * Returns the family, or 0 when the text is not exactly an address.
 */
export function parseAddress(text: string, out: Uint32Array, from = 0, to = text.length): Family {
  if (parseIPv4Into(text, out, from, to)) return 4
  return parseIPv6Into(text, out, from, to)
}

/** A parsed prefix in network order words: one word for IPv4, four for IPv6. */
export interface IpPrefix {
  family: 4 | 6
  words: Uint32Array
  length: number
}

export type PrefixParse = { ok: true; prefix: IpPrefix; hostBitsSet: boolean } | { ok: false; message: string }

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

/** Flag in parsePrefixInto's result: the text had host bits set (they were masked). */
export const HOST_BITS_SET = 0x10000
const PREFIX_TOO_LONG = -1
const PREFIX_NO_SLASH = -2
const PREFIX_BAD_ADDRESS = -3
const PREFIX_MAPPED = -4
const PREFIX_BAD_MASK = -5
const PREFIX_NOT_CONTIGUOUS = -6
const PREFIX_BAD_LENGTH = -7

/**
 * Parses a prefix in CIDR form (`10.1.0.0/18`, `2001:db8::/32`) or IPv4 address and dotted
 * mask (`10.1.0.0/255.255.192.0`, the seed draft's wording) into `out`, host bits masked.
 * Returns `family << 8 | length`, with HOST_BITS_SET added when host bits were set, or a
 * negative code. Allocation-free apart from the two substrings, for million-prefix documents;
 * `parsePrefix` turns a code into a message.
 */
export function parsePrefixInto(text: string, out: Uint32Array): number {
  if (text.length > MAX_ADDRESS_LENGTH + 16) return PREFIX_TOO_LONG
  const slash = text.indexOf('/')
  if (slash < 0 || slash !== text.lastIndexOf('/')) return PREFIX_NO_SLASH
  const addressText = text.slice(0, slash)
  const maskText = text.slice(slash + 1)
  const family = parseAddress(addressText, out)
  if (family === 0) return PREFIX_BAD_ADDRESS
  if (family === 4 && addressText.includes(':')) return PREFIX_MAPPED
  let length: number
  if (maskText.includes('.')) {
    const mask = parseIPv4(maskText)
    if (family !== 4 || mask < 0) return PREFIX_BAD_MASK
    const inverse = ~mask >>> 0
    if ((inverse & (inverse + 1)) !== 0) return PREFIX_NOT_CONTIGUOUS
    length = 32 - Math.log2(inverse + 1)
  } else {
    length = parsePrefixLength(maskText, family === 4 ? 32 : 128)
    if (length < 0) return PREFIX_BAD_LENGTH
  }
  let hostBits = 0
  for (let w = 0; w < (family === 4 ? 1 : 4); w++) {
    const value = out[w] as number
    const masked = (value & maskWord(length, w)) >>> 0
    if (masked !== value) hostBits = HOST_BITS_SET
    out[w] = masked
  }
  return (family << 8) | length | hostBits
}

/** parsePrefixInto with a message for each way a prefix can be wrong. */
export function parsePrefix(text: string): PrefixParse {
  const words = new Uint32Array(4)
  const code = parsePrefixInto(text, words)
  if (code >= 0) {
    const family = (code >>> 8) & 0xff
    return {
      ok: true,
      prefix: { family: family as 4 | 6, words: words.subarray(0, family === 4 ? 1 : 4), length: code & 0xff },
      hostBitsSet: (code & HOST_BITS_SET) !== 0,
    }
  }
  const slash = text.indexOf('/')
  const addressText = text.slice(0, slash)
  const maskText = text.slice(slash + 1)
  const messages: Record<number, string> = {
    [PREFIX_TOO_LONG]: 'is too long to be a prefix',
    [PREFIX_NO_SLASH]: 'must be address/length (CIDR) or IPv4 address/dotted mask',
    [PREFIX_BAD_ADDRESS]: `"${addressText}" is not a strict IPv4 or IPv6 address`,
    [PREFIX_MAPPED]: 'IPv4-mapped IPv6 prefixes are not accepted; write the IPv4 prefix',
    [PREFIX_BAD_MASK]: `"${maskText}" is not a dotted IPv4 mask`,
    [PREFIX_NOT_CONTIGUOUS]: `mask ${maskText} is not contiguous`,
    [PREFIX_BAD_LENGTH]: `prefix length "${maskText}" must be 0–${addressText.includes(':') ? 128 : 32} without leading zeros`,
  }
  return { ok: false, message: messages[code] as string }
}

/** Canonical text of a prefix, for warnings and explanations. */
export function formatPrefix(prefix: IpPrefix): string {
  const bytes: number[] = []
  for (const word of prefix.words) bytes.push(word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255)
  return `${ipaddr.fromByteArray(bytes).toString()}/${prefix.length}`
}

/** Canonical text of an address held in words. */
export function formatAddress(family: Family, words: Uint32Array): string {
  return formatPrefix({
    family: family === 4 ? 4 : 6,
    words: words.subarray(0, family === 4 ? 1 : 4),
    length: family === 4 ? 32 : 128,
  }).replace(/\/\d+$/, '')
}
