// RFC 8006 metadata: the RFC's own examples (sections 4.2.2-4.2.4), each ACL's edge semantics,
// footprints (RFC 9388 too), mandatory-to-enforce, host and path selection with inheritance.
import t from 'tap'
import { createClientFacts, FACT_MSISDN, FACT_SOURCE, type ClientFacts } from '../src/facts/facts.js'
import { parseAddress } from '../src/facts/address.js'
import { msisdnKey } from '../src/facts/msisdn.js'
import { PROTOCOL_HTTP, PROTOCOL_HTTPS } from '../src/facts/facts.js'
import { isHostIndex, loadSiteModel } from '../src/load/rfc8006.js'
import { normalizeHost } from '../src/policy/request-target.js'
import { aclsAllow, compileSite, explainSite, selectNode, type CompiledAcls } from '../src/policy/site.js'
import type { SiteModel } from '../src/policy/model.js'

const ALL_FACTS = { gatewaysConfigured: true, countryDatabase: true, asnDatabase: true }

/** A one-host document whose host metadata is `metadata`. */
const hostWith = (...metadata: unknown[]) => ({ hosts: [{ host: 'video.example.com', 'host-metadata': { metadata } }] })
const acl = (type: string, value: unknown, extra: Record<string, unknown> = {}) => ({
  'generic-metadata-type': type,
  'generic-metadata-value': value,
  ...extra,
})

function load(doc: unknown, context = ALL_FACTS) {
  const loaded = loadSiteModel(doc, context)
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors))
  return loaded
}

function facts(
  patch: {
    source?: string
    handset?: string
    country?: string
    subdivisions?: string[]
    asn?: number
    https?: boolean
    at?: number
    msisdn?: string
  } = {},
): ClientFacts {
  const f = createClientFacts()
  f.sourceFamily = parseAddress(patch.source ?? '192.0.2.10', f.source)
  if (patch.handset) f.handsetFamily = parseAddress(patch.handset, f.handset)
  f.country = patch.country ?? null
  f.subdivisions = patch.subdivisions ?? []
  f.asn = patch.asn ?? -1
  f.protocol = patch.https ? PROTOCOL_HTTPS : PROTOCOL_HTTP
  f.now = patch.at ?? Date.UTC(2026, 0, 1)
  if (patch.msisdn) f.msisdn = { international: patch.msisdn, key: msisdnKey(patch.msisdn), nationalKey: -1 }
  return f
}

const allows = (acls: CompiledAcls, f: ClientFacts): boolean =>
  aclsAllow(acls, f, new Uint32Array(Math.max(1, ...acls.policies.map((policy) => policy.words))))
/** The compiled ACLs of a document's first host. */
const firstHost = (model: SiteModel | null): CompiledAcls =>
  ([...compileSite(model as SiteModel).hosts.values()][0] as { acls: CompiledAcls }).acls
const hostAcls = (doc: unknown) => firstHost(load(doc).site)

t.test('the RFC examples, as printed (section 4.2.2-4.2.4)', async (t) => {
  // 4.2.2: a LocationACL with no locations allows any location.
  t.ok(allows(hostAcls(hostWith(acl('MI.LocationACL', {}))), facts({ country: 'FR' })))
  // 4.2.2: only User Agents in the USA.
  const usa = hostAcls(
    hostWith(
      acl('MI.LocationACL', {
        locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'countrycode', 'footprint-value': ['us'] }] }],
      }),
    ),
  )
  t.ok(allows(usa, facts({ country: 'US' })))
  t.notOk(allows(usa, facts({ country: 'CA' })), 'another country: no rule matched, deny')
  t.notOk(allows(usa, facts({})), 'no country fact: deny')
  // 4.2.3: 09:00 to 17:00 UTC on 2000-01-01.
  const day = hostAcls(
    hostWith(
      acl('MI.TimeWindowACL', { times: [{ action: 'allow', windows: [{ start: 946717200, end: 946746000 }] }] }),
    ),
  )
  t.ok(allows(day, facts({ at: 946717200_000 })), 'start is in')
  t.ok(allows(day, facts({ at: 946745999_999 })))
  t.notOk(allows(day, facts({ at: 946746000_000 })), 'end is out')
  t.notOk(allows(day, facts({ at: 946717199_999 })))
  // 4.2.4.1: HTTP/1.1 only.
  const http = hostAcls(
    hostWith(acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['http/1.1'] }] })),
  )
  t.ok(allows(http, facts({})))
  t.notOk(allows(http, facts({ https: true })))
  // 4.2.2.2: the footprint examples, in one union.
  const union = hostAcls(
    hostWith(
      acl('MI.LocationACL', {
        locations: [
          {
            action: 'allow',
            footprints: [
              {
                'footprint-type': 'footprintunion',
                'footprint-value': [
                  { 'footprint-type': 'ipv4cidr', 'footprint-value': ['192.0.2.0/24', '198.51.100.0/24'] },
                  { 'footprint-type': 'ipv6cidr', 'footprint-value': ['2001:db8::/32'] },
                  { 'footprint-type': 'asn', 'footprint-value': ['as64496'] },
                ],
              },
            ],
          },
        ],
      }),
    ),
  )
  t.ok(allows(union, facts({ source: '198.51.100.7' })))
  t.ok(allows(union, facts({ source: '2001:db8::1' })))
  t.ok(allows(union, facts({ source: '203.0.113.1', asn: 64496 })))
  t.notOk(allows(union, facts({ source: '203.0.113.1', asn: 64497 })))
})

t.test(
  'first match decides, action defaults to deny, missing list allows, empty list denies, kinds are ANDed',
  async (t) => {
    const location = (locations: unknown) => acl('MI.LocationACL', { locations })
    const v4 = (...cidrs: string[]) => ({ 'footprint-type': 'ipv4cidr', 'footprint-value': cidrs })
    const ordered = hostAcls(
      hostWith(location([{ footprints: [v4('10.1.0.0/16')] }, { action: 'allow', footprints: [v4('10.0.0.0/8')] }])),
    )
    t.notOk(allows(ordered, facts({ source: '10.1.2.3' })), 'the first rule (deny by default) decides')
    t.ok(allows(ordered, facts({ source: '10.2.2.3' })))
    t.notOk(allows(hostAcls(hostWith(location([]))), facts({})), 'an empty list denies')
    t.notOk(
      allows(hostAcls(hostWith(location([{ action: 'allow', footprints: [] }]))), facts({})),
      'a rule with no footprints matches nobody',
    )
    t.notOk(
      allows(hostAcls(hostWith(location([{ action: 'allow', footprints: [v4()] }]))), facts({})),
      'a footprint with no values matches nobody',
    )
    t.ok(allows(hostAcls(hostWith()), facts({})), 'no ACL at all allows')
    t.ok(
      allows(hostAcls(hostWith(acl('MI.TimeWindowACL', {}), acl('MI.ProtocolACL', {}))), facts({ https: true })),
      'ACLs without their lists allow all',
    )
    // Footprints of one rule narrow one another: in 10/8 AND in AS 64496.
    const narrowed = hostAcls(
      hostWith(
        location([
          {
            action: 'allow',
            footprints: [v4('10.0.0.0/8'), { 'footprint-type': 'asn', 'footprint-value': ['AS64496'] }],
          },
        ]),
      ),
    )
    t.ok(allows(narrowed, facts({ source: '10.0.0.1', asn: 64496 })))
    t.notOk(allows(narrowed, facts({ source: '10.0.0.1', asn: 1 })))
    // AND of the kinds.
    const both = hostAcls(
      hostWith(
        location([{ action: 'allow', footprints: [v4('10.0.0.0/8')] }]),
        acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['https/1.1'] }] }),
      ),
    )
    t.ok(allows(both, facts({ source: '10.0.0.1', https: true })))
    t.notOk(allows(both, facts({ source: '10.0.0.1' })), 'location allows, protocol denies')
    t.notOk(allows(both, facts({ source: '11.0.0.1', https: true })), 'protocol allows, location denies')
    // Time: deny windows before an allow-all, and unknown protocols warned about.
    const times = hostAcls(
      hostWith(
        acl('mi.timewindowacl', {
          times: [
            { windows: [{ start: 100, end: 200 }] },
            { action: 'allow', windows: [{ start: 0, end: 4102444800 }] },
          ],
        }),
      ),
    )
    t.notOk(allows(times, facts({ at: 150_000 })), 'types compare case-insensitively; the deny window decides')
    t.ok(allows(times, facts({ at: 250_000 })))
    t.notOk(
      allows(hostAcls(hostWith(acl('MI.TimeWindowACL', { times: [{ action: 'allow', windows: [] }] }))), facts({})),
      'a rule with no windows matches never',
    )
    const odd = load(
      hostWith(
        acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['HTTP/1.1', 'http/1.1', 'quic/1'] }] }),
      ),
    )
    t.match(odd.warnings, [
      {
        pointer: '/hosts/0/host-metadata/metadata/0/generic-metadata-value/protocol-acl/0/protocols/2',
        message: /"quic\/1" is not a protocol this edge serves/,
      },
    ])
    t.ok(allows(firstHost(odd.site), facts({})))
  },
)

t.test('mobile footprints, subdivisions and databases: what never matches is said', async (t) => {
  const mobile = hostWith(
    acl('MI.LocationACL', {
      locations: [
        {
          action: 'allow',
          footprints: [
            { 'footprint-type': 'x-handset-cidr', 'footprint-value': ['10.5.31.0/24'] },
            { 'footprint-type': 'x-msisdn-prefix', 'footprint-value': ['+86135'] },
          ],
        },
      ],
    }),
  )
  const acls = hostAcls(mobile)
  t.ok(allows(acls, facts({ handset: '10.5.31.9', msisdn: '8613500001111' })))
  t.notOk(allows(acls, facts({ handset: '10.5.31.9', msisdn: '8613600001111' })))
  t.notOk(allows(acls, facts({ msisdn: '8613500001111' })), 'no handset fact')
  const bare = loadSiteModel(mobile, {})
  t.match(bare.warnings, [{ message: /x-handset-cidr needs a trusted operator gateway/ }])
  const places = loadSiteModel(
    hostWith(
      acl('MI.LocationACL', {
        locations: [
          {
            action: 'allow',
            footprints: [
              {
                'footprint-type': 'footprintunion',
                'footprint-value': [
                  { 'footprint-type': 'countrycode', 'footprint-value': ['us'] },
                  { 'footprint-type': 'subdivisioncode', 'footprint-value': ['ca-on'] },
                ],
              },
            ],
          },
        ],
      }),
    ),
    {},
  )
  t.ok(places.ok)
  t.match(places.warnings, [
    { message: /countrycode needs a country database/ },
    { message: /subdivisioncode needs a City country database/ },
  ])
  t.equal(places.warnings.length, 2)
  const somewhere = firstHost(places.site)
  t.ok(allows(somewhere, facts({ country: 'US' })), 'the country listed')
  t.ok(allows(somewhere, facts({ country: 'CA', subdivisions: ['CA-ON'] })), 'the subdivision listed')
  t.ok(allows(somewhere, facts({ country: 'US', subdivisions: ['US-NY'] })), 'the country listed, another subdivision')
  t.notOk(allows(somewhere, facts({ country: 'CA' })), 'the country of the subdivision is not enough')
  t.notOk(allows(somewhere, facts({ country: 'CA', subdivisions: ['CA-QC'] })), 'another subdivision')
  const city = loadSiteModel(
    hostWith(
      acl('MI.LocationACL', {
        locations: [
          { action: 'deny', footprints: [{ 'footprint-type': 'subdivisioncode', 'footprint-value': ['GB-wsm'] }] },
          { action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': ['0.0.0.0/0'] }] },
        ],
      }),
    ),
    { subdivisionDatabase: true, countryDatabase: true, gatewaysConfigured: false, asnDatabase: false },
  )
  t.same(city.errors, [])
  t.same(city.warnings, [], 'a City database: nothing to say')
  const london = firstHost(city.site)
  t.notOk(
    allows(london, facts({ country: 'GB', subdivisions: ['GB-ENG', 'GB-WSM'] })),
    'the second, finer subdivision counts too',
  )
  t.ok(allows(london, facts({ country: 'GB', subdivisions: ['GB-ENG', 'GB-KEN'] })))
  t.ok(allows(london, facts({})), 'no location fact: the deny rule does not match, the catch-all allows')
  t.match(
    loadSiteModel(
      hostWith(
        acl('MI.LocationACL', {
          locations: [{ footprints: [{ 'footprint-type': 'asn', 'footprint-value': ['as1'] }] }],
        }),
      ),
      {},
    ).warnings,
    [{ message: /asn needs an AS-number database/ }],
  )
})

t.test(
  'mandatory-to-enforce: an object this edge does not enforce denies what it covers; optional ones are ignored',
  async (t) => {
    const source = acl('MI.SourceMetadata', { sources: [{ endpoints: ['a.ucdn.example'], protocol: 'http/1.1' }] })
    const loaded = load(hostWith(source))
    const acls = firstHost(loaded.site)
    t.notOk(allows(acls, facts({})), 'mandatory by default: denied')
    t.match(acls.unenforceable, [{ type: 'MI.SourceMetadata', pointer: '/hosts/0/host-metadata/metadata/0' }])
    t.match(loaded.warnings, [
      {
        message:
          'MI.SourceMetadata is mandatory-to-enforce and this edge does not enforce it: the content it covers is denied',
      },
    ])
    const optional = load(hostWith({ ...source, 'mandatory-to-enforce': false }))
    t.ok(allows(firstHost(optional.site), facts({})))
    t.match(optional.warnings, [{ message: /it is not mandatory-to-enforce, so it is ignored/ }])
    const elsewhere = loadSiteModel(hostWith(source), { enforcedElsewhere: ['mi.sourcemetadata'] })
    t.same(elsewhere.warnings, [], 'a type enforced elsewhere on the edge is neither denied nor warned about')
    t.ok(allows(firstHost(elsewhere.site), facts({})))
    // incomprehensible objects are never applied, even of a type we enforce.
    const allowAll = acl('MI.LocationACL', {}, { incomprehensible: true })
    t.notOk(allows(hostAcls(hostWith(allowAll)), facts({})), 'incomprehensible and mandatory: denied')
    t.ok(
      allows(hostAcls(hostWith({ ...allowAll, 'mandatory-to-enforce': false })), facts({})),
      'incomprehensible and optional: ignored',
    )
    // A footprint type nobody knows makes the whole ACL unenforceable (never skipped: a skipped deny would open).
    const unknown = hostAcls(
      hostWith(
        acl('MI.LocationACL', {
          locations: [
            { action: 'deny', footprints: [{ 'footprint-type': 'geopolygon', 'footprint-value': [[1, 2]] }] },
            { action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': ['0.0.0.0/0'] }] },
          ],
        }),
      ),
    )
    t.notOk(allows(unknown, facts({})))
    t.match(unknown.unenforceable, [{ reason: /footprint type "geopolygon" is not one this edge knows/ }])
    // Only the first object of a type in one list counts.
    const twice = load(
      hostWith(
        acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['http/1.1'] }] }),
        acl('mi.protocolACL', {}),
      ),
    )
    t.notOk(allows(firstHost(twice.site), facts({ https: true })))
    t.match(twice.warnings, [
      { pointer: '/hosts/0/host-metadata/metadata/1', message: /only the first of a type counts/ },
    ])
  },
)

t.test('hosts: exact and case-insensitive, ports kept, IPv6 literals in any RFC 4291 spelling', async (t) => {
  t.equal(normalizeHost('Video.Example.COM'), 'video.example.com')
  t.equal(normalizeHost('video.example.com:8080'), 'video.example.com:8080')
  t.equal(normalizeHost('[2001:DB8:0:0:0:0:0:1]:443'), '[2001:db8::1]:443')
  t.equal(normalizeHost('[2001:db8::1]'), '[2001:db8::1]')
  for (const bad of ['[2001:db8::1', '[nonsense]', '[fe80::1%eth0]', '[2001:db8::1]x', 'a b', '']) {
    t.equal(normalizeHost(bad), null, `${JSON.stringify(bad)} is no host`)
  }
  const index = compileSite(
    load({
      hosts: [
        { host: 'Video.Example.com', 'host-metadata': { metadata: [] } },
        { host: '[2001:db8::1]:8443', 'host-metadata': { metadata: [] } },
        { host: 'video.example.com:8080', 'host-metadata': { metadata: [] } },
      ],
    }).site,
  )
  t.equal(selectNode(index, 'VIDEO.example.com', '/a')?.pointer, '/hosts/0')
  t.equal(selectNode(index, 'video.example.com:8080', '/a')?.pointer, '/hosts/2', 'a port is part of the host')
  t.equal(selectNode(index, 'video.example.com:80', '/a'), null, 'and must match exactly')
  t.equal(selectNode(index, '[2001:0db8::0:1]:8443', '/a')?.pointer, '/hosts/1')
  t.equal(selectNode(index, 'other.example.com', '/a'), null, 'no HostMatch: no node (the caller denies)')
  t.equal(selectNode(index, undefined, '/a'), null, 'no Host header')
  const duplicate = load({
    hosts: [
      { host: 'a.example', 'host-metadata': { metadata: [] } },
      { host: 'A.example', 'host-metadata': { metadata: [] } },
    ],
  })
  t.equal(duplicate.site.hosts.length, 1)
  t.match(duplicate.warnings, [{ pointer: '/hosts/1/host', message: /matched by an earlier HostMatch/ }])
  t.match(load({ hosts: [] }).warnings, [{ pointer: '/hosts', message: 'no HostMatch: every request is denied' }])
})

t.test('paths: first match, nested paths, a deeper object of a type replaces the inherited one', async (t) => {
  const https = acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['https/1.1'] }] })
  const anyProtocol = acl('MI.ProtocolACL', {})
  const us = acl('MI.LocationACL', {
    locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'countrycode', 'footprint-value': ['us'] }] }],
  })
  const doc = {
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [https],
          paths: [
            {
              'path-pattern': { pattern: '/free/*' },
              'path-metadata': {
                metadata: [anyProtocol],
                paths: [
                  {
                    'path-pattern': { pattern: '/free/us-only/*', 'case-sensitive': true },
                    'path-metadata': { metadata: [us] },
                  },
                ],
              },
            },
            {
              'path-pattern': { pattern: '/free/never/*' },
              'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] },
            },
            { 'path-pattern': { pattern: '/*.m3u8' }, 'path-metadata': { metadata: [us] } },
          ],
        },
      },
    ],
  }
  const index = compileSite(load(doc).site)
  const decide = (path: string, f: ClientFacts) => {
    const node = selectNode(index, 'video.example.com', path)
    return { pointer: node?.pointer, allowed: node !== null && allows(node, f) }
  }
  t.same(
    decide('/paid/a.mp4', facts({})),
    { pointer: '/hosts/0', allowed: false },
    'no path matches: the host metadata (https only)',
  )
  t.same(decide('/paid/a.mp4', facts({ https: true })), { pointer: '/hosts/0', allowed: true })
  t.same(
    decide('/FREE/a.mp4?x=1', facts({})),
    { pointer: '/hosts/0/host-metadata/paths/0', allowed: true },
    'case-insensitive by default; the query is not part of the path; the ProtocolACL is replaced',
  )
  t.same(
    decide('/free/never/a', facts({})),
    { pointer: '/hosts/0/host-metadata/paths/0', allowed: true },
    'the first match wins, even when a later one is more specific',
  )
  t.same(decide('/free/us-only/a', facts({ country: 'FR' })), {
    pointer: '/hosts/0/host-metadata/paths/0/path-metadata/paths/0',
    allowed: false,
  })
  t.same(
    decide('/free/us-only/a', facts({ country: 'US' })),
    { pointer: '/hosts/0/host-metadata/paths/0/path-metadata/paths/0', allowed: true },
    'nested: the replaced ProtocolACL is inherited, LocationACL added',
  )
  t.same(
    decide('/free/US-ONLY/a', facts({ country: 'FR' })).pointer,
    '/hosts/0/host-metadata/paths/0',
    'a case-sensitive nested pattern',
  )
  t.same(
    decide('/live/x.m3u8', facts({ country: 'US' })),
    { pointer: '/hosts/0/host-metadata/paths/2', allowed: false },
    'LocationACL added, https still inherited',
  )
  t.same(decide('/live/x.m3u8', facts({ country: 'US', https: true })).allowed, true)
  // Compiled once each however many paths inherit it or are written with it: https (inherited by
  // three nodes), us (written twice, identical), the empty location list; the ProtocolACL
  // without a list allows all and needs nothing compiled.
  t.equal(index.policies.length, 3)
  t.match(index.summary, { hosts: 1, rules: 2, regions: 1 })
  t.notOk(index.usesTime)
})

t.test('explanations: the node selected, then each ACL rule by rule', async (t) => {
  const site = compileSite(
    load(
      hostWith(
        acl('MI.LocationACL', {
          locations: [
            { action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': ['10.0.0.0/8'] }] },
          ],
        }),
        acl('MI.TimeWindowACL', { times: [{ action: 'allow', windows: [{ start: 0, end: 4102444800 }] }] }),
      ),
    ).site,
  )
  t.ok(site.usesTime)
  const allowed = explainSite(site, 'video.example.com', '/a', facts({ source: '10.1.1.1' }))
  t.match(allowed, { selected: '/hosts/0', allowed: true, decidedBy: '/hosts/0', failed: [] })
  t.equal(allowed.rules.length, 2)
  const denied = explainSite(site, 'video.example.com', '/a', facts({ source: '11.1.1.1' }))
  t.match(denied, { selected: '/hosts/0', allowed: false, decidedBy: null, failed: ['region'] })
  t.same(explainSite(site, 'elsewhere.example', '/a', facts({})), {
    selected: null,
    allowed: false,
    decidedBy: null,
    unknowable: [],
    failed: [],
    rules: [],
  })
  const blocked = compileSite(load(hostWith(acl('MI.Auth', {}))).site)
  t.same(explainSite(blocked, 'video.example.com', '/', facts({})), {
    selected: '/hosts/0',
    allowed: false,
    decidedBy: '/hosts/0/host-metadata/metadata/0',
    unknowable: [],
    failed: [],
    rules: [],
  })
  // A fact the site reads, made unknowable: denied whatever the rules say, and named.
  const spoiled = facts({ source: '10.1.1.1' })
  spoiled.unknowable = FACT_SOURCE | FACT_MSISDN
  t.match(
    explainSite(site, 'video.example.com', '/a', spoiled),
    { selected: '/hosts/0', allowed: false, unknowable: ['source'] },
    'the site reads no MSISDN: only the source is named',
  )
})

t.test('bad documents: every problem with a pointer; Link objects named as such', async (t) => {
  t.ok(isHostIndex({ hosts: [] }))
  t.notOk(isHostIndex({ deliveryCriteria: [] }))
  t.notOk(isHostIndex(null))
  t.notOk(isHostIndex([]))
  const refused = loadSiteModel({
    hosts: [
      { type: 'MI.HostMatch', href: 'https://metadata.ucdn.example/hostmatch1234' },
      { host: 'a.example', 'host-metadata': { metadata: [{ 'generic-metadata-type': 'MI.LocationACL' }] } },
    ],
    extra: 1,
  })
  t.notOk(refused.ok)
  t.match(refused.errors, [
    { pointer: '/extra', message: /unknown property/ },
    { pointer: '/hosts/0/host', message: 'is required' },
    { pointer: '/hosts/0/host-metadata', message: 'is required' },
    { pointer: '/hosts/0/type', message: /unknown property/ },
    { pointer: '/hosts/0/href', message: 'a Link object: references are not fetched, embed the object it points to' },
    { pointer: '/hosts/1/host-metadata/metadata/0/generic-metadata-value', message: 'is required' },
  ])
  t.equal(refused.errors.length, 6, 'and nothing else')
  t.match(loadSiteModel('text').errors, [{ pointer: '', message: /must be object/ }])
  const values = loadSiteModel(
    {
      hosts: [
        { host: 'bad host', 'host-metadata': { metadata: [] } },
        {
          host: 'b.example',
          'host-metadata': {
            metadata: [
              acl('MI.LocationACL', {
                locations: [
                  {
                    action: 'allow',
                    footprints: [
                      { 'footprint-type': 'ipv4cidr', 'footprint-value': ['2001:db8::/32', 7, '10.0.0.0/33'] },
                      { 'footprint-type': 'ipv6cidr', 'footprint-value': ['10.0.0.0/8'] },
                      { 'footprint-type': 'asn', 'footprint-value': ['64496', 'as99999999999'] },
                      { 'footprint-type': 'countrycode', 'footprint-value': ['zz'] },
                      { 'footprint-type': 'subdivisioncode', 'footprint-value': ['new-york'] },
                      {
                        'footprint-type': 'footprintunion',
                        'footprint-value': ['x', { 'footprint-type': 'footprintunion', 'footprint-value': [] }],
                      },
                    ],
                  },
                ],
              }),
              acl('MI.TimeWindowACL', { times: [{ windows: [{ start: 10, end: 10 }] }] }),
              acl('MI.ProtocolACL', { 'protocol-acl': [{ protocols: 'http/1.1' }] }),
            ],
            paths: [{ 'path-pattern': { pattern: '/a$b' }, 'path-metadata': { metadata: [] } }],
          },
        },
      ],
    },
    ALL_FACTS,
  )
  const fp = '/hosts/1/host-metadata/metadata/0/generic-metadata-value/locations/0/footprints'
  t.match(values.errors, [
    { pointer: '/hosts/0/host', message: '"bad host" is not a host name or IP address with an optional port' },
    { pointer: `${fp}/0/footprint-value/1`, message: 'ipv4cidr values must be strings' },
    { pointer: `${fp}/0/footprint-value/0`, message: '"2001:db8::/32" is not an IPv4 CIDR' },
    { pointer: `${fp}/0/footprint-value/1`, message: /10\.0\.0\.0\/33/ },
    { pointer: `${fp}/1/footprint-value/0`, message: '"10.0.0.0/8" is not an IPv6 CIDR' },
    { pointer: `${fp}/2/footprint-value/0`, message: /"64496" must be "as" and an AS number/ },
    { pointer: `${fp}/2/footprint-value/1`, message: /as99999999999/ },
    { pointer: `${fp}/3/footprint-value/0`, message: '"zz" is not an ISO 3166-1 alpha-2 country code' },
    { pointer: `${fp}/4/footprint-value/0`, message: /"new-york" is not an ISO 3166-2 subdivision code/ },
    { pointer: `${fp}/5/footprint-value/0`, message: /a footprintunion lists footprint objects/ },
    { pointer: `${fp}/5/footprint-value/1`, message: /must not list a footprintunion/ },
    {
      pointer: '/hosts/1/host-metadata/metadata/1/generic-metadata-value/times/0/windows/0/end',
      message: /must be after start/,
    },
    {
      pointer: '/hosts/1/host-metadata/metadata/2/generic-metadata-value/protocol-acl/0/protocols',
      message: 'must be array',
    },
    { pointer: '/hosts/1/host-metadata/paths/0/path-pattern/pattern', message: /"\$" at 2 must be followed/ },
  ])
  t.equal(values.errors.length, 14, 'and nothing else')
  t.equal(values.site, null)
})

t.test(
  'patterns are compared in the canonical form of request paths; the loader says when that changes one',
  async (t) => {
    const deny = acl('MI.LocationACL', { locations: [] })
    const doc = (patterns: [string, boolean?][]) => ({
      hosts: [
        {
          host: 'video.example.com',
          'host-metadata': {
            metadata: [],
            paths: patterns.map(([pattern, cs]) => ({
              'path-pattern': { pattern, ...(cs === undefined ? {} : { 'case-sensitive': cs }) },
              'path-metadata': { metadata: [deny] },
            })),
          },
        },
      ],
    })
    const at = (i: number) => `/hosts/0/host-metadata/paths/${i}/path-pattern/pattern`
    const loaded = load(
      doc([['/%7Ealice/*'], ['/caf%c3%a9/*', true], ['/café/*'], ['/movies/*'], ['movies/*'], ['?x']]),
    )
    t.match(loaded.warnings, [
      {
        pointer: at(0),
        message:
          '"/%7Ealice/*" is compared as "/~alice/*", the canonical form request paths are compared in (RFC 3986 section 6.2.2)',
      },
      {
        pointer: at(1),
        message:
          '"/caf%c3%a9/*" is compared as "/caf%C3%A9/*", the canonical form request paths are compared in (RFC 3986 section 6.2.2)',
      },
      {
        pointer: at(2),
        message:
          '"/café/*" is compared as "/caf%C3%A9/*", the canonical form request paths are compared in (RFC 3986 section 6.2.2)',
      },
      {
        pointer: at(4),
        message:
          '"movies/*" matches no request: every path starts with "/" (RFC 8006 section 4.1.5 matches the path-absolute)',
      },
      { pointer: at(5), message: /"\?x" matches no request/ },
    ])
    t.equal(loaded.warnings.length, 5, '"/movies/*" is canonical already')
    const compiled = compileSite(loaded.site)
    const selected = (path: string) => selectNode(compiled, 'video.example.com', path)?.pointer
    t.equal(selected('/~alice/a.txt'), '/hosts/0/host-metadata/paths/0')
    t.equal(selected('/%7ealice/a.txt'), '/hosts/0/host-metadata/paths/0')
    t.equal(
      selected('/caf%C3%A9/x'),
      '/hosts/0/host-metadata/paths/1',
      'case-sensitive, and the octets in upper case as the path has them',
    )
    t.equal(selected('/caf%c3%a9/x'), '/hosts/0/host-metadata/paths/1')
    t.equal(selected('/CAF%C3%A9/x'), '/hosts/0/host-metadata/paths/2', 'the case-insensitive spelling of the same')
    const refused = loadSiteModel(doc([['/secret\\*'], ['/a*/../b'], ['/a$b'], ['/a//../b']]))
    t.same(
      refused.errors.map((error) => error.pointer),
      [at(0), at(1), at(2), at(3)],
    )
    t.match(refused.errors, [
      { message: /backslash/ },
      { message: /after a segment with "\*"/ },
      { message: /"\$" at 2/ },
      { message: /after an empty one/ },
    ])
  },
)
