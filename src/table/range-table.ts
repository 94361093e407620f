/**
 * RangeTable: the compiled form of a set of nested prefixes, each carrying a "set id" (which
 * region, gateway or trust list it belongs to), answering "which sets contain this key?" with
 * two or three cache-line reads for an IPv4 routing table, whatever its size.
 *
 * Written by hand because it is the product's core: the npm peers either scan linearly
 * (cidr-matcher, ipaddr.js, net.BlockList) or answer only the longest match (arkime-iptrie,
 * mmdb-lib), while a policy needs the union of every set that contains the address, and needs it
 * in well under 100 ns with a routing-table-sized policy.
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
 * The intervals are then indexed by a multibit trie in the manner of poptrie (Asai and Ohara,
 * SIGCOMM 2015): a root node over the top `rootBits` bits of the key (16 for a large table, 8 for
 * a small one), then nodes of 8 bits each. A slot of a node (the keys that continue with its
 * digit) is one of three things:
 *
 *   leaf    the slot lies inside one interval: it answers that interval's label;
 *   list    the slot holds a few intervals (at most LIST_INTERVALS): a list of them;
 *   node    the slot holds more: a child node over the next 8 bits.
 *
 * A node is stored as bitmaps in chunks of 32 slots, so that finding a slot's label or child is
 * a read of one 16-byte chunk and a population count:
 *
 *   nodes   Uint32Array   the root (chunks 0 .. 2^rootBits/32 - 1), then children and lists
 *
 *     chunk   [ childBits | leafBits | childBase | leafBase ]     4 words, never across a line
 *
 *       childBits bit s, leafBits bit s:   0 0 leaf inside a run   1 0 node
 *                                          0 1 leaf starting a run 1 1 list
 *       childBase  word offset in `nodes` of the chunk's first child; the children of a node
 *                  lie together in slot order, a node taking 32 words and a list LIST_WORDS
 *       leafBase   index in `leaves` of the run the chunk's first slot continues
 *
 *     node    8 chunks (32 words, 128 bytes)
 *     list    [ m | m boundaries of K words | m + 1 labels ], padded to LIST_WORDS: the slot's
 *             intervals after its first, and the labels of all of them; 32 words (128 bytes, 15
 *             boundaries) for one-word keys, 16 words (64 bytes) for longer ones
 *
 *   leaves  Uint32Array   the label of each run of leaf slots, node after node; [0] is unused
 *   labelSets number[][]  label id -> sorted set ids (label 0 is the empty set)
 *
 * With d the key's digit for a node, its chunk d >>> 5, bit b = d & 31, m the mask of bits
 * 0 .. b and p the mask of bits 0 .. b - 1:
 *
 *   leaf:  label = leaves[leafBase + popcount(leafBits & ~childBits & m)]
 *   child: at childBase + LIST_WORDS * popcount(childBits & p)
 *                       + (32 - LIST_WORDS) * popcount(childBits & ~leafBits & p)
 *          and a list is scanned for the last boundary at or below the key
 *
 * Runs of equal labels are one leaf, so a node holding a handful of prefixes is 128 bytes of
 * bitmaps and a few words of labels. For 1,000,000 IPv4 prefixes (mostly /24 and shorter) a
 * lookup reads the root (32 KB, which stays in cache), then either the list of its /16 (one
 * 128-byte block, which the hardware fetches as a pair of lines) or one chunk of the /16's node
 * and one leaf word: one or two cache misses, where a binary search over the intervals pays one
 * per level below the cached top of the array. An IPv6 prefix alone under
 * its /32 (the common case) is a list in the /24's node: root, /16 node and /24 node chunks, then
 * one line of list, the first two of which stay in cache.
 *
 * A slot of the key's last byte is a single key, so it is always a leaf: the walk ends by the
 * key's last bit at the latest.
 */

/** Number of 32-bit words in a key. */
export type KeyWords = 1 | 2 | 4

/** A compiled, immutable table. Plain data: it can cross a worker boundary as it is. */
export interface RangeTable {
  readonly keyWords: KeyWords
  /** Number of intervals the prefixes flattened into. */
  readonly count: number
  /** Bits of the key the root node covers: 16, or 8 for a table of few intervals. */
  readonly rootBits: number
  /** The trie's nodes as chunks of four words (see the layout at the top of the file). */
  readonly nodes: Uint32Array
  /** Label of each run of leaves. */
  readonly leaves: Uint32Array
  /** label id -> sorted set ids; label 0 is always the empty set. */
  readonly labelSets: readonly (readonly number[])[]
}

/** Sorted, disjoint intervals covering the key space, the first starting at 0. */
export interface Intervals {
  readonly count: number
  /** Interval i starts at words i*K .. i*K+K-1 (the array may be longer than count * K). */
  readonly starts: Uint32Array
  /** Interval i's label. */
  readonly labels: Uint32Array
  readonly labelSets: number[][]
}

/** Words per chunk of 32 slots, and per child node of 256 slots. */
const CHUNK_WORDS = 4
const NODE_WORDS = 8 * CHUNK_WORDS
/**
 * A table of more intervals than this gets a 65,536-slot root (32 KB of chunks) instead of a
 * 256-slot one (128 bytes): trust lists and the handset tables of a typical policy are a handful
 * of intervals and stay small, a routing table saves a level.
 */
const SMALL_TABLE_INTERVALS = 1024
/**
 * A slot holding at most this many intervals gets a list of them instead of a child node: as many
 * as fit in LIST_WORDS (1 + m * K + m + 1 words for m boundaries). An IPv6 prefix alone under its
 * /32 is three intervals: one 64-byte list, against two nodes of 128 bytes each and two more
 * cache misses on the way down. One-word keys get lists as large as a node (measured on
 * 1,000,000 IPv4 prefixes with bench/peers.js: a /16 of up to 16 intervals is then one 128-byte
 * read and a scan, where a node was a chunk and a leaf, two misses; 87 against 101 ns a lookup).
 */
const LIST_INTERVALS: Record<KeyWords, number> = { 1: 16, 2: 5, 4: 3 }
/** Words of a list: its boundary count, its boundaries' start words, and its labels. */
const LIST_WORDS: Record<KeyWords, number> = { 1: 32, 2: 16, 4: 16 }

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

  private grow(capacity = this.depths.length * 2): void {
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
   * Makes room for `more` entries at once: a builder told its size up front never copies its
   * arrays as it grows (at 1,000,000 prefixes, doubling from 64 copied them fifteen times).
   */
  reserve(more: number): void {
    if (this.depths.length < this.count + more) this.grow(this.count + more)
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
    const intervals = this.intervals()
    const K = this.keyWords
    return { keyWords: K, count: intervals.count, ...buildTrie(K, intervals), labelSets: intervals.labelSets }
  }

  /**
   * The prefixes flattened into sorted, disjoint intervals, before any index is built over them:
   * what the trie answers from, and what a plain binary search would search.
   */
  intervals(): Intervals {
    const order = this.sortedOrder()
    // Gathered into sorted order once, so the sweep reads each array front to back. Read through
    // `order` in the sweep, an entry's start, last and set were cache misses in a loop where each
    // entry waits for the one before; here the reads are independent, and the processor overlaps
    // them (a 1,000,000-prefix IPv4 compile in a scratch loop: medians of 519–538 ms before,
    // 215–474 ms after, the spread the collector's).
    const K = this.keyWords
    const n = order.length
    const starts = new Uint32Array(n * K)
    const lasts = new Uint32Array(n * K)
    const sets = new Uint32Array(n)
    for (let i = 0; i < n; i++) {
      const entry = order[i] as number
      for (let w = 0; w < K; w++) {
        starts[i * K + w] = this.starts[entry * K + w] as number
        lasts[i * K + w] = this.lasts[entry * K + w] as number
      }
      sets[i] = this.sets[entry] as number
    }
    return flatten(K, n, starts, lasts, sets)
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
  n: number,
  entryStarts: Uint32Array,
  entryLasts: Uint32Array,
  entrySets: Uint32Array,
): Intervals {
  const labels = new LabelInterner()
  // Enough for every boundary: the origin, and at most a start and an after-end per range.
  const capacity = Math.max(INITIAL_CAPACITY, n * 2 + 1)
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

  for (let entry = 0; entry < n; entry++) {
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

  return { count, starts: outStarts, labels: outLabels, labelSets: labels.sets }
}

/** Number of set bits in a 32-bit word. */
function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555)
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

/** A growable Uint32Array. */
class Words {
  array: Uint32Array
  length = 0
  constructor(capacity: number) {
    this.array = new Uint32Array(capacity)
  }

  /** Reserves `n` zeroed words at the end; returns their offset. */
  reserve(n: number): number {
    const at = this.length
    if (at + n > this.array.length) {
      const bigger = new Uint32Array(Math.max(this.array.length * 2, at + n))
      bigger.set(this.array.subarray(0, at))
      this.array = bigger
    }
    this.length += n
    return at
  }

  push(value: number): void {
    // Reserve first: it may replace `array`.
    const at = this.reserve(1)
    this.array[at] = value
  }

  /** The words written, in a buffer of their own (a worker transfers every table's buffers). */
  done(): Uint32Array {
    return this.array.slice(0, this.length)
  }
}

/**
 * Builds the trie over the sorted intervals (see the layout at the top of the file). A node
 * covering intervals lo .. hi (lo the one holding the node's first key) is filled by one walk
 * over the intervals that start inside it, grouped by their digit at the node's level: a digit
 * with a single interval starting exactly on its slot's first key starts a run of leaves there,
 * any other holds a boundary inside the slot and gets a child. Children are placed together
 * after their parent is filled, and filled in turn from a work list.
 */
function buildTrie(
  K: KeyWords,
  { starts, labels, count }: Intervals,
): { rootBits: number; nodes: Uint32Array; leaves: Uint32Array } {
  const rootBits = count > SMALL_TABLE_INTERVALS ? 16 : 8
  const nodes = new Words(Math.max(1024, (count >>> 2) * NODE_WORDS))
  const leaves = new Words(Math.max(1024, count + 1))
  leaves.push(0)
  const childBits = new Uint32Array(1 << 11)
  const leafBits = new Uint32Array(1 << 11)
  const setBit = (bits: Uint32Array, slot: number): void => {
    bits[slot >>> 5] = ((bits[slot >>> 5] as number) | (1 << (slot & 31))) >>> 0
  }
  // The node's children in slot order: slot, lo, hi, and 1 for a list or 0 for a node.
  const items: number[] = []
  const listMax = LIST_INTERVALS[K]
  const listWords = LIST_WORDS[K]
  // Work list: node offset, bit offset of its digit, lo, hi.
  const work: number[] = [nodes.reserve((1 << rootBits) / 8), 0, 0, count - 1]
  while (work.length > 0) {
    const hi = work.pop() as number
    const lo = work.pop() as number
    const offset = work.pop() as number
    const base = work.pop() as number
    const width = offset === 0 ? rootBits : 8
    const chunks = (1 << width) >>> 5
    const w = offset >>> 5
    const shift = 32 - (offset & 31) - width
    const below = shift === 0 ? 0 : 0xffffffff >>> (32 - shift)
    const digit = (j: number): number => ((starts[j * K + w] as number) >>> shift) & ((1 << width) - 1)
    const aligned = (j: number): boolean => {
      if (((starts[j * K + w] as number) & below) !== 0) return false
      for (let k = w + 1; k < K; k++) if (starts[j * K + k] !== 0) return false
      return true
    }
    childBits.fill(0, 0, chunks)
    leafBits.fill(0, 0, chunks)
    items.length = 0
    const firstLeaf = leaves.length
    let runLabel = -1
    const run = (slot: number, label: number): void => {
      if (label === runLabel) return
      runLabel = label
      setBit(leafBits, slot)
      leaves.push(label)
    }
    // Slots from `next` on, up to the next group's digit, lie inside interval `current`.
    let next = 0
    let current = lo
    let size = 0
    for (let j = lo + 1; j <= hi;) {
      const c = digit(j)
      if (c > next) run(next, labels[current] as number)
      let g = j
      while (g < hi && digit(g + 1) === c) g++
      if (g === j && aligned(j)) {
        next = c
      } else {
        const from = aligned(j) ? j : j - 1
        const list = g - from + 1 <= listMax ? 1 : 0
        setBit(childBits, c)
        if (list === 1) setBit(leafBits, c)
        items.push(c, from, g, list)
        size += list === 1 ? listWords : NODE_WORDS
        next = c + 1
      }
      current = g
      j = g + 1
    }
    if (next < 1 << width) run(next, labels[current] as number)
    // The children, together, in slot order; lists are filled now, nodes from the work list.
    let item = items.length > 0 ? nodes.reserve(size) : 0
    let i = 0
    let runs = 0
    for (let k = 0; k < chunks; k++) {
      const at = base + k * CHUNK_WORDS
      const cb = childBits[k] as number
      const lb = leafBits[k] as number
      nodes.array[at] = cb
      nodes.array[at + 1] = lb
      nodes.array[at + 2] = item
      nodes.array[at + 3] = firstLeaf + runs - 1
      runs += popcount(lb & ~cb)
      for (; i < items.length && (items[i] as number) < (k + 1) * 32; i += 4) {
        const from = items[i + 1] as number
        const to = items[i + 2] as number
        if (items[i + 3] === 1) {
          const list = nodes.array
          list[item] = to - from
          let at = item + 1
          for (let j = from + 1; j <= to; j++) for (let w = 0; w < K; w++) list[at++] = starts[j * K + w] as number
          for (let j = from; j <= to; j++) list[at++] = labels[j] as number
          item += listWords
        } else {
          work.push(item, offset + width, from, to)
          item += NODE_WORDS
        }
      }
    }
  }
  return { rootBits, nodes: nodes.done(), leaves: leaves.done() }
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

/** Label of a 1-word key (IPv4). The hot path: no allocation, no generic loop. */
export function lookup1(table: RangeTable, key: number): number {
  const nodes = table.nodes
  let shift = 32 - table.rootBits
  let digit = key >>> shift
  let at = (digit >>> 5) * CHUNK_WORDS
  for (;;) {
    const bit = digit & 31
    const mask = (2 << bit) - 1
    const children = nodes[at] as number
    const leaves = nodes[at + 1] as number
    if (((children >>> bit) & 1) === 0) {
      return table.leaves[(nodes[at + 3] as number) + popcount(leaves & ~children & mask)] as number
    }
    // Children before this one: for one-word keys, lists and nodes are the same size.
    at = (nodes[at + 2] as number) + NODE_WORDS * popcount(children & (mask >>> 1))
    if (((leaves >>> bit) & 1) !== 0) {
      const boundaries = nodes[at] as number
      let i = 0
      while (i < boundaries && (nodes[at + 1 + i] as number) <= key) i++
      return nodes[at + 1 + boundaries + i] as number
    }
    shift -= 8
    digit = (key >>> shift) & 255
    at += (digit >>> 5) * CHUNK_WORDS
  }
}

/** Label of a key of `K` words held in `key`. */
function lookupWords(table: RangeTable, key: Uint32Array, K: 2 | 4): number {
  const nodes = table.nodes
  const listWords = LIST_WORDS[K]
  let offset = 0
  let width = table.rootBits
  let digit = (key[0] as number) >>> (32 - width)
  let at = (digit >>> 5) * CHUNK_WORDS
  for (;;) {
    const bit = digit & 31
    const mask = (2 << bit) - 1
    const children = nodes[at] as number
    const leaves = nodes[at + 1] as number
    if (((children >>> bit) & 1) === 0) {
      return table.leaves[(nodes[at + 3] as number) + popcount(leaves & ~children & mask)] as number
    }
    // Children before this one: lists of listWords, plus what each node takes beyond a list.
    const before = mask >>> 1
    at =
      (nodes[at + 2] as number) +
      listWords * popcount(children & before) +
      (NODE_WORDS - listWords) * popcount(children & ~leaves & before)
    if (((leaves >>> bit) & 1) !== 0) {
      const boundaries = nodes[at] as number
      // The boundaries share the key's first `offset` bits: compare from the word holding the digit.
      const first = offset >>> 5
      let i = 0
      for (; i < boundaries; i++) {
        const start = at + 1 + i * K
        let w = first
        while (w < K - 1 && nodes[start + w] === key[w]) w++
        if ((nodes[start + w] as number) > (key[w] as number)) break
      }
      return nodes[at + 1 + boundaries * K + i] as number
    }
    offset += width
    width = 8
    digit = ((key[offset >>> 5] as number) >>> (24 - (offset & 31))) & 255
    at += (digit >>> 5) * CHUNK_WORDS
  }
}

const key2 = new Uint32Array(2)

/** Label of a 2-word key (MSISDN). */
export function lookup2(table: RangeTable, hiWord: number, loWord: number): number {
  key2[0] = hiWord
  key2[1] = loWord
  return lookupWords(table, key2, 2)
}

/** Label of a 4-word key (IPv6) held in `key[0..3]`. */
export function lookup4(table: RangeTable, key: Uint32Array): number {
  return lookupWords(table, key, 4)
}
