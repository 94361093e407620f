// A policy read back from its snapshot is the policy that was compiled: for generated documents of
// both formats it is deeply equal to the compiled one (every typed array, Map and field), its
// shared ACLs are still shared, and it explains every generated request exactly as the compiled
// one does.
import t from 'tap'
import { msisdnKey } from '../src/facts/msisdn.js'
import fc from 'fast-check'
import { deepStrictEqual, equal, ok } from 'node:assert'
import { createClientFacts, type ClientFacts } from '../src/facts/facts.js'
import { compileMetadata, etagOf } from '../src/load/prepare.js'
import { aclsAllow, explainSite, selectNode, type CompiledSite } from '../src/policy/site.js'
import { decodePolicySnapshot, encodePolicySnapshot } from '../src/snapshot/policy-snapshot.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 150)
const CONTEXT = { gatewaysConfigured: true, countryDatabase: true, asnDatabase: true, enforcedElsewhere: [] }

// ---- Documents -----------------------------------------------------------------------------

const octet = fc.integer({ min: 0, max: 7 })
const v4Prefix = fc
  .tuple(octet, octet, fc.constantFrom(8, 12, 16, 20, 24, 28))
  .map(([a, b, length]) => `10.${a * 32}.${b * 32}.0/${length}`)
const v6Prefix = fc
  .tuple(octet, octet, fc.constantFrom(32, 40, 48, 64))
  .map(([a, b, length]) => `2001:db8:${a}${b}00::/${length}`)
const subnets = fc.array(fc.oneof(v4Prefix, v6Prefix), { minLength: 1, maxLength: 12 })
/** Sometimes hundreds of prefixes, so that range tables get their index and its child nodes. */
const manySubnets = fc.oneof(
  { weight: 4, arbitrary: subnets },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 255 })
      .map((seed) => Array.from({ length: 300 }, (_, i) => `${11 + (i % 40)}.${(seed + i) % 256}.${i % 7}.0/24`)),
  },
)
const msisdnPrefix = fc.constantFrom('135', '135038', '1390', '+44770', '+8613')
const countries = fc.subarray(['GB', 'CN', 'US'], { minLength: 1 })
const asns = fc.subarray([64496, 64497, 4200000000], { minLength: 1 })

const region = fc
  .record(
    {
      subnet: manySubnets,
      subnet2: subnets,
      msdnPrefix: fc.array(msisdnPrefix, { minLength: 1, maxLength: 3 }),
      country: countries,
      bgpAs: asns,
    },
    { requiredKeys: [] },
  )
  .filter((r) => Object.keys(r).length > 0)
const year = fc.integer({ min: 2025, max: 2028 })
const criterion = fc.oneof(
  { weight: 4, arbitrary: region.map((r) => ({ region: r })) },
  { weight: 1, arbitrary: fc.constantFrom('http', 'https', ['http', 'https']).map((p) => ({ protocol: p })) },
  {
    weight: 1,
    arbitrary: fc.tuple(year, year).map(([a, b]) => ({
      timeWindow: { startTime: `${Math.min(a, b)}-01-01T00:00:00Z`, endTime: `${Math.max(a, b) + 1}-01-01T00:00:00Z` },
    })),
  },
)
const criteria = fc.array(criterion, { minLength: 1, maxLength: 4 })
const profilesDocument = fc.oneof(
  criteria.map((list) => ({ deliveryCriteria: list })),
  fc
    .array(fc.record({ deliveryCriteria: criteria, deliveryRules: fc.record({ allow: fc.boolean() }) }), {
      minLength: 1,
      maxLength: 3,
    })
    .map((profiles) => ({ deliveryProfiles: profiles })),
)

const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
const footprint = fc.oneof(
  fc
    .array(v4Prefix, { minLength: 1, maxLength: 6 })
    .map((v) => ({ 'footprint-type': 'ipv4cidr', 'footprint-value': v })),
  fc
    .array(v6Prefix, { minLength: 1, maxLength: 6 })
    .map((v) => ({ 'footprint-type': 'ipv6cidr', 'footprint-value': v })),
  fc.array(msisdnPrefix, { minLength: 1 }).map((v) => ({ 'footprint-type': 'x-msisdn-prefix', 'footprint-value': v })),
  countries.map((v) => ({ 'footprint-type': 'countrycode', 'footprint-value': v })),
  asns.map((v) => ({ 'footprint-type': 'asn', 'footprint-value': v.map((n) => `as${n}`) })),
)
const action = fc.constantFrom('allow', 'deny')
const metadataObject = fc.oneof(
  fc
    .array(fc.record({ action, footprints: fc.array(footprint, { minLength: 1, maxLength: 2 }) }), { maxLength: 3 })
    .map((locations) => acl('MI.LocationACL', { locations })),
  fc.tuple(action, year, year).map(([a, from, to]) =>
    acl('MI.TimeWindowACL', {
      times: [
        {
          action: a,
          windows: [{ start: Date.UTC(Math.min(from, to), 0) / 1000, end: Date.UTC(Math.max(from, to) + 1, 0) / 1000 }],
        },
      ],
    }),
  ),
  fc
    .tuple(action, fc.subarray(['http/1.1', 'https/1.1'], { minLength: 1 }))
    .map(([a, protocols]) => acl('MI.ProtocolACL', { 'protocol-acl': [{ action: a, protocols }] })),
  fc.constant(acl('MI.SourceMetadata', {})),
)
const PATTERNS = ['/a/*', '/b*', '*.m3u8', '/a/?', '/A/*', '/c/*/d*', '/s1/*', '/s2/*', '/s3/*', '/s4/*', '/s5/*']
const metadataList = fc.array(metadataObject, { maxLength: 2 })
/** A PathMatch with up to `depth` levels of paths below it. */
const pathMatch = (depth: number): fc.Arbitrary<unknown> =>
  fc.record({
    'path-pattern': fc.record({ pattern: fc.constantFrom(...PATTERNS), 'case-sensitive': fc.boolean() }),
    'path-metadata': fc.record({
      metadata: metadataList,
      paths: depth === 0 ? fc.constant([]) : fc.array(pathMatch(depth - 1), { maxLength: 2 }),
    }),
  })
const HOSTS = ['a.example', 'b.example', 'c.example']
const siteDocument = fc
  .tuple(
    metadataList,
    fc.subarray(HOSTS, { minLength: 1 }),
    fc.array(fc.tuple(metadataList, fc.array(pathMatch(2), { maxLength: 9 }))),
  )
  .map(([shared, hosts, own]) => ({
    hosts: hosts.map((host, i) => ({
      host,
      // The first list goes to every host: identical ACL values are compiled once, and shared.
      'host-metadata': { metadata: [...shared, ...(own[i]?.[0] ?? [])], paths: own[i]?.[1] ?? [] },
    })),
  }))

// ---- Requests ------------------------------------------------------------------------------

interface Request {
  host: string
  url: string
  facts: ClientFacts
}

const address = fc.oneof(
  fc
    .tuple(octet, octet, fc.integer({ min: 0, max: 255 }))
    .map(([a, b, c]) => [4, ((10 << 24) | ((a * 32) << 16) | ((b * 32) << 8) | c) >>> 0]),
  fc
    .tuple(fc.integer({ min: 11, max: 50 }), fc.integer({ min: 0, max: 255 }))
    .map(([a, b]) => [4, ((a << 24) | (b << 16)) >>> 0]),
  fc.tuple(octet, octet).map(([a, b]) => [6, 0x20010db8, ((a << 28) | (b << 24)) >>> 0, 0, 1]),
  fc.constant([0]),
)
const request: fc.Arbitrary<Request> = fc
  .record({
    host: fc.constantFrom(...HOSTS, 'other.example'),
    url: fc.constantFrom(
      '/',
      '/a/x',
      '/A/x',
      '/b',
      '/bcd/e.m3u8',
      '/a/%41',
      '/c/q/d1',
      '/s3/x',
      '/s9/y.m3u8',
      '/a/../b',
    ),
    source: address,
    handset: address,
    msisdn: fc.option(fc.tuple(msisdnPrefix, fc.stringMatching(/^[0-9]{0,6}$/), fc.boolean())),
    protocol: fc.constantFrom(0, 1, 2),
    country: fc.option(fc.constantFrom('GB', 'CN', 'US', 'FR')),
    asn: fc.constantFrom(-1, 64496, 64497, 4200000000),
    year: fc.integer({ min: 2024, max: 2030 }),
    unknowable: fc.constantFrom(0, 0, 0, 0, 1, 2, 4, 8),
  })
  .map((r) => {
    const facts = createClientFacts()
    const [sourceFamily, ...source] = r.source
    facts.sourceFamily = sourceFamily as 0 | 4 | 6
    facts.source.set(source)
    const [handsetFamily, ...handset] = r.handset
    facts.handsetFamily = handsetFamily as 0 | 4 | 6
    facts.handset.set(handset)
    if (r.msisdn !== null) {
      const [prefix, rest, home] = r.msisdn
      const digits = prefix.replace('+', '') + rest
      const international = home ? `86${digits}` : digits
      facts.msisdn = { international, key: msisdnKey(international), nationalKey: home ? msisdnKey(digits) : -1 }
    }
    facts.protocol = r.protocol
    facts.country = r.country
    facts.asn = r.asn
    facts.now = Date.UTC(r.year, 5)
    facts.unknowable = r.unknowable
    return { host: r.host, url: r.url, facts }
  })

// ---- The property --------------------------------------------------------------------------

function roundTrip(doc: unknown): { compiled: CompiledSite; decoded: CompiledSite } {
  const result = compileMetadata(doc, CONTEXT)
  if (!result.ok) throw new Error(`generated document refused: ${JSON.stringify(result.errors[0])}`)
  const etag = etagOf(JSON.stringify(doc))
  const bytes = encodePolicySnapshot(result.compiled, 3, { etag, context: CONTEXT })
  const snapshot = decodePolicySnapshot(bytes, { etag, context: CONTEXT })
  equal(snapshot.version, 3)
  return { compiled: result.compiled, decoded: snapshot.site }
}

function decideAlike(compiled: CompiledSite, decoded: CompiledSite, requests: Request[]): void {
  const scratch = new Uint32Array(Math.max(compiled.words, decoded.words))
  for (const { host, url, facts } of requests) {
    deepStrictEqual(explainSite(decoded, host, url, facts), explainSite(compiled, host, url, facts))
    const a = selectNode(compiled, host, url)
    const b = selectNode(decoded, host, url)
    equal(b === null, a === null)
    if (a !== null && b !== null) equal(aclsAllow(b, facts, scratch), aclsAllow(a, facts, scratch))
  }
}

t.test('a decoded delivery-criteria policy is the compiled one and decides every request alike', async (t) => {
  fc.assert(
    fc.property(profilesDocument, fc.array(request, { minLength: 1, maxLength: 30 }), (doc, requests) => {
      const { compiled, decoded } = roundTrip(doc)
      deepStrictEqual(decoded, compiled)
      equal(decoded.catchAll?.policies[0], decoded.policies[0], 'the catch-all is the one policy, not a copy')
      decideAlike(compiled, decoded, requests)
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261717), endOnFailure: true },
  )
  t.pass(`${RUNS} documents`)
})

t.test('a decoded RFC 8006 site is the compiled one, its shared ACLs still shared, deciding alike', async (t) => {
  let sharing = 0
  /** Policies reached from more than one host. */
  const sharedAcrossHosts = (site: CompiledSite): number => {
    const hosts = new Map<unknown, number>()
    for (const entry of site.hosts.values()) {
      for (const policy of new Set(entry.acls.policies)) hosts.set(policy, (hosts.get(policy) ?? 0) + 1)
    }
    return [...hosts.values()].filter((count) => count > 1).length
  }
  fc.assert(
    fc.property(siteDocument, fc.array(request, { minLength: 1, maxLength: 30 }), (doc, requests) => {
      const { compiled, decoded } = roundTrip(doc)
      deepStrictEqual(decoded, compiled)
      const policies = new Set(decoded.policies)
      for (const entry of decoded.hosts.values()) {
        for (const policy of entry.acls.policies) ok(policies.has(policy), 'a node policy is one of the site policies')
      }
      const shared = sharedAcrossHosts(compiled)
      equal(sharedAcrossHosts(decoded), shared, 'as many policies shared between hosts as compiled')
      if (shared > 0) sharing++
      decideAlike(compiled, decoded, requests)
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261717), endOnFailure: true },
  )
  t.ok(sharing > RUNS / 10, `${sharing} sites with policies shared between hosts`)
})
