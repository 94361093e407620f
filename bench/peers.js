// Address matching against the alternatives, string address in (parsing included), boolean out:
// our range table, net.BlockList, ipaddr.js subnetMatch, cidr-matcher, arkime-iptrie, mmdb-lib
// (MaxMind's reader, over a database of the same prefixes), and a plain sorted-array binary search
// as the baseline. Hits and misses apart. All peers are checked against ours on a sample of hits
// and misses. Each peer first gets a time budget for one pass over the queries; one that cannot
// do BENCH_MIN lookups in it is reported as too slow, with the rate it managed, and dropped. The
// others are then measured in interleaved rounds (every peer once per round, so whatever the
// machine does in a round hits all of them), and each line says how our time compares with the
// peer's in this run (oursOverPeer: ours / the peer's, per lookup, hit and miss).
import { BlockList } from 'node:net'
import { createRequire } from 'node:module'
import ipaddr from 'ipaddr.js'
import CidrMatcher from 'cidr-matcher'
import { Reader } from 'mmdb-lib'
import { parseAddress } from '../dist/facts/address.js'
import { lookup1, lookup4, RangeTableBuilder } from '../dist/table/range-table.js'
import { ipv4Prefixes, ipv6Prefixes, rng, v4Inside, v6Inside, randomV4, randomV6, median } from './lib/data.js'
import { buildMmdb } from './lib/mmdb.js'

const { IPTrie } = createRequire(import.meta.url)('arkime-iptrie')
const family = Number(process.env.BENCH_FAMILY ?? 4)
const size = Number(process.env.BENCH_SIZE ?? 100_000)
const budgetMs = Number(process.env.BENCH_BUDGET_MS ?? 1500)
const minLookups = Number(process.env.BENCH_MIN ?? 1000)
const queries = Number(process.env.BENCH_QUERIES ?? 20_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const v4 = family === 4
const prefixes = v4 ? ipv4Prefixes(size) : ipv6Prefixes(size)
const buffer = new Uint32Array(4)

function builder() {
  const builder = new RangeTableBuilder(v4 ? 1 : 4)
  for (const p of prefixes) builder.addPrefix(v4 ? [p.network] : p.words, p.length, 0)
  return builder
}

function buildOurs() {
  const table = builder().compile()
  return v4
    ? (text) => parseAddress(text, buffer) === 4 && lookup1(table, buffer[0]) !== 0
    : (text) => parseAddress(text, buffer) === 6 && lookup4(table, buffer) !== 0
}

// The baseline: the same disjoint intervals, found by a binary search over the whole array
// (start words and label side by side, so a step reads one cache line).
function buildSortedArray() {
  const { starts, labels, count } = builder().intervals()
  const K = v4 ? 1 : 4
  const S = K + 1
  const entries = new Uint32Array(count * S)
  for (let i = 0; i < count; i++) {
    for (let w = 0; w < K; w++) entries[i * S + w] = starts[i * K + w]
    entries[i * S + K] = labels[i]
  }
  return (text) => {
    if (parseAddress(text, buffer) !== family) return false
    let lo = 0
    let hi = count - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      let le = true
      for (let w = 0; w < K; w++) {
        if (entries[mid * S + w] !== buffer[w]) {
          le = entries[mid * S + w] < buffer[w]
          break
        }
      }
      if (le) lo = mid
      else hi = mid - 1
    }
    return entries[lo * S + K] !== 0
  }
}

function buildBlockList() {
  const list = new BlockList()
  const type = v4 ? 'ipv4' : 'ipv6'
  for (const p of prefixes) list.addSubnet(p.text.split('/')[0], p.length, type)
  return (text) => list.check(text, type)
}

function buildIpaddr() {
  const ranges = { hit: prefixes.map((p) => ipaddr.parseCIDR(p.text)) }
  return (text) => {
    if (!ipaddr.isValid(text)) return false
    const address = ipaddr.parse(text)
    if (address.kind() !== (v4 ? 'ipv4' : 'ipv6')) return false
    return ipaddr.subnetMatch(address, ranges, 'miss') === 'hit'
  }
}

function buildCidrMatcher() {
  const matcher = new CidrMatcher(prefixes.map((p) => p.text))
  return (text) => matcher.contains(text)
}

function buildIpTrie() {
  const trie = new IPTrie()
  for (const p of prefixes) trie.add(p.text.split('/')[0], p.length, true)
  // find() gives the stored value, or null/undefined for no match: one call per lookup.
  return (text) => trie.find(text) != null
}

function buildMmdbReader() {
  const reader = new Reader(
    buildMmdb(v4 ? prefixes.map((p) => ({ words: [p.network], length: p.length })) : prefixes, family),
  )
  // get() parses the text and walks the tree; null when no network holds the address.
  return (text) => reader.get(text) !== null
}

const peers = [
  ['cdni-authz range table', buildOurs],
  ['sorted array (baseline)', buildSortedArray],
  ['arkime-iptrie', buildIpTrie],
  ['mmdb-lib', buildMmdbReader],
  ['cidr-matcher', buildCidrMatcher],
  ['ipaddr.js subnetMatch', buildIpaddr],
  ['net.BlockList', buildBlockList],
]

const random = rng(7)
const ours = buildOurs()
const flat = (list) => JSON.parse(JSON.stringify(list))
const hitList = []
while (hitList.length < queries) hitList.push((v4 ? v4Inside : v6Inside)(prefixes[Math.floor(random() * size)], random))
const missList = []
for (let tries = 0; missList.length < queries && tries < queries * 100; tries++) {
  const text = (v4 ? randomV4 : randomV6)(random)
  if (!ours(text)) missList.push(text)
}
const hits = flat(hitList)
const misses = flat(missList)

/**
 * One pass over `list` within `budgetMs`: ns per lookup and the lookups done. Each peer gets a
 * loop compiled for it alone, as benchmark.js compiles each test's loop: one loop shared by seven
 * peers goes megamorphic from the second peer on, so V8 inlines no peer into it and every lookup
 * pays an indirect call, which coloured the cheapest peers most (ours at 1,000,000 IPv4
 * prefixes, five runs of each: 0.51–0.70 / 0.54–0.86 of the sorted array's time shared, against
 * 0.46–0.61 / 0.46–0.51 in loops of their own). The source names the peer, because V8 caches
 * compiled sources: the same text compiled again could share the first loop's feedback.
 */
const PASS_SOURCE = `return function pass(lookup, list, budgetMs) {
  const deadline = performance.now() + budgetMs
  let sink = 0
  const start = process.hrtime.bigint()
  let i = 0
  for (; i < list.length; i++) {
    if (lookup(list[i])) sink++
    if ((i & 15) === 15 && performance.now() > deadline) break
  }
  const n = Math.min(i + 1, list.length)
  return { ns: Number(process.hrtime.bigint() - start) / n, lookups: n, sink }
}`
// eslint-disable-next-line no-new-func -- a fresh function per peer is the point (see above).
const passFor = (name) => new Function(`${PASS_SOURCE}\n// ${name.replace(/\s+/g, ' ')}`)()

const measured = []
for (const [name, build] of peers) {
  const t0 = performance.now()
  const lookup = build()
  const buildMs = Math.round(performance.now() - t0)
  const pass = passFor(name)
  // Agreement on a sample: every peer must answer what ours answers.
  const sample = [...hits.slice(0, 100), ...misses.slice(0, 100)]
  const disagreements = sample.filter((text) => lookup(text) !== ours(text)).length
  // The first pass warms the peer up and tells whether it can be measured at all.
  const hit = pass(lookup, hits, budgetMs)
  const miss = pass(lookup, misses, budgetMs)
  const line = { suite: 'peers', peer: name, family, prefixes: size, queries, buildMs, disagreements }
  if (hit.lookups < minLookups || miss.lookups < minLookups) {
    const tooSlow = { hitNs: Math.round(hit.ns), missNs: Math.round(miss.ns), tooSlow: true }
    measured.push({ line: { ...line, ...tooSlow, lookupsMeasured: hit.lookups + miss.lookups } })
  } else {
    measured.push({ line, lookup, pass, hit: [], miss: [] })
  }
}
const timed = measured.filter((peer) => peer.lookup !== undefined)
// The slow peers' structures are garbage now: collected before the rounds, not during them.
globalThis.gc?.()
for (let r = 0; r < rounds; r++) {
  for (const peer of timed) {
    peer.hit.push(peer.pass(peer.lookup, hits, budgetMs).ns)
    peer.miss.push(peer.pass(peer.lookup, misses, budgetMs).ns)
  }
}
const oursTimed = timed[0]
for (const peer of measured) {
  if (peer.lookup !== undefined) {
    Object.assign(peer.line, {
      hitNs: Math.round(median(peer.hit)),
      missNs: Math.round(median(peer.miss)),
      tooSlow: false,
    })
  }
  const ratio = (a, b) => Math.round((a / b) * 1000) / 1000
  peer.line.oursOverPeer = {
    hit: ratio(oursTimed.line.hitNs, peer.line.hitNs),
    miss: ratio(oursTimed.line.missNs, peer.line.missNs),
  }
  console.log(JSON.stringify(peer.line))
}
