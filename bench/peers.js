// Address matching against the alternatives, string address in (parsing included), boolean out:
// our range table, net.BlockList, ipaddr.js subnetMatch, cidr-matcher, arkime-iptrie, and a plain
// sorted-array binary search as the baseline. Hits and misses apart. Each peer gets a time budget
// per measurement; one that cannot do BENCH_MIN lookups in it is reported as too slow, with the
// rate it managed. All peers are checked against ours on a sample of hits and misses.
import { BlockList } from 'node:net'
import { createRequire } from 'node:module'
import ipaddr from 'ipaddr.js'
import CidrMatcher from 'cidr-matcher'
import { parseAddress } from '../dist/facts/address.js'
import { lookup1, lookup4, RangeTableBuilder } from '../dist/table/range-table.js'
import { ipv4Prefixes, ipv6Prefixes, rng, v4Inside, v6Inside, randomV4, randomV6, median } from './lib/data.js'

const { IPTrie } = createRequire(import.meta.url)('arkime-iptrie')
const family = Number(process.env.BENCH_FAMILY ?? 4)
const size = Number(process.env.BENCH_SIZE ?? 100_000)
const budgetMs = Number(process.env.BENCH_BUDGET_MS ?? 1500)
const minLookups = Number(process.env.BENCH_MIN ?? 1000)
const queries = 20_000
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

const peers = [
  ['cdni-authz range table', buildOurs],
  ['sorted array (baseline)', buildSortedArray],
  ['arkime-iptrie', buildIpTrie],
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

/** ns per lookup within the budget, and whether the peer did at least BENCH_MIN lookups. */
function measure(lookup, list) {
  const samples = []
  let done = 0
  const deadline = performance.now() + budgetMs
  let sink = 0
  while (performance.now() < deadline && samples.length < 5) {
    const start = process.hrtime.bigint()
    let i = 0
    for (; i < list.length; i++) {
      if (lookup(list[i])) sink++
      if ((i & 15) === 15 && performance.now() > deadline) break
    }
    const n = Math.min(i + 1, list.length)
    samples.push(Number(process.hrtime.bigint() - start) / n)
    done += n
  }
  return { ns: Math.round(median(samples)), lookups: done, completed: done >= minLookups, sink }
}

for (const [name, build] of peers) {
  const t0 = performance.now()
  const lookup = build()
  const buildMs = Math.round(performance.now() - t0)
  // Agreement on a sample: every peer must answer what ours answers.
  const sample = [...hits.slice(0, 100), ...misses.slice(0, 100)]
  const disagreements = sample.filter((text) => lookup(text) !== ours(text)).length
  const hit = measure(lookup, hits)
  const miss = measure(lookup, misses)
  console.log(
    JSON.stringify({
      suite: 'peers',
      peer: name,
      family,
      prefixes: size,
      buildMs,
      hitNs: hit.ns,
      missNs: miss.ns,
      tooSlow: !hit.completed || !miss.completed,
      lookupsMeasured: hit.lookups + miss.lookups,
      disagreements,
    }),
  )
}
