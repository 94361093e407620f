import t from 'tap'
import fc from 'fast-check'
import {
  lookup1,
  lookup2,
  lookup4,
  RangeTableBuilder,
  type Intervals,
  type RangeTable,
} from '../src/table/range-table.js'
import { maskWord } from '../src/facts/address.js'
import { msisdnKey, msisdnPrefixRange, splitKey } from '../src/facts/msisdn.js'

const SEED = 20261122
const RUNS = 200

interface Prefix {
  words: number[]
  length: number
  set: number
}

/** The golden matcher: every set whose prefix contains the address, by a linear scan. */
function golden(prefixes: Prefix[], address: number[]): number[] {
  const sets = new Set<number>()
  for (const p of prefixes) {
    if (p.words.every((w, i) => ((address[i] as number) & maskWord(p.length, i)) >>> 0 === w)) sets.add(p.set)
  }
  return [...sets].sort((a, b) => a - b)
}

function masked(address: number[], length: number): number[] {
  return address.map((w, i) => (w & maskWord(length, i)) >>> 0)
}

/** Prefixes drawn around a few seed addresses so that nesting and overlaps are common. */
function prefixesArb(words: 1 | 4) {
  const bits = words * 32
  const address = fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: words, maxLength: words })
  return fc.array(address, { minLength: 1, maxLength: 4 }).chain((seeds) =>
    fc
      .array(
        fc.record({
          seed: fc.oneof(fc.constantFrom(...seeds), address),
          length: fc.oneof(fc.integer({ min: 0, max: bits }), fc.constantFrom(0, bits, 8, 16, 24)),
          set: fc.integer({ min: 0, max: 5 }),
        }),
        { minLength: 0, maxLength: 40 },
      )
      .map((raw) => ({
        seeds,
        prefixes: raw.map((r): Prefix => ({ words: masked(r.seed, r.length), length: r.length, set: r.set })),
      })),
  )
}

/** Addresses at and around every prefix boundary, plus the seeds themselves. */
function probes(prefixes: Prefix[], seeds: number[][], words: number): number[][] {
  const out: number[][] = [...seeds, new Array(words).fill(0), new Array(words).fill(0xffffffff)]
  for (const p of prefixes) {
    const last = p.words.map((w, i) => (w | ~maskWord(p.length, i)) >>> 0)
    out.push(p.words, last, step(p.words, -1), step(last, 1))
  }
  return out
}

function step(key: number[], delta: 1 | -1): number[] {
  const out = key.slice()
  for (let i = out.length - 1; i >= 0; i--) {
    const v = (out[i] as number) + delta
    out[i] = v >>> 0
    if (v >= 0 && v <= 0xffffffff) break
  }
  return out
}

/** The property for one key width: the table's answer for every probe equals the linear scan's. */
function agreesWithLinearScan(words: 1 | 4) {
  return fc.property(prefixesArb(words), ({ seeds, prefixes }) => {
    const builder = new RangeTableBuilder(words)
    for (const p of prefixes) builder.addPrefix(p.words, p.length, p.set)
    const table = builder.compile()
    for (const probe of probes(prefixes, seeds, words)) {
      const label = words === 1 ? lookup1(table, probe[0] as number) : lookup4(table, Uint32Array.from(probe))
      if (JSON.stringify(table.labelSets[label]) !== JSON.stringify(golden(prefixes, probe))) return false
    }
    return true
  })
}

t.test('IPv4 table answers exactly the sets a linear scan finds', async (t) => {
  fc.assert(agreesWithLinearScan(1), { seed: SEED, numRuns: RUNS })
  t.pass('no counterexample')
})

t.test('IPv6 table answers exactly the sets a linear scan finds', async (t) => {
  fc.assert(agreesWithLinearScan(4), { seed: SEED, numRuns: RUNS })
  t.pass('no counterexample')
})

t.test('MSISDN digit table answers exactly the sets startsWith finds', async (t) => {
  const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`))
  fc.assert(
    fc.property(
      digits(1, 6).chain((stem) =>
        fc.record({
          prefixes: fc.array(
            fc.record({
              digits: fc.oneof(
                digits(1, 15),
                digits(0, 6).map((s) => (stem + s).slice(0, 15)),
              ),
              set: fc.integer({ min: 0, max: 4 }),
            }),
            { maxLength: 30 },
          ),
          numbers: fc.array(
            fc.oneof(
              digits(1, 15),
              digits(0, 12).map((s) => (stem + s).slice(0, 15)),
            ),
            { maxLength: 30 },
          ),
        }),
      ),
      ({ prefixes, numbers }) => {
        const builder = new RangeTableBuilder(2)
        for (const p of prefixes) {
          const { start, last } = msisdnPrefixRange(p.digits)
          builder.add(start, last, p.digits.length, p.set)
        }
        const table = builder.compile()
        for (const number of [...numbers, ...prefixes.map((p) => p.digits)]) {
          const [hi, lo] = splitKey(msisdnKey(number))
          const got = table.labelSets[lookup2(table, hi, lo)]
          const want = [...new Set(prefixes.filter((p) => number.startsWith(p.digits)).map((p) => p.set))].sort(
            (a, b) => a - b,
          )
          if (JSON.stringify(got) !== JSON.stringify(want)) return false
        }
        return true
      },
    ),
    { seed: SEED, numRuns: RUNS },
  )
  t.pass('no counterexample')
})

t.test('edge prefixes: /0 covers everything, /32 and /128 cover one address', async (t) => {
  const v4 = new RangeTableBuilder(1)
  v4.addPrefix([0], 0, 0)
  v4.addPrefix([0xffffffff], 32, 1)
  v4.addPrefix([0], 32, 2)
  const table4 = v4.compile()
  t.same(table4.labelSets[lookup1(table4, 0)], [0, 2])
  t.same(table4.labelSets[lookup1(table4, 1)], [0])
  t.same(table4.labelSets[lookup1(table4, 0xffffffff)], [0, 1])
  const v6 = new RangeTableBuilder(4)
  v6.addPrefix([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], 128, 3)
  const table6 = v6.compile()
  t.same(table6.labelSets[lookup4(table6, Uint32Array.of(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff))], [3])
  t.same(table6.labelSets[lookup4(table6, Uint32Array.of(0xffffffff, 0xffffffff, 0xffffffff, 0xfffffffe))], [])
  const crossed = new RangeTableBuilder(1)
  crossed.addPrefix([0x0a000000], 8, 1)
  crossed.addPrefix([0x0a010000], 16, 2)
  crossed.addPrefix([0x14000000], 8, 2)
  crossed.addPrefix([0x14010000], 16, 1)
  const crossedTable = crossed.compile()
  t.equal(lookup1(crossedTable, 0x0a010101), lookup1(crossedTable, 0x14010101), '{1,2} reached two ways is one label')
  t.equal(table6.count, 2, 'one boundary at the origin and one for the /128, nothing after the end of the space')
})

t.test('a builder grows past its initial capacity and keeps every prefix', async (t) => {
  const builder = new RangeTableBuilder(1)
  for (let i = 0; i < 1000; i++) builder.addPrefix([(i << 8) >>> 0], 24, i % 7)
  t.equal(builder.size, 1000)
  const table = builder.compile()
  for (let i = 0; i < 1000; i += 97) t.same(table.labelSets[lookup1(table, ((i << 8) | 200) >>> 0)], [i % 7])
  t.same(table.labelSets[lookup1(table, 1000 << 8)], [])
})

t.test('a builder told its size up front compiles the same table, and still grows past it', async (t) => {
  const grown = new RangeTableBuilder(1)
  const reserved = new RangeTableBuilder(1)
  reserved.reserve(0)
  reserved.reserve(500)
  for (let i = 0; i < 1000; i++) {
    grown.addPrefix([(i << 8) >>> 0], 24, i % 7)
    reserved.addPrefix([(i << 8) >>> 0], 24, i % 7)
    if (i === 600) reserved.reserve(10)
  }
  t.equal(reserved.size, 1000)
  t.same(reserved.compile(), grown.compile())
})

t.test('dense clusters get child nodes down to the last byte, and still agree with a linear scan', async (t) => {
  const prefixes: Prefix[] = []
  // 30 /24s, each holding every other /32 of a different set: hundreds of intervals per root slot.
  for (let net = 0; net < 30; net++) {
    for (let host = 0; host < 256; host += 2) {
      prefixes.push({ words: [(0x0a000000 | (net << 8) | host) >>> 0], length: 32, set: (host >> 1) % 3 })
    }
  }
  prefixes.push({ words: [0x0a000000], length: 16, set: 4 })
  const builder = new RangeTableBuilder(1)
  for (const p of prefixes) builder.addPrefix(p.words, p.length, p.set)
  const table = builder.compile()
  t.ok(table.nodes.length > (1 << 16) / 8 + 30 * 32, 'a child node for each /24, under the 10.0/16 node')
  for (let net = 0; net < 31; net++) {
    for (let host = 0; host < 256; host += 1) {
      const address = [(0x0a000000 | (net << 8) | host) >>> 0]
      if (
        JSON.stringify(table.labelSets[lookup1(table, address[0] as number)]) !==
        JSON.stringify(golden(prefixes, address))
      ) {
        t.fail(`10.0.${net}.${host}`)
        return
      }
    }
  }
  t.pass('every address of the cluster agrees')
})

t.test('IPv6 clusters deep in the low words are indexed past the first word', async (t) => {
  const prefixes: Prefix[] = []
  for (let host = 0; host < 64; host += 2) {
    prefixes.push({ words: [0x20010db8, 0, 0, host], length: 128, set: host % 3 })
  }
  const builder = new RangeTableBuilder(4)
  for (const p of prefixes) builder.addPrefix(p.words, p.length, p.set)
  const table = builder.compile()
  for (let host = 0; host < 70; host++) {
    const address = [0x20010db8, 0, 0, host]
    t.same(
      table.labelSets[lookup4(table, Uint32Array.from(address))],
      golden(prefixes, address),
      `2001:db8::${host.toString(16)}`,
    )
  }
})

/** The reference for large tables: a binary search over the table's own sorted intervals. */
function searchIntervals({ starts, labels, count }: Intervals, key: number[]): number {
  const K = key.length
  let lo = 0
  let hi = count - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    let le = true
    for (let w = 0; w < K; w++) {
      const s = starts[mid * K + w] as number
      if (s !== key[w]) {
        le = s < (key[w] as number)
        break
      }
    }
    if (le) lo = mid
    else hi = mid - 1
  }
  return labels[lo] as number
}

function lookupAny(table: RangeTable, key: number[]): number {
  if (key.length === 1) return lookup1(table, key[0] as number)
  if (key.length === 2) return lookup2(table, key[0] as number, key[1] as number)
  return lookup4(table, Uint32Array.from(key))
}

/**
 * Thousands of prefixes clustered under a few seeds (so that slots hold one interval, a short
 * list or a child node, at every level of the key): enough intervals for the 65,536-slot root and
 * for the arrays to grow several times.
 */
function largeArb(words: 1 | 2 | 4) {
  const bits = words * 32
  const address = fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: words, maxLength: words })
  return fc
    .record({
      seeds: fc.array(address, { minLength: 1, maxLength: 6 }),
      count: fc.integer({ min: 600, max: 3000 }),
      salt: fc.integer({ min: 1, max: 0x7fffffff }),
    })
    .map(({ seeds, count, salt }) => {
      let state = salt
      const next = (): number => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0
        return state
      }
      const prefixes: Prefix[] = []
      for (let i = 0; i < count; i++) {
        const seed = seeds[next() % seeds.length] as number[]
        const length = next() % (bits + 1)
        // Random bits below a shared top: siblings and nested prefixes under each seed.
        const shared = next() % (length + 1)
        const words = seed.map((w, k) => ((w & maskWord(shared, k)) | (next() & ~maskWord(shared, k))) >>> 0)
        prefixes.push({ words: masked(words, length), length, set: next() % 9 })
      }
      return { seeds, prefixes }
    })
}

for (const words of [1, 2, 4] as const) {
  t.test(`a large ${words}-word table answers what a search of its intervals and a linear scan answer`, async (t) => {
    fc.assert(
      fc.property(largeArb(words), ({ seeds, prefixes }) => {
        const builder = new RangeTableBuilder(words)
        for (const p of prefixes) builder.addPrefix(p.words, p.length, p.set)
        const table = builder.compile()
        if (table.count > 1024 && table.rootBits !== 16) return false
        const intervals = builder.intervals()
        const all = probes(prefixes, seeds, words)
        for (const probe of all) if (lookupAny(table, probe) !== searchIntervals(intervals, probe)) return false
        // The reference itself, against the linear scan, on a sample of the probes.
        for (let i = 0; i < all.length; i += 37) {
          const probe = all[i] as number[]
          const sets = intervals.labelSets[searchIntervals(intervals, probe)]
          if (JSON.stringify(sets) !== JSON.stringify(golden(prefixes, probe))) return false
        }
        return true
      }),
      { seed: SEED, numRuns: 25 },
    )
    t.pass('no counterexample')
  })
}
