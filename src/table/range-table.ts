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
 * Memory layout (n intervals, K words per key, S = K + 1 words per interval):
 *
 *   entries   Uint32Array(n * S)   interval i: start words i*S .. i*S+K-1, label at i*S+K
 *                                  (the label shares the start's cache line: one miss, not two)
 *   index     Uint32Array          root: 65,536 slots (top 16 bits); then 256 per child node;
 *                                  slot c of a node is [low_c, child_c], and low_{c+1} follows,
 *                                  so one cache line gives a slot's whole entry range
 *   labelSets number[][]           label id -> sorted set ids (label 0 is the empty set)
 *
 * The index above the intervals is a multibit trie, stride 16 at the root then 8 per level.
 * Slot c of a node covers the keys that continue with bits c; low_c is the last interval
 * starting at or before the slot's first key, so the answer for any key in the slot lies in
 * entries low_c .. low_{c+1}. A slot holding more than LEAF_INTERVALS intervals gets a child
 * node (child_c = node number, 0 for a leaf slot) over the next 8 bits:
 *
 *   key ─► root[key >>> 16] ─┬─ leaf:  binary search entries low_c .. low_{c+1} ─► label
 *                            └─ node j: slot (key >>> 8) & 255 of node j ─► ... ─► label
 *
 * A table of at most LEAF_INTERVALS intervals (a trust list, a handful of handset subnets) has
 * no index at all: its lookup is the binary search over all of it, a cache line or two, where a
 * root would take 512 KB and a cache miss per lookup.
 *
 * So a lookup costs one or two index reads and a binary search over at most a few dozen
 * intervals (a couple of cache lines), whatever the table size: 1,000,000 IPv4 prefixes rarely
 * need a child node, while IPv6 prefixes, clustered under a few dozen /16s, get them where they
 * cluster.
 */

/** Number of 32-bit words in a key. */
export type KeyWords = 1 | 2 | 4

/** A compiled, immutable table. Plain data: it can cross a worker boundary as it is. */
export interface RangeTable {
  readonly keyWords: KeyWords
  /** Number of intervals. */
  readonly count: number
  readonly entries: Uint32Array
  readonly index: Uint32Array
  /** label id -> sorted set ids; label 0 is always the empty set. */
  readonly labelSets: readonly (readonly number[])[]
}

const ROOT_SLOTS = 1 << 16
const NODE_SLOTS = 256
/** Words of the root node and of each child node in `index`: two per slot, one closing low. */
const ROOT_WORDS = 2 * ROOT_SLOTS + 1
const NODE_WORDS = 2 * NODE_SLOTS + 1
/**
 * A slot with more intervals than this gets a child node. Measured on 1,000,000 IPv4 and 200,000
 * IPv6 prefixes (bench/lookup.js): with one-word keys, memory latency dominates and a deeper
 * index only adds a miss, so IPv4 splits rarely; four-word compares cost more per step and IPv6
 * prefixes cluster, so IPv6 splits early.
 */
const LEAF_INTERVALS: Record<KeyWords, number> = { 1: 64, 2: 8, 4: 8 }

const INITIAL_CAPACITY = 64

/** Collects prefixes, then compiles them. */
export class RangeTableBuilder {
  readonly keyWords: KeyWords
  private count = 0
  private starts: Uint32Array
  private lasts: Uint32Array
  private depths: Uint8Array
  private sets: Uint32Array

  constructor(keyWords: KeyWords) {
    this.keyWords = keyWords
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

  private readonly last = new Uint32Array(4)
  private readonly network = new Uint32Array(4)

  /** Adds an IP prefix of `length` bits whose network words are `words[offset ..]`. */
  addPrefix(words: ArrayLike<number>, length: number, setId: number, offset = 0): void {
    const K = this.keyWords
    for (let w = 0; w < K; w++) {
      const bits = Math.min(32, Math.max(0, length - 32 * w))
      const hostMask = bits === 32 ? 0 : 0xffffffff >>> bits
      this.network[w] = words[offset + w] as number
      this.last[w] = ((words[offset + w] as number) | hostMask) >>> 0
    }
    this.add(this.network, this.last, length, setId)
  }

  compile(): RangeTable {
    const order = this.sortedOrder()
    return flatten(this.keyWords, this.starts, this.lasts, this.sets, order)
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
  entryStarts: Uint32Array,
  entryLasts: Uint32Array,
  entrySets: Uint32Array,
  order: Uint32Array,
): RangeTable {
  const labels = new LabelInterner()
  // Enough for every boundary: the origin, and at most a start and an after-end per range.
  const capacity = Math.max(INITIAL_CAPACITY, order.length * 2 + 1)
  const outStarts = new Uint32Array(capacity * K)
  const outLabels = new Uint32Array(capacity)
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

  const S = K + 1
  const entries = new Uint32Array(count * S)
  for (let i = 0; i < count; i++) {
    for (let w = 0; w < K; w++) entries[i * S + w] = outStarts[i * K + w] as number
    entries[i * S + K] = outLabels[i] as number
  }
  return { keyWords: K, count, entries, ...buildIndex(K, entries, count), labelSets: labels.sets }
}

/**
 * Builds the trie index over the sorted intervals (see the layout at the top of the file).
 * Each node's slots are filled by one forward walk over its intervals; child nodes are filled
 * after their parent, from a work list.
 */
function buildIndex(K: KeyWords, entries: Uint32Array, count: number): { index: Uint32Array } {
  // Its own empty array, not a shared one: a worker transfers every table's buffers.
  if (count <= LEAF_INTERVALS[K]) return { index: new Uint32Array(0) }
  const S = K + 1
  let index = new Uint32Array(ROOT_WORDS + 16 * NODE_WORDS)
  let used = ROOT_WORDS
  const slotStart = new Uint32Array(K)
  // Work list of nodes to fill: base, slot bits, bit offset, lo, hi, and K prefix words.
  const work: number[][] = [[0, 16, 0, 0, count - 1, ...new Array<number>(K).fill(0)]]
  for (let item = work.pop(); item !== undefined; item = work.pop()) {
    const [base, width, offset, lo, hi] = item as [number, number, number, number, number]
    const slots = 1 << width
    const w = offset >>> 5
    const shift = 32 - (offset & 31) - width
    let i = lo
    for (let c = 0; c < slots; c++) {
      for (let k = 0; k < K; k++) slotStart[k] = item[5 + k] as number
      slotStart[w] = ((slotStart[w] as number) | (c << shift)) >>> 0
      // Advance to the last interval starting at or before the slot's first key.
      while (i < hi) {
        const next = (i + 1) * S
        let after = false
        for (let k = 0; k < K; k++) {
          const a = entries[next + k] as number
          const b = slotStart[k] as number
          if (a !== b) {
            after = a > b
            break
          }
        }
        if (after) break
        i++
      }
      index[base + 2 * c] = i
    }
    index[base + 2 * slots] = hi
    if (offset + width >= K * 32) continue
    for (let c = 0; c < slots; c++) {
      const low = index[base + 2 * c] as number
      const high = index[base + 2 * c + 2] as number
      if (high - low <= LEAF_INTERVALS[K]) continue
      if (used + NODE_WORDS > index.length) {
        const bigger = new Uint32Array(index.length * 2)
        bigger.set(index)
        index = bigger
      }
      const childBase = used
      used += NODE_WORDS
      index[base + 2 * c + 1] = (childBase - ROOT_WORDS) / NODE_WORDS + 1
      const prefix = item.slice(5)
      prefix[w] = ((prefix[w] as number) | (c << shift)) >>> 0
      work.push([childBase, 8, offset + width, low, high, ...prefix])
    }
  }
  return { index: index.slice(0, used) }
}

/**
 * Interns label sets. `extend(parent, setId)` is memoized per (parent, setId) pair, so a million
 * prefixes that share a handful of distinct sets intern each set once.
 */
class LabelInterner {
  readonly sets: number[][] = [[]]
  private readonly byContent = new Map<string, number>([['', 0]])
  private readonly transitions = new Map<number, number>()
  // A one-entry cache in front of the map: consecutive prefixes mostly repeat a transition.
  private lastKey = -1
  private lastLabel = 0

  extend(parent: number, setId: number): number {
    const key = parent * 0x100000000 + setId
    if (key === this.lastKey) return this.lastLabel
    const known = this.transitions.get(key)
    this.lastKey = key
    if (known !== undefined) {
      this.lastLabel = known
      return known
    }
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
    this.lastLabel = label
    return label
  }
}

/** The entry range [lo, hi] that `descend` found. */
const range = { lo: 0, hi: 0 }

/**
 * Walks the trie index for a key given by its words and leaves the entry range in `range`.
 * `w0` is the first word; `key` (for K > 1) holds all of them.
 */
function descend(table: RangeTable, w0: number, key: Uint32Array | null): void {
  const index = table.index
  if (index.length === 0) {
    range.lo = 0
    range.hi = table.count - 1
    return
  }
  let at = 2 * (w0 >>> 16)
  let node = index[at + 1] as number
  let offset = 16
  while (node !== 0) {
    const word = offset < 32 ? w0 : ((key as Uint32Array)[offset >>> 5] as number)
    at = ROOT_WORDS + (node - 1) * NODE_WORDS + 2 * ((word >>> (24 - (offset & 31))) & 255)
    node = index[at + 1] as number
    offset += 8
  }
  range.lo = index[at] as number
  range.hi = index[at + 2] as number
}

/** Label of a 1-word key (IPv4). The hot path: no allocation, no generic loop. */
export function lookup1(table: RangeTable, key: number): number {
  descend(table, key, null)
  const entries = table.entries
  let lo = range.lo
  let hi = range.hi
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if ((entries[mid * 2] as number) <= key) lo = mid
    else hi = mid - 1
  }
  return entries[lo * 2 + 1] as number
}

const key2 = new Uint32Array(2)

/** Label of a 2-word key (MSISDN). */
export function lookup2(table: RangeTable, hiWord: number, loWord: number): number {
  key2[0] = hiWord
  key2[1] = loWord
  descend(table, hiWord, key2)
  const entries = table.entries
  let lo = range.lo
  let hi = range.hi
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    const s0 = entries[mid * 3] as number
    if (s0 < hiWord || (s0 === hiWord && (entries[mid * 3 + 1] as number) <= loWord)) lo = mid
    else hi = mid - 1
  }
  return entries[lo * 3 + 2] as number
}

/** Label of a 4-word key (IPv6) held in `key[0..3]`. */
export function lookup4(table: RangeTable, key: Uint32Array): number {
  descend(table, key[0] as number, key)
  const entries = table.entries
  let lo = range.lo
  let hi = range.hi
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    const base = mid * 5
    let le = true
    for (let w = 0; w < 4; w++) {
      const s = entries[base + w] as number
      const k = key[w] as number
      if (s !== k) {
        le = s < k
        break
      }
    }
    if (le) lo = mid
    else hi = mid - 1
  }
  return entries[lo * 5 + 4] as number
}
