// Country and AS lookups: what a request with country criteria pays for the database, against
// deciding the policy itself in the same run (the work every request does anyway), with the
// bundled country database (IPtoASN, about 860,000 tree nodes).
// - mmdb-lib: the reader's own get() on address text, no cache (what a plugin calling it would pay);
// - miss: our lookup when every address is new (more distinct addresses than the cache holds);
// - hit: our lookup on addresses seen before (4,096 clients cycling);
// - request: the hit lookup plus deciding a seed policy with a country region.
import { readFileSync } from 'node:fs'
import { Reader } from 'mmdb-lib'
import { BUNDLED_COUNTRY_DB, IpDatabase, fillGeoFacts } from '../dist/facts/ip-database.js'
import { createClientFacts } from '../dist/facts/facts.js'
import { decide } from '../dist/policy/decide.js'
import { compileMetadata } from '../dist/load/prepare.js'
import { ipv4Prefixes, rng, v4Text } from './lib/data.js'
import { nsPerCall } from './lib/timing.js'

const N = 400_000
const bytes = readFileSync(BUNDLED_COUNTRY_DB)

// Deterministic addresses spread over the IPv4 space, none private or reserved at /8.
const random = rng(0x2545f491)
const address = () => {
  for (;;) {
    const a = Math.floor(random() * 4294967296) >>> 0
    const first = a >>> 24
    if (first !== 0 && first !== 10 && first !== 127 && first < 224) return a
  }
}
const fresh = Array.from({ length: 1 << 20 }, address)
const freshText = fresh.map(v4Text)
const clients = fresh.slice(0, 4096)

const time = (fn) => nsPerCall(fn, N)

const context = { gatewaysConfigured: false, countryDatabase: true, asnDatabase: false }
const policy = compileMetadata(
  {
    deliveryCriteria: [
      { region: { country: ['US', 'GB', 'DE', 'FR', 'JP', 'CN', 'BR', 'IN'] } },
      { region: { subnet: ipv4Prefixes(1000).map((p) => p.text) } },
    ],
  },
  context,
)
if (!policy.ok) throw new Error(JSON.stringify(policy.errors))
const facts = createClientFacts()
const scratch = new Uint32Array(policy.compiled.words)
facts.sourceFamily = 4
facts.country = 'US'

const baseline = time((i) => {
  facts.source[0] = clients[i & 4095]
  return decide(policy.compiled, facts, scratch) >= 0
})
const reader = new Reader(bytes)
const raw = time((i) => reader.get(freshText[i & 0xfffff]) !== null)
const missDb = new IpDatabase(BUNDLED_COUNTRY_DB, bytes)
const words = new Uint32Array(4)
const miss = time((i) => {
  words[0] = fresh[i & 0xfffff]
  return missDb.lookup(4, words).country !== null
})
const hitDb = new IpDatabase(BUNDLED_COUNTRY_DB, bytes)
const hit = time((i) => {
  words[0] = clients[i & 4095]
  return hitDb.lookup(4, words).country !== null
})
const databases = { country: hitDb, asn: null }
const request = time((i) => {
  facts.source[0] = clients[i & 4095]
  fillGeoFacts(databases, facts, true, false)
  return decide(policy.compiled, facts, scratch) >= 0
})
console.log(
  JSON.stringify({
    suite: 'geo',
    database: missDb.type,
    decideNs: +baseline.ns.toFixed(0),
    mmdbLibGetNs: +raw.ns.toFixed(0),
    lookupMissNs: +miss.ns.toFixed(0),
    lookupHitNs: +hit.ns.toFixed(0),
    lookupAndDecideNs: +request.ns.toFixed(0),
    ratioHitToDecide: +(hit.ns / baseline.ns).toFixed(2),
    ratioMissToMmdbLib: +(miss.ns / raw.ns).toFixed(2),
    ratioHitToMmdbLib: +(hit.ns / raw.ns).toFixed(2),
  }),
)
