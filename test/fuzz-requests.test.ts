// Request fuzzing: generated peers, X-Forwarded-For chains, Forwarded, MSISDN and protocol headers
// go through the plugin with inject(), and every decision is compared with a reference model
// written here, from the README and docs/TRUST.md, without any of the plugin's own code. A 5xx, or an
// allow the model denies, fails the property; so does a deny the model allows.
import t from 'tap'
import fc from 'fast-check'
import { isIPv6 } from 'node:net'
import ipaddr from 'ipaddr.js'
import Fastify from 'fastify'
import cdniAuthz from '../src/index.js'

/** FUZZ_RUNS raises the count for the long run (`npm run test:long`). */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)

const PROXIES = ['192.0.2.0/24', '2001:db8:ff::/48']
const GATEWAY = '203.0.113.0/28'
const METADATA = {
  deliveryCriteria: [
    { region: { subnet: ['10.1.0.0/16', '2001:db8:1::/48'] } },
    { region: { subnet2: ['10.5.31.0/24', '2001:db8:5::/48'], msdnPrefix: ['135038', '+447700'] } },
    { protocol: 'https' },
  ],
}

// ---- The reference model -------------------------------------------------------------------

type Address = ipaddr.IPv4 | ipaddr.IPv6

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

/** The strict parsing of docs/TRUST.md: four-part decimal without leading zeros, or standard IPv6 text
 * without zone, brackets or port; IPv4-mapped unwrapped. Anything else: no address. */
function strictAddress(text: string): Address | null {
  if (IPV4.test(text)) return ipaddr.IPv4.parse(text)
  if (!isIPv6(text) || text.includes('%')) return null
  const v6 = ipaddr.IPv6.parse(text)
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6
}

const inList = (address: Fact<Address>, cidrs: readonly string[]): address is Address =>
  address !== null &&
  address !== 'unknowable' &&
  cidrs.some((cidr) => {
    const [network, length] = ipaddr.parseCIDR(cidr)
    return network.kind() === address.kind() && address.match(network, length)
  })

/** Header lines as sent: name (any case) and value, in order. */
type Lines = [string, string][]

const valuesOf = (lines: Lines, name: string): string[] =>
  lines.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v)

/** A fact as the edge may hold it: present, absent (it does not apply), or unknowable (there,
 * but not to be believed). */
type Fact<T> = T | null | 'unknowable'

/**
 * X-Forwarded-For as the walk may read it: every line joined as Node joins them, elements read
 * right to left, empty ones skipped, at most 16 non-empty entries and nothing left of the last
 * 1,024 characters. Each call gives the next entry, null when none is left, or 'unknowable' for
 * one that is no address or lies beyond those caps.
 */
function forwardedReader(lines: Lines): () => Address | null | 'unknowable' {
  const joined = valuesOf(lines, 'x-forwarded-for').join(', ')
  const floor = Math.max(0, joined.length - 1024)
  const elements: { text: string; comma: number }[] = []
  let offset = 0
  for (const text of joined.split(',')) {
    elements.push({ text, comma: offset - 1 })
    offset += text.length + 1
  }
  let next = elements.length - 1
  let budget = 16
  return () => {
    while (next >= 0) {
      const element = elements[next--] as { text: string; comma: number }
      // The comma before the element must be in the window (or the element starts the header).
      if (element.comma < floor && !(element.comma === -1 && floor === 0)) return 'unknowable'
      const text = element.text.replace(/^[ \t]+|[ \t]+$/g, '')
      if (text === '') continue
      if (budget-- === 0) return 'unknowable'
      return strictAddress(text) ?? 'unknowable'
    }
    return null
  }
}

/** A header name equal to `wanted` once case is folded and `_` read as `-`, but not the same. */
const isTwin = (name: string, wanted: string) =>
  name.toLowerCase() !== wanted && name.toLowerCase().replace(/_/g, '-') === wanted

/** What the edge may believe, worked out the way docs/TRUST.md words it. */
function referenceFacts(
  peerText: string,
  lines: Lines,
): { source: Fact<Address>; handset: Fact<Address>; msisdn: Fact<string>; protocol: Fact<string> } {
  const peer = strictAddress(peerText)
  if (peer === null) return { source: 'unknowable', handset: null, msisdn: null, protocol: 'http' }
  const peerIsProxy = inList(peer, PROXIES)
  // Protocol: the socket (inject() is plain HTTP), or exactly one X-Forwarded-Proto line from a
  // trusted proxy; anything else from it is unknowable.
  let protocol: Fact<string> = 'http'
  if (peerIsProxy) {
    const xfp = valuesOf(lines, 'x-forwarded-proto')
    protocol =
      xfp.length === 1 && ['http', 'HTTP', 'https', 'HTTPS'].includes(xfp[0] as string)
        ? (xfp[0] as string).toLowerCase()
        : 'unknowable'
  }
  if (!peerIsProxy && !inList(peer, [GATEWAY])) return { source: peer, handset: null, msisdn: null, protocol }
  const next = forwardedReader(lines)
  let source: Fact<Address> = peer
  if (peerIsProxy) {
    for (;;) {
      const entry = next()
      if (entry === null || entry === 'unknowable') {
        return { source: 'unknowable', handset: null, msisdn: null, protocol }
      }
      if (!inList(entry, PROXIES)) {
        source = entry
        break
      }
    }
  }
  if (!inList(source, [GATEWAY])) return { source, handset: null, msisdn: null, protocol }
  // The source is the gateway: the entry it appended is the next one to the left.
  const handset = next()
  const msisdnLines = valuesOf(lines, 'x-up-calling-line-id')
  const twins = lines.filter(([name]) => isTwin(name, 'x-up-calling-line-id')).length
  let msisdn: Fact<string> = null
  if (msisdnLines.length + twins > 0) {
    const match = twins === 0 && msisdnLines.length === 1 ? /^\+?([0-9]{1,15})$/.exec(msisdnLines[0] as string) : null
    msisdn = match && !(match[1] as string).startsWith('0') ? (match[1] as string) : 'unknowable'
  }
  return { source, handset, msisdn, protocol }
}

/** The seed's format: some region matches, and the protocol entry matches; the policy reads
 * every fact, so an unknowable one denies first. */
function referenceAllows(peer: string, lines: Lines): boolean {
  const facts = referenceFacts(peer, lines)
  if (Object.values(facts).includes('unknowable')) return false
  const known = facts as {
    source: Address | null
    handset: Address | null
    msisdn: string | null
    protocol: string | null
  }
  const national =
    known.msisdn !== null && known.msisdn.startsWith('86') && known.msisdn.length > 2 ? known.msisdn.slice(2) : null
  const msisdnMatches = (national?.startsWith('135038') ?? false) || (known.msisdn?.startsWith('447700') ?? false)
  const region =
    inList(known.source, ['10.1.0.0/16', '2001:db8:1::/48']) ||
    (inList(known.handset, ['10.5.31.0/24', '2001:db8:5::/48']) && msisdnMatches)
  return region && known.protocol === 'https'
}

// ---- Generators ----------------------------------------------------------------------------

const addressPool = [
  '192.0.2.5',
  '192.0.2.77',
  '2001:db8:ff::1',
  '::ffff:192.0.2.5', // our proxies
  '203.0.113.10',
  '203.0.113.15',
  '::ffff:203.0.113.10', // the gateway
  '10.1.2.3',
  '10.1.255.255',
  '10.2.0.1',
  '::ffff:10.1.2.3',
  '2001:db8:1::9',
  '2001:DB8:1::9', // policy subnet
  '10.5.31.7',
  '10.5.32.7',
  '2001:db8:5::7', // handset subnet
  '198.51.100.7',
  '8.8.8.8',
  '::1',
  '::',
]
const malformed = [
  '0177.0.0.1',
  '10.1.2.3:5678',
  '10.1.2',
  '10.1.2.3.4',
  '010.1.2.3',
  '1.2.3.256',
  '0x0a.1.2.3',
  '167838211',
  '[2001:db8:1::9]',
  '2001:db8:1::9%eth0',
  'fe80::1%25en0',
  'unknown',
  '_hidden',
  '',
  ' ',
  '10.1.2.3 x',
  '\u00a010.1.2.3',
  '10.1.2.3\u00a0',
  '１０.1.2.3',
  '10.1.2.３',
  'ｆｅ80::1',
  '2001:db8:1::9::1',
  ':::',
  '1::2::3',
]
const entry = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...addressPool) },
  { weight: 3, arbitrary: fc.constantFrom(...malformed) },
  { weight: 1, arbitrary: fc.ipV4() },
  { weight: 1, arbitrary: fc.ipV6() },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
)
const padding = fc.constantFrom('', ' ', '  ', '\t')
const xffLine = fc
  .tuple(
    fc.array(fc.tuple(padding, entry, padding), { minLength: 0, maxLength: 5 }),
    fc.constantFrom(',', ', ', ' , ', ',\t'),
  )
  .map(([parts, comma]) => parts.map(([a, e, b]) => a + e + b).join(comma))
const longXff = fc.oneof(
  fc.integer({ min: 15, max: 20 }).map((n) =>
    Array.from({ length: n }, (_, i) => `10.5.31.${i}`)
      .concat('203.0.113.10')
      .join(', '),
  ),
  fc.integer({ min: 1000, max: 1100 }).map((n) => `${'6'.repeat(n)}, 10.5.31.7, 203.0.113.10`),
  fc
    .integer({ min: 12, max: 18 })
    .map((n) => ['10.5.31.7', '203.0.113.10', ...Array.from({ length: n }, () => '192.0.2.77')].join(', ')),
  fc.constantFrom(',, ,10.5.31.77,,', ' , 10.1.2.3 ,, ', ',,,'),
)

const msisdnValue = fc.oneof(
  fc.constantFrom(
    '8613503812345',
    '+8613503812345',
    '008613503812345',
    '13503812345',
    '447700900123',
    '+447700900123',
    '8613912345678',
    '86',
    '+86',
    '0861350381234',
    '86135038123456789',
    '8613503812345, 8613503812345',
    '86 13503812345',
    '86-1350-381-2345',
    '+86 135 0381 2345',
    '８６１３５０３８１２３４５',
    '86135038\u00bd',
    '\u00e98613503812345',
    ' 8613503812345',
    '8613503812345 ',
    '++8613503812345',
    '+',
    '',
    '8613503812345;x',
  ),
  fc.stringMatching(/^\+?[0-9]{0,17}$/),
  fc.string({ maxLength: 20 }),
  fc.string({ minLength: 200, maxLength: 400 }),
)
/** `name` with each letter's case drawn at random, as a proxy may write it. */
const anyCase = (name: string) =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''))
/** Names of the same length as a wanted one that differ in a character (or, with `?`, in what
 * only a letter may differ by: case, 0x20): never read. */
const nearMisses = (name: string) =>
  fc.constantFrom(
    `y${name.slice(1)}`,
    name.replace(/-/g, '?'),
    `${name.slice(0, -1)}_`,
    `${name.slice(0, 5)}${name[5] === '-' ? '.' : '-'}${name.slice(6)}`,
    `${name.slice(0, -1)}${String.fromCharCode((name.charCodeAt(name.length - 1) as number) - 32 + 1)}`,
  )
const msisdnName = fc.oneof(
  fc.constantFrom(
    'x-up-calling-line-id',
    'X-Up-Calling-Line-Id',
    'x_up_calling_line_id',
    'X_UP_CALLING_LINE_ID',
    'x-up_calling-line-id',
    'X-Up-Calling-Line_Id',
  ),
  anyCase('x-up-calling-line-id'),
  anyCase('x_up-calling_line-id'),
  nearMisses('x-up-calling-line-id'),
)
const protoValue = fc.constantFrom('http', 'https', 'HTTPS', 'HTTP', 'Https', 'https, https', 'ftp', '', 'https ')
const forwardedValue = fc.constantFrom(
  'for=10.1.2.3;proto=https',
  'for="[2001:db8:1::9]";proto=https',
  'for=unknown',
  'by=203.0.113.10;for=10.5.31.7',
)

/** Header lines: each kind may appear not at all, once, or repeated. */
const lines: fc.Arbitrary<Lines> = fc
  .tuple(
    fc.array(fc.oneof(xffLine, longXff), { maxLength: 2 }),
    fc.array(fc.tuple(msisdnName, msisdnValue), { maxLength: 2 }),
    fc.array(protoValue, { maxLength: 2 }),
    fc.array(forwardedValue, { maxLength: 1 }),
    fc.oneof(
      fc.constantFrom('X-Forwarded-For', 'x-forwarded-for', 'X-FORWARDED-FOR'),
      anyCase('x-forwarded-for'),
      nearMisses('x-forwarded-for'),
    ),
  )
  .map(([xffs, msisdns, protos, forwardeds, xffName]) => [
    ...xffs.map((v): [string, string] => [xffName, v]),
    ...msisdns,
    ...protos.map((v): [string, string] => ['x-forwarded-proto', v]),
    ...forwardeds.map((v): [string, string] => ['forwarded', v]),
  ])
const peer = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...addressPool) },
  { weight: 1, arbitrary: fc.constantFrom(...malformed) },
)
const anyRequest = fc.tuple(peer, lines)

/** Requests shaped like real traffic (through our proxies, from the gateway), with a fault here
 * and there: purely random ones are nearly all denied, which would test little. */
const plausibleRequest: fc.Arbitrary<[string, Lines]> = fc
  .tuple(
    fc.constantFrom('192.0.2.5', '::ffff:192.0.2.5', '2001:db8:ff::1', '203.0.113.10'),
    fc.array(entry, { maxLength: 2 }),
    fc.constantFrom('10.5.31.7', '10.5.32.7', '2001:db8:5::7', '::ffff:10.5.31.7', '10.5.31.7:80', '0010.5.31.7'),
    fc.constantFrom('203.0.113.10', '203.0.113.3', '10.1.2.3', '10.2.0.1', '2001:db8:1::9', '::ffff:10.1.2.3'),
    fc.array(fc.constantFrom('192.0.2.77', '2001:db8:ff::1'), { maxLength: 2 }),
    fc.oneof({ weight: 3, arbitrary: fc.constant('x-up-calling-line-id') }, { weight: 1, arbitrary: msisdnName }),
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('8613503812345', '+8613503812345', '+447700900123', '8613912345678') },
      { weight: 1, arbitrary: msisdnValue },
    ),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(['https']) },
      { weight: 1, arbitrary: fc.array(protoValue, { maxLength: 2 }) },
    ),
    // now and then a second MSISDN line: the same header again, or its underscore twin
    fc.oneof(
      { weight: 3, arbitrary: fc.constant([]) },
      { weight: 1, arbitrary: fc.tuple(msisdnName, msisdnValue).map((line) => [line]) },
    ),
  )
  .map(([peerText, junk, handset, source, proxies, name, number, protos, extra]): [string, Lines] => {
    const chain = [...junk, handset, source, ...proxies].join(', ')
    return [
      peerText,
      [
        ['x-forwarded-for', chain],
        [name, number],
        ...extra,
        ...protos.map((v): [string, string] => ['x-forwarded-proto', v]),
      ],
    ]
  })

/** inject() takes a header object; a repeated header is an array, sent as several lines. Names
 * differing only in case are one header to Node, so they are merged here as Node would. */
function headerObject(list: Lines): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [name, value] of list) (out[name.toLowerCase()] ??= []).push(value)
  return out
}

t.test('every generated request: never a 5xx, and exactly the reference decision', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(cdniAuthz, {
    metadata: METADATA,
    trustedProxies: PROXIES,
    gateways: [{ name: 'op-a', cidrs: [GATEWAY], countryCode: '86' }],
  })
  app.get('/content', async () => 'ok')
  t.teardown(() => app.close())

  let allowed = 0
  let tried = 0
  await fc.assert(
    fc.asyncProperty(fc.oneof(anyRequest, plausibleRequest), async ([remoteAddress, list]) => {
      const response = await app.inject({ url: '/content', remoteAddress, headers: headerObject(list) })
      tried++
      if (response.statusCode === 200) allowed++
      const expected = referenceAllows(remoteAddress, list) ? 200 : 403
      if (response.statusCode !== expected) {
        throw new Error(
          `got ${response.statusCode}, the reference says ${expected}: ${JSON.stringify(app.cdniAuthz.explain({ socket: { remoteAddress }, raw: { rawHeaders: list.flat(), headers: {} } } as never))}`,
        )
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122) },
  )
  t.equal(tried, RUNS)
  // The generators must reach both answers, or the property says little.
  t.ok(allowed > RUNS / 20, `${allowed} of ${RUNS} generated requests were allowed`)
  t.ok(allowed < RUNS - RUNS / 20, `${RUNS - allowed} of ${RUNS} were denied`)
})

t.test('header names as sent, in any case and with near misses: the walk agrees with the reference', async (t) => {
  // inject() above takes a header object, merged by lower-cased name; here the walk reads the
  // lines exactly as a proxy wrote them, through explain() (the same walk as the hook).
  const app = Fastify({ logger: false })
  await app.register(cdniAuthz, {
    metadata: METADATA,
    trustedProxies: PROXIES,
    gateways: [{ name: 'op-a', cidrs: [GATEWAY], countryCode: '86' }],
  })
  t.teardown(() => app.close())
  let allowed = 0
  await fc.assert(
    fc.property(fc.oneof(anyRequest, plausibleRequest), ([remoteAddress, list]) => {
      const explanation = app.cdniAuthz.explain({
        socket: { remoteAddress },
        raw: { rawHeaders: list.flat(), headers: {} },
      } as never)
      if (explanation?.allowed) allowed++
      return explanation?.allowed === referenceAllows(remoteAddress, list)
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122) },
  )
  t.ok(allowed > RUNS / 20, `${allowed} of ${RUNS} generated requests were allowed`)
})

t.test("the reference model itself agrees with docs/TRUST.md's rules on the example rows", async (t) => {
  const msisdn: [string, string] = ['x-up-calling-line-id', '8613503812345']
  t.same(referenceFacts('198.51.100.7', [['x-forwarded-for', '10.1.2.3'], msisdn]).source?.toString(), '198.51.100.7')
  t.equal(referenceFacts('198.51.100.7', [['x-forwarded-for', '10.1.2.3'], msisdn]).msisdn, null)
  t.equal(
    referenceFacts('203.0.113.10', [['x-forwarded-for', '6.6.6.6, 10.1.2.3'], msisdn]).handset?.toString(),
    '10.1.2.3',
  )
  t.equal(
    referenceFacts('192.0.2.5', [['x-forwarded-for', '6.6.6.6, 10.1.2.3, 203.0.113.10'], msisdn]).handset?.toString(),
    '10.1.2.3',
  )
  t.equal(referenceFacts('203.0.113.10', [['x-forwarded-for', '0177.0.0.1'], msisdn]).handset, 'unknowable')
  t.equal(referenceFacts('203.0.113.10', [['x-forwarded-for', '10.1.2.3:5678'], msisdn]).msisdn, '8613503812345')
  t.equal(referenceFacts('203.0.113.10', [msisdn]).handset, null, 'the gateway appended nothing: absent')
  t.equal(
    referenceFacts('203.0.113.10', [['x-forwarded-for', ',, ,10.5.31.77,,'], msisdn]).handset?.toString(),
    '10.5.31.77',
  )
  t.equal(referenceFacts('203.0.113.10', [msisdn, ['x-up_calling-line-id', '1']]).msisdn, 'unknowable')
  t.equal(referenceFacts('192.0.2.5', [['x-forwarded-proto', 'https']]).source, 'unknowable')
  t.equal(
    referenceAllows('192.0.2.5', [
      ['x-forwarded-for', '10.1.2.3'],
      ['x-forwarded-proto', 'https'],
    ]),
    true,
  )
  t.equal(
    referenceAllows('192.0.2.5', [
      ['x-forwarded-for', '10.1.2.3'],
      ['x-forwarded-proto', 'http'],
    ]),
    false,
  )
})
