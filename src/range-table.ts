/**
 * RangeTable: the compiled form of a set of nested prefixes, each carrying a "set id" (which
 * region, gateway or trust list it belongs to), answering "which sets contain this key?" with
 * one bucket read and a short binary search.
 *
 * Written by hand because it is the product's core: the npm peers either scan linearly
 * (cidr-matcher, ipaddr.js, net.BlockList) or answer only the longest match (arkime-iptrie,
 * mmdb-lib), while a policy needs the union of every set that contains the address, and needs it
 * in about 100 ns with a routing-table-sized policy.
 *
 * Keys are unsigned integers of 1, 2 or 4 big-endian 32-bit words:
 *   - IPv4 addresses (1 word), IPv6 addresses (4 words);
 *   - MSISDN digit strings (2 words, base-11 encoding, see msisdn.ts).
 * A prefix is the closed key range [start, last]. Prefixes of one kind are laminar (two ranges
 * are nested or disjoint), which is what lets the compiler flatten them.
 *
 * Compilation flattens the prefixes into disjoint, contiguous intervals covering the whole key
 * space. Each interval carries a *label*: the interned set of every set id whose prefixes contain
 * the interval (the deepest prefix's own sets plus all its ancestors' sets, precomputed at
 * compile time like bart's ancestor masks), so a lookup never walks up the tree.
 *
 *   prefixes             10.0.0.0/8 {A}      10.1.0.0/16 {B}
 *   intervals   0.0.0.0 | 10.0.0.0 | 10.1.0.0   | 10.2.0.0 | 11.0.0.0 ...
 *   labels        L0={}  |  L1={A}  |  L2={A,B} |  L1={A}  |  L0={}
 *
 * Memory layout (n intervals, K words per key, B buckets):
 *
 *   bucketIndex  Uint32Array(B + 1)   bucket b -> last interval starting at or before b << shift
 *   starts       Uint32Array(n * K)   interval i's first key, words i*K .. i*K+K-1
 *   labels       Uint32Array(n)       interval i's label id
 *   labelSets    number[][]           label id -> sorted set ids (label 0 is the empty set)
 *
 *   key ──(word0 >>> shift)──► bucketIndex[b] .. bucketIndex[b+1] ──binary search──► labels[i]
 *
 * The bucket index is a 2^16-entry first level (the top 16 bits of an IP address); below it the
 * interval array is searched, so a lookup costs a few cache lines whatever the table size. With
 * 1,000,000 IPv4 prefixes spread over the /16s, a bucket holds a few dozen intervals.
 */

/** Number of 32-bit words in a key. */
export type KeyWords = 1 | 2 | 4

/** A compiled, immutable table. Plain data: it can cross a worker boundary as it is. */
export interface RangeTable {
  readonly keyWords: KeyWords
  readonly shift: number
  readonly bucketIndex: Uint32Array
  readonly starts: Uint32Array
  readonly labels: Uint32Array
  /** label id -> sorted set ids; label 0 is always the empty set. */
  readonly labelSets: readonly (readonly number[])[]
}

const INITIAL_CAPACITY = 64

/**
 * Collects prefixes, then compiles them. `shift` chooses the bucket width: bucket = word0 >>> shift,
 * and `maxWord0` bounds word 0 of any key (0xffffffff for addresses).
 */
export class RangeTableBuilder {
  readonly keyWords: KeyWords
  private readonly shift: number
  private readonly maxWord0: number
  private count = 0
  private starts: Uint32Array
  private lasts: Uint32Array
  private depths: Uint8Array
  private sets: Uint32Array

  constructor(keyWords: KeyWords, options: { shift?: number; maxWord0?: number } = {}) {
    this.keyWords = keyWords
    this.shift = options.shift ?? 16
    this.maxWord0 = options.maxWord0 ?? 0xffffffff
    this.starts = new Uint32Array(INITIAL_CAPACITY * keyWords)
    this.lasts = new Uint32Array(INITIAL_CAPACITY * keyWords)
    this.depths = new Uint8Array(INITIAL_CAPACITY)
    this.sets = new Uint32Array(INITIAL_CAPACITY)
  }

  get size(): number {
    return this.count
  }

  private grow(): void {
    const capacity = this.depths.length * 2
    const K = this.keyWords
    const starts = new Uint32Array(capacity * K)
    starts.set(this.starts)
    this.starts = starts
    const lasts = new Uint32Array(capacity * K)
    lasts.set(this.lasts)
    this.lasts = lasts
    const depths = new Uint8Array(capacity)
    depths.set(this.depths)
    this.depths = depths
    const sets = new Uint32Array(capacity)
    sets.set(this.sets)
    this.sets = sets
  }

  /**
   * Adds the closed range [start, last] at nesting `depth` (prefix length or digit count:
   * a longer prefix is a deeper one) for `setId`.
   */
  add(start: ArrayLike<number>, last: ArrayLike<number>, depth: number, setId: number): void {
    if (this.count === this.depths.length) this.grow()
    const K = this.keyWords
    const base = this.count * K
    for (let w = 0; w < K; w++) {
      this.starts[base + w] = start[w] as number
      this.lasts[base + w] = last[w] as number
    }
    this.depths[this.count] = depth
    this.sets[this.count] = setId
    this.count++
  }

  /** Adds an IP prefix of `length` bits whose network words are `network`. */
  addPrefix(network: ArrayLike<number>, length: number, setId: number): void {
    const K = this.keyWords
    const last = new Uint32Array(K)
    for (let w = 0; w < K; w++) {
      const bits = Math.min(32, Math.max(0, length - 32 * w))
      const hostMask = bits === 32 ? 0 : (0xffffffff >>> bits)
      last[w] = ((network[w] as number) | hostMask) >>> 0
    }
    this.add(network, last, length, setId)
  }

  compile(): RangeTable {
    const order = this.sortedOrder()
    return flatten(this.keyWords, this.shift, this.maxWord0, this.starts, this.lasts, this.sets, order)
  }

  /**
   * Order of the entries by (start ascending, depth ascending): parents before children.
   * LSD radix sort on 16-bit digits: linear in the entry count, which is what keeps a
   * 1,000,000-prefix compile near a second (a comparison sort with a callback is several times
   * slower). Passes whose digit is the same for every entry are skipped, so IPv6 prefixes no
   * longer than /64 do not pay for their zero low words.
   */
  private sortedOrder(): Uint32Array {
    const n = this.count
    const K = this.keyWords
    let order = new Uint32Array(n)
    for (let i = 0; i < n; i++) order[i] = i
    let scratch = new Uint32Array(n)
    const counts = new Uint32Array(65537)
    const pass = (digit: (i: number) => number): void => {
      counts.fill(0)
      for (let i = 0; i < n; i++) (counts[digit(i) + 1] as number)++
      for (let d = 0; d < 65536; d++) {
        if (counts[d + 1] === n) return
        if (counts[d + 1] !== 0) break
      }
      for (let d = 0; d < 65536; d++) counts[d + 1] = (counts[d + 1] as number) + (counts[d] as number)
      for (let i = 0; i < n; i++) {
        const entry = order[i] as number
        const d = digit(entry)
        scratch[counts[d] as number] = entry
        counts[d] = (counts[d] as number) + 1
      }
      const swap = order
      order = scratch
      scratch = swap
    }
    const depths = this.depths
    const starts = this.starts
    pass((i) => depths[i] as number)
    for (let w = K - 1; w >= 0; w--) {
      pass((i) => (starts[i * K + w] as number) & 0xffff)
      pass((i) => (starts[i * K + w] as number) >>> 16)
    }
    return order
  }
}

function compareKeys(a: Uint32Array, ai: number, b: Uint32Array, bi: number, K: number): number {
  for (let w = 0; w < K; w++) {
    const x = a[ai + w] as number
    const y = b[bi + w] as number
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/**
 * Sweeps the sorted ranges with a stack of open ancestors, emitting an interval boundary at each
 * range start and after each range end. Adjacent intervals with equal labels are merged.
 */
function flatten(
  K: KeyWords,
  shift: number,
  maxWord0: number,
  entryStarts: Uint32Array,
  entryLasts: Uint32Array,
  entrySets: Uint32Array,
  order: Uint32Array,
): RangeTable {
  const labels = new LabelInterner()
  let capacity = Math.max(INITIAL_CAPACITY, order.length * 2 + 1)
  let outStarts = new Uint32Array(capacity * K)
  let outLabels = new Uint32Array(capacity)
  let count = 0
  const next = new Uint32Array(K)

  const emit = (src: Uint32Array, offset: number, label: number): void => {
    if (count > 0 && compareKeys(outStarts, (count - 1) * K, src, offset, K) === 0) {
      // Same start as the last boundary: the later (inner or following) range wins.
      outLabels[count - 1] = label
      if (count > 1 && outLabels[count - 2] === label) count--
      return
    }
    if (count > 0 && outLabels[count - 1] === label) return
    /* c8 ignore start - capacity is 2n+1 and a sweep emits at most two boundaries per range plus the origin */
    if (count === capacity) {
      capacity *= 2
      const s = new Uint32Array(capacity * K)
      s.set(outStarts)
      outStarts = s
      const l = new Uint32Array(capacity)
      l.set(outLabels)
      outLabels = l
    }
    /* c8 ignore stop */
    for (let w = 0; w < K; w++) outStarts[count * K + w] = src[offset + w] as number
    outLabels[count] = label
    count++
  }

  const zero = new Uint32Array(K)
  emit(zero, 0, 0)
  const stackEntries: number[] = []
  const stackLabels: number[] = [0]

  // Pops the innermost open range and resumes its parent's label just after it ends.
  const pop = (): void => {
    const entry = stackEntries.pop() as number
    stackLabels.pop()
    let carry = 1
    for (let w = K - 1; w >= 0; w--) {
      const v = (entryLasts[entry * K + w] as number) + carry
      next[w] = v >>> 0
      carry = v > 0xffffffff ? 1 : 0
    }
    if (carry === 0) emit(next, 0, stackLabels[stackLabels.length - 1] as number)
  }

  for (let i = 0; i < order.length; i++) {
    const entry = order[i] as number
    while (stackEntries.length > 0) {
      const top = stackEntries[stackEntries.length - 1] as number
      if (compareKeys(entryStarts, entry * K, entryLasts, top * K, K) <= 0) break
      pop()
    }
    const label = labels.extend(stackLabels[stackLabels.length - 1] as number, entrySets[entry] as number)
    stackEntries.push(entry)
    stackLabels.push(label)
    emit(entryStarts, entry * K, label)
  }
  while (stackEntries.length > 0) pop()

  const starts = outStarts.slice(0, count * K)
  const intervalLabels = outLabels.slice(0, count)
  const buckets = Math.floor(maxWord0 / 2 ** shift) + 1
  const bucketIndex = new Uint32Array(buckets + 1)
  // bucketIndex[b] = last interval whose start <= (b << shift, 0, 0, 0).
  let i = 0
  for (let b = 0; b <= buckets; b++) {
    const bucketStart = b * 2 ** shift
    while (i + 1 < count) {
      const w0 = starts[(i + 1) * K] as number
      let afterBucketStart = w0 > bucketStart
      if (w0 === bucketStart) {
        for (let w = 1; w < K; w++) if (starts[(i + 1) * K + w] !== 0) afterBucketStart = true
      }
      if (afterBucketStart) break
      i++
    }
    bucketIndex[b] = i
  }
  return { keyWords: K, shift, bucketIndex, starts, labels: intervalLabels, labelSets: labels.sets }
}

/**
 * Interns label sets. `extend(parent, setId)` is memoized per (parent, setId) pair, so a million
 * prefixes that share a handful of distinct sets intern each set once.
 */
class LabelInterner {
  readonly sets: number[][] = [[]]
  private readonly byContent = new Map<string, number>([['', 0]])
  private readonly transitions = new Map<number, number>()

  extend(parent: number, setId: number): number {
    const key = parent * 0x100000000 + setId
    const known = this.transitions.get(key)
    if (known !== undefined) return known
    const parentSet = this.sets[parent] as number[]
    let label: number
    if (parentSet.includes(setId)) {
      label = parent
    } else {
      const set = [...parentSet, setId].sort((a, b) => a - b)
      const content = set.join(',')
      const existing = this.byContent.get(content)
      if (existing !== undefined) {
        label = existing
      } else {
        label = this.sets.length
        this.sets.push(set)
        this.byContent.set(content, label)
      }
    }
    this.transitions.set(key, label)
    return label
  }
}

/** Label of a 1-word key (IPv4). The hot path: no allocation, no generic loop. */
export function lookup1(table: RangeTable, key: number): number {
  const starts = table.starts
  const b = key >>> table.shift
  let lo = table.bucketIndex[b] as number
  let hi = table.bucketIndex[b + 1] as number
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if ((starts[mid] as number) <= key) lo = mid
    else hi = mid - 1
  }
  return table.labels[lo] as number
}

/** Label of a 2-word key (MSISDN). */
export function lookup2(table: RangeTable, hiWord: number, loWord: number): number {
  const starts = table.starts
  const b = hiWord >>> table.shift
  let lo = table.bucketIndex[b] as number
  let hi = table.bucketIndex[b + 1] as number
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    const s0 = starts[mid * 2] as number
    if (s0 < hiWord || (s0 === hiWord && (starts[mid * 2 + 1] as number) <= loWord)) lo = mid
    else hi = mid - 1
  }
  return table.labels[lo] as number
}

/** Label of a 4-word key (IPv6) held in `key[0..3]`. */
export function lookup4(table: RangeTable, key: Uint32Array): number {
  const starts = table.starts
  const k0 = key[0] as number
  const b = k0 >>> table.shift
  let lo = table.bucketIndex[b] as number
  let hi = table.bucketIndex[b + 1] as number
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    const base = mid * 4
    let le = true
    for (let w = 0; w < 4; w++) {
      const s = starts[base + w] as number
      const k = key[w] as number
      if (s !== k) {
        le = s < k
        break
      }
    }
    if (le) lo = mid
    else hi = mid - 1
  }
  return table.labels[lo] as number
}
