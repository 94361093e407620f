// Lookup benchmark for our tables: string address in (strict parse included, as the hook does
// it), label out. Hits and misses are reported apart.
import { parseAddress } from '../dist/facts/address.js'
import { lookup1, lookup2, lookup4, RangeTableBuilder } from '../dist/table/range-table.js'
import { msisdnKey, msisdnPrefixRange, normalizeMsisdn, splitKey } from '../dist/facts/msisdn.js'
import {
  ipv4Prefixes,
  ipv6Prefixes,
  msisdnPrefixes,
  rng,
  v4Inside,
  v6Inside,
  randomV4,
  randomV6,
  median,
} from './lib/data.js'

// BENCH_FAMILY: 4, 6 or msisdn.
const family = process.env.BENCH_FAMILY ?? '4'
const size = Number(process.env.BENCH_SIZE ?? 1_000_000)
const queries = Number(process.env.BENCH_QUERIES ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 7)
const random = rng(99)
const buffer = new Uint32Array(4)
let lookup, hit, miss, table, baseline

if (family === 'msisdn') {
  // As the hook does it: normalize the header value, then look the international number up.
  const prefixes = msisdnPrefixes(size)
  const builder = new RangeTableBuilder(2)
  for (const digits of prefixes) {
    const { start, last } = msisdnPrefixRange(digits)
    builder.add(start, last, digits.length, 0)
  }
  table = builder.compile()
  const format = { countryCode: '86', numbering: 'international', allowDoubleZero: false }
  lookup = (text) => {
    const number = normalizeMsisdn(text, format)
    if (number === null) return 0
    const [hiWord, loWord] = splitKey(msisdnKey(number.international))
    return lookup2(table, hiWord, loWord)
  }
  const extend = (digits) => {
    let out = digits
    while (out.length < 12) out += Math.floor(random() * 10)
    return out
  }
  hit = () => extend(prefixes[Math.floor(random() * size)])
  miss = () => extend('447')
  // The baseline an implementer reaches for first: one Set per prefix length, probed with a
  // substring of each length present.
  const byLength = new Map()
  for (const digits of prefixes) {
    if (!byLength.has(digits.length)) byLength.set(digits.length, new Set())
    byLength.get(digits.length).add(digits)
  }
  const lengths = [...byLength.keys()].sort((a, b) => a - b)
  baseline = (text) => {
    const number = normalizeMsisdn(text, format)
    if (number === null) return 0
    for (const length of lengths) if (byLength.get(length).has(number.international.slice(0, length))) return 1
    return 0
  }
} else {
  const v4 = family === '4'
  const prefixes = v4 ? ipv4Prefixes(size) : ipv6Prefixes(size)
  const builder = new RangeTableBuilder(v4 ? 1 : 4)
  for (const p of prefixes) builder.addPrefix(v4 ? [p.network] : p.words, p.length, 0)
  table = builder.compile()
  lookup = v4
    ? (text) => (parseAddress(text, buffer) === 4 ? lookup1(table, buffer[0]) : 0)
    : (text) => (parseAddress(text, buffer) === 6 ? lookup4(table, buffer) : 0)
  hit = () => (v4 ? v4Inside : v6Inside)(prefixes[Math.floor(random() * size)], random)
  miss = () => (v4 ? randomV4 : randomV6)(random)
}

const hits = []
const misses = []
while (hits.length < queries) hits.push(hit())
for (let tries = 0; misses.length < queries && tries < queries * 50; tries++) {
  const text = miss()
  if (lookup(text) === 0) misses.push(text)
}
for (const q of hits) if (lookup(q) === 0) throw new Error(`hit query ${q} missed`)
// Strings from the HTTP parser are flat; generated ones are concatenations. Flatten them alike.
const flat = (list) => JSON.parse(JSON.stringify(list))

function measure(list, fn = lookup) {
  const samples = []
  let sink = 0
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < list.length; i++) sink += fn(list[i])
    samples.push(Number(process.hrtime.bigint() - start) / list.length)
  }
  if (sink === -1) console.log(sink)
  return Math.round(median(samples))
}
const result = {
  suite: 'lookup',
  family,
  prefixes: size,
  intervals: table.count,
  hitNs: measure(flat(hits)),
  missNs: measure(flat(misses)),
}
if (baseline) {
  for (const q of [...hits.slice(0, 500), ...misses.slice(0, 500)]) {
    if ((lookup(q) !== 0) !== (baseline(q) !== 0)) throw new Error(`baseline disagrees on ${q}`)
  }
  Object.assign(result, {
    baselineHitNs: measure(flat(hits), baseline),
    baselineMissNs: measure(flat(misses), baseline),
  })
}
console.log(JSON.stringify(result))
