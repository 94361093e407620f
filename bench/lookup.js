// Lookup benchmark for our tables: string address in (strict parse included, as the hook does
// it), label out. Hits and misses are reported apart.
import { parseAddress } from '../dist/address.js'
import { lookup1, lookup4, RangeTableBuilder } from '../dist/range-table.js'
import { ipv4Prefixes, ipv6Prefixes, rng, v4Inside, v6Inside, randomV4, randomV6, median } from './lib/data.js'

const family = Number(process.env.BENCH_FAMILY ?? 4)
const size = Number(process.env.BENCH_SIZE ?? 1_000_000)
const queries = Number(process.env.BENCH_QUERIES ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 7)

const prefixes = family === 4 ? ipv4Prefixes(size) : ipv6Prefixes(size)
const builder = new RangeTableBuilder(family === 4 ? 1 : 4)
for (const p of prefixes) builder.addPrefix(family === 4 ? [p.network] : p.words, p.length, 0)
const table = builder.compile()
const buffer = new Uint32Array(4)
const lookup = family === 4
  ? (text) => (parseAddress(text, buffer) === 4 ? lookup1(table, buffer[0]) : 0)
  : (text) => (parseAddress(text, buffer) === 6 ? lookup4(table, buffer) : 0)

const random = rng(99)
const hits = []
const misses = []
while (hits.length < queries) hits.push(family === 4 ? v4Inside(prefixes[Math.floor(random() * size)], random) : v6Inside(prefixes[Math.floor(random() * size)], random))
while (misses.length < queries) {
  const text = family === 4 ? randomV4(random) : randomV6(random)
  if (lookup(text) === 0) misses.push(text)
}
for (const q of hits) if (lookup(q) === 0) throw new Error(`hit query ${q} missed`)
// Strings from the HTTP parser are flat; generated ones are concatenations. Flatten them alike.
const flat = (list) => JSON.parse(JSON.stringify(list))

function measure(list) {
  const samples = []
  let sink = 0
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < list.length; i++) sink += lookup(list[i])
    samples.push(Number(process.hrtime.bigint() - start) / list.length)
  }
  if (sink === -1) console.log(sink)
  return Math.round(median(samples))
}
console.log(JSON.stringify({ suite: 'lookup', family, prefixes: size, intervals: table.count, hitNs: measure(flat(hits)), missNs: measure(flat(misses)) }))
