// Seeded, realistic prefix sets for the benchmarks. Lengths are weighted like a routing table:
// IPv4 mostly /24 with /16–/23 behind it; IPv6 mostly /48 and /32 with /29–/44 between.
export function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const V4_LENGTHS = [
  [16, 3],
  [17, 2],
  [18, 3],
  [19, 5],
  [20, 7],
  [21, 8],
  [22, 12],
  [23, 10],
  [24, 50],
]
const V6_LENGTHS = [
  [29, 4],
  [32, 20],
  [36, 6],
  [40, 10],
  [44, 10],
  [48, 50],
]
/** First 16 bits of allocated IPv6 space, where real prefixes cluster. */
const V6_TOP = [
  0x2001, 0x2400, 0x2401, 0x2402, 0x2403, 0x2404, 0x2405, 0x2406, 0x2407, 0x2408, 0x2409, 0x240e, 0x2600, 0x2601,
  0x2602, 0x2603, 0x2604, 0x2605, 0x2606, 0x2607, 0x2800, 0x2801, 0x2803, 0x2804, 0x2a00, 0x2a01, 0x2a02, 0x2a03,
  0x2a04, 0x2a05, 0x2a06, 0x2a07, 0x2a09, 0x2a0a, 0x2a0b, 0x2a0c, 0x2a0d, 0x2a0e, 0x2a0f, 0x2c0f,
]

function weighted(random, table) {
  const total = table.reduce((s, [, w]) => s + w, 0)
  let r = random() * total
  for (const [value, w] of table) {
    r -= w
    if (r < 0) return value
  }
  return table[table.length - 1][0]
}

const mask = (len) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0)
export const v4Text = (n) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`

/** `count` IPv4 prefixes as { network, length, text }, in 1.0.0.0–223.255.255.255. */
export function ipv4Prefixes(count, seed = 1) {
  const random = rng(seed)
  const out = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = weighted(random, V4_LENGTHS)
    const address = (0x01000000 + Math.floor(random() * (0xe0000000 - 0x01000000))) >>> 0
    const network = (address & mask(length)) >>> 0
    out[i] = { network, length, text: `${v4Text(network)}/${length}` }
  }
  return out
}

function hex(words) {
  const groups = []
  for (const w of words) groups.push((w >>> 16).toString(16), (w & 0xffff).toString(16))
  return groups.join(':')
}

/** `count` IPv6 prefixes as { words, length, text }. */
export function ipv6Prefixes(count, seed = 2) {
  const random = rng(seed)
  const out = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = weighted(random, V6_LENGTHS)
    const top = V6_TOP[Math.floor(random() * V6_TOP.length)]
    const w0 = ((top << 16) | Math.floor(random() * 65536)) >>> 0
    const w1 = Math.floor(random() * 4294967296) >>> 0
    const words = [(w0 & mask(Math.min(32, length))) >>> 0, (w1 & mask(Math.max(0, length - 32))) >>> 0, 0, 0]
    out[i] = { words, length, text: `${hex(words)}/${length}` }
  }
  return out
}

/** An IPv4 address inside `prefix`. */
export function v4Inside(prefix, random) {
  const host = Math.floor(random() * 2 ** (32 - prefix.length))
  return v4Text((prefix.network + host) >>> 0)
}

/** An IPv6 address inside `prefix` (host bits random in the second and last words). */
export function v6Inside(prefix, random) {
  const w1 =
    prefix.length >= 64
      ? prefix.words[1]
      : (prefix.words[1] | (Math.floor(random() * 4294967296) & ~mask(Math.max(0, prefix.length - 32)))) >>> 0
  return hex([prefix.words[0], w1, Math.floor(random() * 4294967296) >>> 0, Math.floor(random() * 4294967296) >>> 0])
}

export function randomV4(random) {
  return v4Text((0x01000000 + Math.floor(random() * (0xe0000000 - 0x01000000))) >>> 0)
}

export function randomV6(random) {
  const top = V6_TOP[Math.floor(random() * V6_TOP.length)]
  return hex([((top << 16) | Math.floor(random() * 65536)) >>> 0, Math.floor(random() * 4294967296) >>> 0, 1, 1])
}

/** `count` MSISDN prefixes of 7–10 digits under country code 86 (international form). */
export function msisdnPrefixes(count, seed = 3) {
  const random = rng(seed)
  const out = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = 7 + Math.floor(random() * 4)
    let digits = '861'
    for (let d = 1; d < length; d++) digits += Math.floor(random() * 10)
    out[i] = digits
  }
  return out
}

/** Median of a list of numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}
