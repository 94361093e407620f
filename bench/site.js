// RFC 8006 host and path selection: what choosing the governing node costs per request, with
// thousands of hosts and patterns, against deciding one seed-format policy in the same run (the
// work every request does anyway). Uncached (a fresh URL every time: the worst case, and a
// client spraying unique paths) and through the plugin's LRU cache (URLs that repeat).
// BENCH_HOSTS (default 5,000) hosts of BENCH_PATHS (default 20) patterns each.
import { LRUCache } from 'lru-cache'
import { compileMetadata } from '../dist/load/prepare.js'
import { selectNode, aclsAllow } from '../dist/policy/site.js'
import { createClientFacts } from '../dist/facts/facts.js'
import { decide } from '../dist/policy/decide.js'
import { parseAddress } from '../dist/facts/address.js'
import { ipv4Prefixes } from './lib/data.js'
import { nsPerCall } from './lib/timing.js'

const HOSTS = Number(process.env.BENCH_HOSTS ?? 5000)
const PATHS = Number(process.env.BENCH_PATHS ?? 20)
const context = { gatewaysConfigured: false, countryDatabase: false, asnDatabase: false }
const location = {
  'generic-metadata-type': 'MI.LocationACL',
  'generic-metadata-value': {
    locations: [
      {
        action: 'allow',
        footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': ipv4Prefixes(1000).map((p) => p.text) }],
      },
    ],
  },
}
const protocol = {
  'generic-metadata-type': 'MI.ProtocolACL',
  'generic-metadata-value': { 'protocol-acl': [{ action: 'allow', protocols: ['http/1.1', 'https/1.1'] }] },
}
const hosts = Array.from({ length: HOSTS }, (_, h) => ({
  host: `h${h}.example.com`,
  'host-metadata': {
    metadata: [location],
    paths: Array.from({ length: PATHS }, (_, p) => ({
      'path-pattern': { pattern: `/section${p}/*/video?.m3u8` },
      'path-metadata': { metadata: [protocol] },
    })),
  },
}))
const started = performance.now()
const site = compileMetadata({ hosts }, context)
const compileMs = performance.now() - started
if (!site.ok) throw new Error(JSON.stringify(site.errors))
const policy = compileMetadata(
  { deliveryCriteria: [{ region: { subnet: ipv4Prefixes(1000).map((p) => p.text) } }] },
  context,
)
if (!policy.ok) throw new Error('seed policy refused')

const facts = createClientFacts()
facts.sourceFamily = parseAddress('10.1.2.3', facts.source)
facts.protocol = 1
const scratch = new Uint32Array(64)
const N = 400_000
// The last pattern of each host matches: selection tries every one before it.
const urls = Array.from({ length: 4096 }, (_, i) => [
  `h${(i * 7919) % HOSTS}.example.com`,
  `/section${PATHS - 1}/x${i}/video1.m3u8?t=${i}`,
])

const time = (fn) => nsPerCall(fn, N)

const baseline = time(() => decide(policy.compiled, facts, scratch) >= 0)
const uncached = time((i) => {
  const [host, url] = urls[i & 4095]
  return selectNode(site.compiled, host, url) !== null
})
const cache = new LRUCache({ max: 10_000 })
const cached = time((i) => {
  const [host, url] = urls[i & 4095]
  const key = `${host} ${url.slice(0, url.indexOf('?'))}`
  let node = cache.get(key)
  if (node === undefined) cache.set(key, (node = selectNode(site.compiled, host, url)))
  return node !== null
})
const whole = time((i) => {
  const [host, url] = urls[i & 4095]
  const key = `${host} ${url.slice(0, url.indexOf('?'))}`
  let node = cache.get(key)
  if (node === undefined) cache.set(key, (node = selectNode(site.compiled, host, url)))
  return aclsAllow(node, facts, scratch)
})
console.log(
  JSON.stringify({
    suite: 'site',
    hosts: HOSTS,
    patternsPerHost: PATHS,
    compileMs: Math.round(compileMs),
    decideSeedNs: +baseline.ns.toFixed(0),
    selectUncachedNs: +uncached.ns.toFixed(0),
    selectCachedNs: +cached.ns.toFixed(0),
    selectAndDecideNs: +whole.ns.toFixed(0),
    ratioUncachedToDecide: +(uncached.ns / baseline.ns).toFixed(2),
    ratioCachedToDecide: +(cached.ns / baseline.ns).toFixed(2),
  }),
)
