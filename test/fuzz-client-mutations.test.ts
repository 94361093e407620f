// Nothing a client adds turns a 403 into a 200.
//
// The edge believes only what the TCP peer is and what our trusted proxies and the operator's
// enriching gateways appended; everything a client writes decides nothing ("Which client facts
// are believed" in the README). A client can still write before those hops append their own data:
// pad X-Forwarded-For on the left, send its own MSISDN or X-Forwarded-Proto line beside the
// trusted one, send a twin of the MSISDN header spelled with `_` or another case, or add
// Forwarded, X-Real-IP and the like. None of that may make a denied request allowed: a fact the
// client has spoiled is a fact the edge cannot know, and a policy that reads it denies.
//
// Generated here: policies of both metadata formats with deny rules on every fact a client could
// try to hide (MSISDN prefix, handset CIDR, source CIDR, country, protocol) before an allow-all;
// requests from direct clients, through our proxies, and through an operator gateway; and lists
// of client mutations. For each case the base request is decided, then the request with the
// first one, two, ... mutations applied:
//   1. a base 403 never becomes a 200;
//   2. from a direct client (a peer that is neither proxy nor gateway) no decision changes;
//   3. never a 5xx.
import t from 'tap'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import cdniAuthz, { type CdniAuthzOptions } from '../src/index.js'
import { buildMmdb } from './helpers/mmdb.js'

/** FUZZ_RUNS raises the count for the long run (`npm run test:long`). */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const SEED = Number(process.env.FUZZ_SEED ?? 20261207)

const HOST = 'video.example.com'
const PATH = '/video/1.ts'
const PROXIES = ['192.0.2.0/24', '2001:db8:ff::/48']
const GATEWAY_CIDRS = ['203.0.113.0/28', '2001:db8:ee::/48']
const MSISDN_HEADER = 'x-up-calling-line-id'
const GATEWAYS = [{ name: 'op-a', cidrs: GATEWAY_CIDRS, countryCode: '86' }]

// ---- What the policies deny, and addresses inside and beside it ------------------------------

const V4_SOURCE_RANGES = ['10.1.0.0/16', '198.51.100.0/25']
const V6_SOURCE_RANGES = ['2001:db8:1::/48']
const SOURCE_RANGES = [...V4_SOURCE_RANGES, ...V6_SOURCE_RANGES]
const HANDSET_RANGES = ['10.5.31.0/24', '2001:db8:5::/48', '100.64.0.0/16']
const MSISDN_PREFIXES = ['135038', '+447700', '139', '+86150']
const COUNTRIES = ['GB', 'US', 'CN']

/** Sources: direct clients, or the entry our first proxy appended. Never a proxy or gateway. */
const CLIENTS = [
  '10.1.2.3',
  '10.2.0.1',
  '::ffff:10.1.2.3',
  '2001:db8:1::9',
  '2001:db8:9::1',
  '198.51.100.7',
  '198.51.100.200',
  '81.2.69.142',
  '216.160.83.57',
  '2001:480::1',
  '8.8.8.8',
]
const HANDSETS = ['10.5.31.7', '10.5.32.7', '2001:db8:5::7', '2001:db8:6::7', '100.64.3.4', '100.65.3.4']
const PROXY_ADDRESSES = ['192.0.2.5', '192.0.2.77', '2001:db8:ff::1']
const GATEWAY_ADDRESSES = ['203.0.113.10', '203.0.113.3', '2001:db8:ee::10']
/** Numbers as the gateway writes them (international, no `+`): 135038, +447700, 139, +86150, none. */
const MSISDNS = ['8613503812345', '447700900123', '8613912345678', '8615012345678', '8618612345678']

/** The country database of this test: GB and US clients; the gateway's egress is in CN. */
const COUNTRY_DB = buildMmdb(
  [
    ['81.2.69.0/24', { country: { iso_code: 'GB' } }],
    ['216.160.83.0/24', { country: { iso_code: 'US' } }],
    ['2001:480::/32', { country: { iso_code: 'US' } }],
    ['203.0.113.0/24', { country: { iso_code: 'CN' } }],
    ['2001:db8:ee::/48', { country: { iso_code: 'CN' } }],
  ],
  { databaseType: 'GeoLite2-Country' },
)

// ---- Policies ---------------------------------------------------------------------------------

const ALLOW_ALL_PROFILE = { deliveryCriteria: [{ protocol: ['http', 'https'] }], deliveryRules: { allow: true } }
const denyProfiles = (...criteria: unknown[][]) => ({
  deliveryProfiles: [
    ...criteria.map((deliveryCriteria) => ({ deliveryCriteria, deliveryRules: { allow: false } })),
    ALLOW_ALL_PROFILE,
  ],
})
const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
const footprint = (type: string, value: string[]) => ({ 'footprint-type': type, 'footprint-value': value })
const ALLOW_ALL_LOCATIONS = [
  { action: 'allow', footprints: [footprint('ipv4cidr', ['0.0.0.0/0'])] },
  { action: 'allow', footprints: [footprint('ipv6cidr', ['::/0'])] },
]
/** A HostIndex for HOST: the deny rules, then allow-all; and a ProtocolACL denying `denied`. */
const hostIndex = (denies: unknown[][], denied?: string) => ({
  hosts: [
    {
      host: HOST,
      'host-metadata': {
        metadata: [
          acl('MI.LocationACL', {
            locations: [...denies.map((footprints) => ({ action: 'deny', footprints })), ...ALLOW_ALL_LOCATIONS],
          }),
          ...(denied === undefined
            ? []
            : [
                acl('MI.ProtocolACL', {
                  'protocol-acl': [
                    { action: 'deny', protocols: [denied] },
                    { action: 'allow', protocols: ['http/1.1', 'https/1.1'] },
                  ],
                }),
              ]),
        ],
      },
    },
  ],
})

/** Written by hand, so every kind of deny rule is there whatever the sample gives. */
const HAND_WRITTEN: unknown[] = [
  denyProfiles([{ region: { msdnPrefix: '135038' } }], [{ region: { subnet2: '10.5.31.0/24' } }]),
  denyProfiles(
    [{ region: { subnet: SOURCE_RANGES } }],
    [{ region: { country: ['GB', 'CN'] } }],
    [{ protocol: 'http' }],
  ),
  hostIndex([[footprint('x-msisdn-prefix', ['135038'])], [footprint('x-handset-cidr', ['10.5.31.0/24'])]]),
  hostIndex(
    [
      [footprint('ipv4cidr', V4_SOURCE_RANGES)],
      [footprint('ipv6cidr', V6_SOURCE_RANGES)],
      [footprint('countrycode', ['us', 'cn'])],
      [footprint('x-handset-cidr', HANDSET_RANGES), footprint('x-msisdn-prefix', ['+447700'])],
    ],
    'https/1.1',
  ),
]

const some = (values: string[]) => fc.subarray(values, { minLength: 1 })
const seedDeny = fc.oneof(
  { weight: 3, arbitrary: some(MSISDN_PREFIXES).map((msdnPrefix) => ({ region: { msdnPrefix } })) },
  { weight: 3, arbitrary: some(HANDSET_RANGES).map((subnet2) => ({ region: { subnet2 } })) },
  { weight: 3, arbitrary: some(SOURCE_RANGES).map((subnet) => ({ region: { subnet } })) },
  { weight: 2, arbitrary: some(COUNTRIES).map((country) => ({ region: { country } })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(some(HANDSET_RANGES), some(MSISDN_PREFIXES))
      .map(([subnet2, msdnPrefix]) => ({ region: { subnet2, msdnPrefix } })),
  },
  { weight: 1, arbitrary: fc.constantFrom('http', 'https').map((protocol) => ({ protocol })) },
)
const seedPolicy = fc
  .array(fc.array(seedDeny, { minLength: 1, maxLength: 2 }), { minLength: 2, maxLength: 5 })
  .map((profiles) => denyProfiles(...profiles))
const denyFootprint = fc.oneof(
  some(V4_SOURCE_RANGES).map((v) => footprint('ipv4cidr', v)),
  some(V6_SOURCE_RANGES).map((v) => footprint('ipv6cidr', v)),
  some(HANDSET_RANGES).map((v) => footprint('x-handset-cidr', v)),
  some(MSISDN_PREFIXES).map((v) => footprint('x-msisdn-prefix', v)),
  some(COUNTRIES).map((v) =>
    footprint(
      'countrycode',
      v.map((c) => c.toLowerCase()),
    ),
  ),
)
const rfcPolicy = fc
  .tuple(
    fc.array(fc.array(denyFootprint, { minLength: 1, maxLength: 2 }), { minLength: 2, maxLength: 5 }),
    fc.option(fc.constantFrom('http/1.1', 'https/1.1'), { nil: undefined, freq: 3 }),
  )
  .map(([denies, denied]) => hostIndex(denies, denied))

const POLICIES: unknown[] = [
  ...HAND_WRITTEN,
  ...fc.sample(seedPolicy, { numRuns: 4, seed: 8006 }),
  ...fc.sample(rfcPolicy, { numRuns: 4, seed: 8006 }),
]

// ---- Requests ---------------------------------------------------------------------------------

type Via = 'direct' | 'proxy' | 'proxy-gateway' | 'gateway'
/** A request as the trusted hops leave it: `xff` the entries they appended, `proto` our proxy's
 * X-Forwarded-Proto, `msisdn` the gateway's MSISDN header. */
interface BaseRequest {
  via: Via
  peer: string
  xff: string[]
  proto: string | null
  msisdn: string | null
}

const hops = fc.array(fc.constantFrom(...PROXY_ADDRESSES), { maxLength: 2 })
const proto = fc.constantFrom('http', 'https')
const gatewayMsisdn = fc.option(fc.constantFrom(...MSISDNS), { nil: null, freq: 8 })
const baseRequest: fc.Arbitrary<BaseRequest> = fc.oneof(
  fc.constantFrom(...CLIENTS).map((peer): BaseRequest => ({ via: 'direct', peer, xff: [], proto: null, msisdn: null })),
  fc
    .tuple(fc.constantFrom(...PROXY_ADDRESSES), fc.constantFrom(...CLIENTS), hops, proto)
    .map(([peer, source, more, p]): BaseRequest => ({
      via: 'proxy',
      peer,
      xff: [source, ...more],
      proto: p,
      msisdn: null,
    })),
  fc
    .tuple(
      fc.constantFrom(...PROXY_ADDRESSES),
      fc.constantFrom(...HANDSETS),
      fc.constantFrom(...GATEWAY_ADDRESSES),
      hops,
      proto,
      gatewayMsisdn,
    )
    .map(([peer, handset, gateway, more, p, msisdn]): BaseRequest => ({
      via: 'proxy-gateway',
      peer,
      xff: [handset, gateway, ...more],
      proto: p,
      msisdn,
    })),
  fc
    .tuple(fc.constantFrom(...GATEWAY_ADDRESSES), fc.constantFrom(...HANDSETS), gatewayMsisdn)
    .map(([peer, handset, msisdn]): BaseRequest => ({ via: 'gateway', peer, xff: [handset], proto: null, msisdn })),
)

// ---- What a client can add --------------------------------------------------------------------

/** An X-Forwarded-For element the client writes: text, or `repeat` copies of an address, or one
 * entry of `length` times `fill` (kept short here so counterexamples stay readable). */
type XffPiece = string | { repeat: string; times: number } | { fill: string; length: number }
type Mutation =
  /** The client's own X-Forwarded-For line, left of everything a trusted hop appends; `joined`:
   * the first hop appended to this line rather than writing its own. */
  | { kind: 'x-forwarded-for'; pieces: XffPiece[]; separator: string; joined: boolean }
  /** A line of the MSISDN header or of a twin of it, before or after the gateway's. */
  | { kind: 'msisdn'; name: string; value: string; before: boolean }
  /** A second X-Forwarded-Proto line, before or after our proxy's. */
  | { kind: 'x-forwarded-proto'; value: string; before: boolean }
  /** Headers the walk must not read at all. */
  | { kind: 'header'; name: string; value: string }

const rangeAddress = fc.constantFrom(...CLIENTS, ...HANDSETS, ...PROXY_ADDRESSES, ...GATEWAY_ADDRESSES)
const junk = fc.constantFrom(
  'unknown',
  '_hidden',
  '',
  ' ',
  '\t',
  ' \t ',
  '0177.0.0.1',
  '10.1.2.3:80',
  '[2001:db8:1::9]',
  '2001:db8:1::9%eth0',
  '10.1.2',
  '1.2.3.256',
  '010.5.31.7',
  'for=10.1.2.3',
)
const xffPiece: fc.Arbitrary<XffPiece> = fc.oneof(
  { weight: 4, arbitrary: rangeAddress },
  { weight: 2, arbitrary: junk },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.record({ repeat: rangeAddress, times: fc.integer({ min: 16, max: 40 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      fill: fc.constantFrom('a', '9', ' ', '\t', '.', ':'),
      length: fc.integer({ min: 1000, max: 1500 }),
    }),
  },
)
const xffMutation = fc.record({
  kind: fc.constant('x-forwarded-for' as const),
  pieces: fc.array(xffPiece, { minLength: 1, maxLength: 4 }),
  separator: fc.constantFrom(', ', ',', ',,', ' , ', ',\t'),
  joined: fc.boolean(),
})
/** The MSISDN header's name with each letter in either case and each `-` possibly `_`. */
const msisdnTwin = fc
  .tuple(
    fc.array(fc.boolean(), { minLength: MSISDN_HEADER.length, maxLength: MSISDN_HEADER.length }),
    fc.array(fc.boolean(), { minLength: MSISDN_HEADER.length, maxLength: MSISDN_HEADER.length }),
  )
  .map(([upper, underscore]) =>
    [...MSISDN_HEADER]
      .map((c, i) => (c === '-' ? (underscore[i] === true ? '_' : '-') : upper[i] === true ? c.toUpperCase() : c))
      .join(''),
  )
const msisdnName = fc.oneof(
  fc.constantFrom(
    MSISDN_HEADER,
    'x_up_calling_line_id',
    'x-up_calling-line-id',
    'X-UP-CALLING-LINE_ID',
    'X-Up-Calling-Line-Id',
  ),
  msisdnTwin,
)
const msisdnValue = fc.oneof(
  fc.constantFrom(
    ...MSISDNS,
    '',
    'x',
    '+8613503812345',
    '008613503812345',
    '13503812345',
    '86 13503812345',
    '8613503812345, 8618612345678',
  ),
  fc.stringMatching(/^\+?[0-9]{0,16}$/),
  fc.string({ maxLength: 20 }),
)
const msisdnMutation = fc.record({
  kind: fc.constant('msisdn' as const),
  name: msisdnName,
  value: msisdnValue,
  before: fc.boolean(),
})
const protoMutation = fc.record({
  kind: fc.constant('x-forwarded-proto' as const),
  value: fc.constantFrom('http', 'https', 'HTTPS', 'Http', '', 'https, http', 'ftp'),
  before: fc.boolean(),
})
const bracketed = (address: string) => (address.includes(':') ? `"[${address}]"` : address)
const headerMutation = fc.oneof(
  rangeAddress.map((a): Mutation => ({
    kind: 'header',
    name: 'forwarded',
    value: `for=${bracketed(a)};host=${HOST};proto=https`,
  })),
  fc
    .tuple(fc.constantFrom('x-forwarded-host', 'x-real-ip', 'x-client-ip', 'true-client-ip'), rangeAddress)
    .map(([name, value]): Mutation => ({ kind: 'header', name, value })),
)
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: xffMutation },
  { weight: 3, arbitrary: msisdnMutation },
  { weight: 1, arbitrary: protoMutation },
  { weight: 1, arbitrary: headerMutation },
)

interface Case {
  policy: number
  request: BaseRequest
  mutations: Mutation[]
}
const anyCase: fc.Arbitrary<Case> = fc.record({
  policy: fc.integer({ min: 0, max: POLICIES.length - 1 }),
  request: baseRequest,
  mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
})

// ---- Building the request ---------------------------------------------------------------------

/** Header lines as sent: name (as written) and value, in order. */
type Lines = [string, string][]

const pieceText = (piece: XffPiece): string =>
  typeof piece === 'string'
    ? piece
    : 'repeat' in piece
      ? Array.from({ length: piece.times }, () => piece.repeat).join(', ')
      : piece.fill.repeat(piece.length)

/** The request's header lines once the client has made `mutations` and the trusted hops have
 * appended their own data. */
function linesOf(request: BaseRequest, mutations: readonly Mutation[]): Lines {
  const lines: Lines = [['host', HOST]]
  // X-Forwarded-For: the client's lines first, then what the hops appended (on the client's last
  // line when that hop joined it, as proxies do).
  const clientXff = mutations.flatMap((m) => (m.kind === 'x-forwarded-for' ? [m] : []))
  const trusted = request.xff.join(', ')
  const xff = clientXff.map((m) => m.pieces.map(pieceText).join(m.separator))
  const last = clientXff.at(-1)
  if (trusted !== '') {
    if (last?.joined === true && xff.length > 0) xff[xff.length - 1] = `${xff[xff.length - 1] as string}, ${trusted}`
    else xff.push(trusted)
  }
  for (const value of xff) lines.push(['x-forwarded-for', value])
  const around = (name: string, own: string | null, added: { name: string; value: string; before: boolean }[]) => {
    for (const m of added) if (m.before) lines.push([m.name, m.value])
    if (own !== null) lines.push([name, own])
    for (const m of added) if (!m.before) lines.push([m.name, m.value])
  }
  around(
    MSISDN_HEADER,
    request.msisdn,
    mutations.flatMap((m) => (m.kind === 'msisdn' ? [m] : [])),
  )
  around(
    'x-forwarded-proto',
    request.proto,
    mutations.flatMap((m) => (m.kind === 'x-forwarded-proto' ? [{ ...m, name: 'x-forwarded-proto' }] : [])),
  )
  for (const m of mutations) if (m.kind === 'header') lines.push([m.name, m.value])
  return lines
}

/** inject() takes a header object, names merged by lower case as Node merges them; an array is
 * sent as several lines. */
function headerObject(lines: Lines): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [name, value] of lines) (out[name.toLowerCase()] ??= []).push(value)
  return out
}

const shorten = (value: string) =>
  value.length <= 100
    ? JSON.stringify(value)
    : `${JSON.stringify(value.slice(0, 40))}...(${value.length} characters)...${JSON.stringify(value.slice(-40))}`
const show = (peer: string, lines: Lines) =>
  [`  peer ${peer}`, ...lines.map(([name, value]) => `  ${name}: ${shorten(value)}`)].join('\n')

async function statusOf(app: FastifyInstance, peer: string, lines: Lines): Promise<number> {
  return (await app.inject({ method: 'GET', url: PATH, remoteAddress: peer, headers: headerObject(lines) })).statusCode
}

/** What one case breaks, or null. Every prefix of the mutation list is tried. Besides inject(),
 * a request the base denies is explained with its lines exactly as sent (names in their own case,
 * never merged): explain() runs the same walk as the hook. */
async function check(app: FastifyInstance, c: Case): Promise<{ base: number; violation: string | null }> {
  const { request } = c
  const baseLines = linesOf(request, [])
  const base = await statusOf(app, request.peer, baseLines)
  return {
    base,
    violation:
      base >= 500
        ? `property 3: the base request got ${base}\n${show(request.peer, baseLines)}`
        : await mutated(app, c, base, baseLines),
  }
}

async function mutated(app: FastifyInstance, c: Case, base: number, baseLines: Lines): Promise<string | null> {
  const { request } = c
  for (let k = 1; k <= c.mutations.length; k++) {
    const lines = linesOf(request, c.mutations.slice(0, k))
    const status = await statusOf(app, request.peer, lines)
    const where = `base ${base}, then ${status} after ${k} mutation(s) (via ${request.via}, policy ${c.policy}): ${JSON.stringify(c.mutations.slice(0, k))}\nbase request:\n${show(request.peer, baseLines)}\nmutated request:\n${show(request.peer, lines)}`
    if (status >= 500) return `property 3: a 5xx; ${where}`
    if (base === 403 && status === 200) return `property 1: a client turned a 403 into a 200; ${where}`
    if (request.via === 'direct' && status !== base) {
      return `property 2: a direct client's own headers changed the decision; ${where}`
    }
    if (base === 403) {
      const explained = app.cdniAuthz.explain({
        socket: { remoteAddress: request.peer },
        raw: { rawHeaders: lines.flat(), headers: { host: HOST } },
        url: PATH,
      } as never)
      if (explained?.allowed !== false) {
        return `property 1: explain() allows the mutated request, its lines as sent; ${where}`
      }
    }
  }
  return null
}

// ---- The apps: one per policy, built once ---------------------------------------------------

const dir = t.testdir({})
const countryDb = join(dir, 'country.mmdb')
writeFileSync(countryDb, COUNTRY_DB)

async function build(
  metadata: unknown,
  options: Partial<CdniAuthzOptions> = {},
  route: (headers: Record<string, unknown>) => unknown = () => 'ok',
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(cdniAuthz, { metadata, trustedProxies: PROXIES, gateways: GATEWAYS, countryDb, ...options })
  app.get('/*', async (request) => route(request.headers))
  await app.ready()
  t.teardown(() => app.close())
  return app
}

let built: Promise<FastifyInstance[]> | undefined
const policyApps = () => (built ??= Promise.all(POLICIES.map((policy) => build(policy))))

t.test('the policies deny on every fact, in both formats, and all load', async (t) => {
  const text = JSON.stringify(POLICIES)
  for (const kind of [
    '"msdnPrefix"',
    '"subnet2"',
    '"subnet"',
    '"country"',
    '"protocol":"http',
    '"x-msisdn-prefix"',
    '"x-handset-cidr"',
    '"ipv4cidr"',
    '"ipv6cidr"',
    '"countrycode"',
    '"MI.ProtocolACL"',
  ]) {
    t.ok(text.includes(kind), `a policy reads ${kind}`)
  }
  t.equal(
    POLICIES.filter((p) => typeof p === 'object' && p !== null && 'hosts' in p).length,
    POLICIES.length / 2,
    'half are RFC 8006',
  )
  t.ok(
    (await policyApps()).every((app) => app.cdniAuthz.loaded),
    'every policy loads',
  )
})

t.test("nothing a client adds turns a 403 into a 200, changes a direct client's decision, or gets a 5xx", async (t) => {
  const apps = await policyApps()
  const seen = { runs: 0, denied: 0, allowed: 0, trustedDenied: 0, directDenied: 0, directAllowed: 0 }
  const started = performance.now()
  await fc.assert(
    fc.asyncProperty(anyCase, async (c) => {
      const app = apps[c.policy] as FastifyInstance
      const { base, violation } = await check(app, c)
      if (violation !== null) throw new Error(violation)
      seen.runs++
      if (base === 403) seen.denied++
      else seen.allowed++
      if (c.request.via === 'direct') {
        if (base === 403) seen.directDenied++
        else seen.directAllowed++
      } else if (base === 403) seen.trustedDenied++
    }),
    { numRuns: RUNS, seed: SEED },
  )
  t.comment(`${RUNS} cases in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(seen)}`)
  t.equal(seen.runs, RUNS)
  // The property says little unless the base requests reach both answers, by every route.
  t.ok(seen.denied > RUNS / 5, `${seen.denied} of ${RUNS} base requests were denied`)
  t.ok(seen.allowed > RUNS / 10, `${seen.allowed} of ${RUNS} base requests were allowed`)
  t.ok(seen.trustedDenied > RUNS / 10, `${seen.trustedDenied} denied base requests came through a proxy or gateway`)
  t.ok(
    seen.directDenied > RUNS / 40 && seen.directAllowed > RUNS / 40,
    `direct clients: ${seen.directDenied} denied, ${seen.directAllowed} allowed`,
  )
})

t.test('each property fails on a plugin that would break it', async (t) => {
  const direct = (peer: string): BaseRequest => ({ via: 'direct', peer, xff: [], proto: null, msisdn: null })
  const broken = async (app: FastifyInstance, request: BaseRequest, mutations: Mutation[]) =>
    (await check(app, { policy: 0, request, mutations })).violation
  // A deployment that trusts a client range as proxies believes what such a client writes: its
  // X-Forwarded-For lets it in (property 1), its second X-Forwarded-Proto line shuts it out
  // (property 2; the client is direct as far as the properties know).
  const credulous = await build(denyProfiles([{ region: { subnet: '198.51.100.0/25' } }]), {
    trustedProxies: [...PROXIES, '198.51.100.0/24'],
  })
  const xff: Mutation = { kind: 'x-forwarded-for', pieces: ['8.8.8.8'], separator: ', ', joined: false }
  t.match(
    await broken(credulous, direct('198.51.100.7'), [xff, { kind: 'x-forwarded-proto', value: 'http', before: true }]),
    /^property 1: /,
  )
  const ownHeaders: BaseRequest = {
    via: 'direct',
    peer: '198.51.100.7',
    xff: ['8.8.8.8'],
    proto: 'https',
    msisdn: null,
  }
  t.match(
    await broken(credulous, ownHeaders, [{ kind: 'x-forwarded-proto', value: 'https', before: true }]),
    /^property 2: /,
  )
  // A server that fails on a header.
  const crashing = await build(HAND_WRITTEN[0], {}, (headers) => {
    if (headers['x-real-ip'] !== undefined) throw new Error('boom')
    return 'ok'
  })
  t.match(
    await broken(crashing, direct('10.2.0.1'), [{ kind: 'header', name: 'x-real-ip', value: '10.1.2.3' }]),
    /^property 3: /,
  )
  // And the base requests mean what they say on a correct deployment.
  const app = await build(HAND_WRITTEN[0])
  const viaGateway = (handset: string, msisdn: string | null): BaseRequest => ({
    via: 'gateway',
    peer: '203.0.113.10',
    xff: [handset],
    proto: null,
    msisdn,
  })
  const status = (request: BaseRequest) => statusOf(app, request.peer, linesOf(request, []))
  t.equal(await status(viaGateway('10.5.31.7', '8618612345678')), 403, 'a handset in the denied subnet')
  t.equal(await status(viaGateway('10.5.32.7', '8613503812345')), 403, 'a denied MSISDN prefix')
  t.equal(await status(viaGateway('10.5.32.7', '8618612345678')), 200, 'neither')
  t.equal(
    await status({
      via: 'proxy-gateway',
      peer: '192.0.2.5',
      xff: ['10.5.32.7', '203.0.113.10', '192.0.2.77'],
      proto: 'https',
      msisdn: '8613503812345',
    }),
    403,
    'through a proxy too',
  )
})
