// Fail-closed audit: for each criterion, a request whose fact cannot be established is denied,
// even where the same request with the fact established is allowed (each case shows both, so a
// deny that comes from somewhere else cannot pass for this one).
import { buildApp, type LogLine } from './helpers/app.js'
import t from 'tap'
import Fastify from 'fastify'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import cdniAuthz, { type CdniAuthzOptions } from '../src/index.js'
import { ASN, CITY } from './helpers/geo.js'

const PROXY = '192.0.2.5'
const GATEWAY = '203.0.113.10'
const TRUST: CdniAuthzOptions = {
  trustedProxies: ['192.0.2.0/24'],
  gateways: [{ name: 'op-a', cidrs: ['203.0.113.0/28'], countryCode: '86' }],
}

/** An app for `metadata`; with `lines`, its log (pino, info and up) is written into them. */
async function app(metadata: unknown, trust: CdniAuthzOptions = TRUST, lines?: LogLine[]) {
  const instance = await buildApp(t, { ...trust, metadata }, lines)
  return (remoteAddress: string, headers: Record<string, string | string[]> = {}) =>
    instance.inject({ url: '/content', remoteAddress, headers }).then((r) => r.statusCode)
}

const criteria = (...entries: unknown[]) => ({ deliveryCriteria: entries })
/** The load warnings the plugin logged, as `{ pointer, message }`. */
const warningsIn = (lines: LogLine[]) =>
  lines
    .filter((line) => line.msg === 'cdni-authz: metadata warning')
    .map((line) => (line.cdniAuthz as { warning: unknown }).warning)
const MSISDN = { 'x-up-calling-line-id': '8613503812345' }
const GB = '81.2.69.142' // GB in the test's City database
const TELSTRA = '1.130.1.1' // AS 1221 in the test's AS database

t.test('subnet: no source address, no match', async (t) => {
  const get = await app(criteria({ region: { subnet: ['10.0.0.0/8', '192.0.2.0/24', '0.0.0.0/0'] } }))
  t.equal(await get(PROXY, { 'x-forwarded-for': '10.1.2.3' }), 200, 'established: allowed')
  t.equal(await get(PROXY), 403, 'our proxy forwarded no X-Forwarded-For')
  t.equal(await get(PROXY, { 'x-forwarded-for': '192.0.2.9, 192.0.2.7' }), 403, 'every entry is one of our proxies')
  t.equal(await get(PROXY, { 'x-forwarded-for': '10.1.2.3:443' }), 403, 'the entry has a port')
  t.equal(
    await get(PROXY, { 'x-forwarded-for': ['10.1.2.3', ...Array(16).fill('192.0.2.9')].join(',') }),
    403,
    'more of our proxies than the entry cap',
  )
  t.equal(
    await get(PROXY, { 'x-forwarded-for': [...Array(16).fill('6.6.6.6'), '10.1.2.3'].join(',') }),
    200,
    'what the client wrote left of its address changes nothing, however long',
  )
  t.equal(await get('not-an-address'), 403, 'the socket gave no usable address')
})

t.test('subnet2: no handset address, no match', async (t) => {
  const metadata = criteria({ region: { subnet2: '10.5.31.0/24' } })
  const get = await app(metadata)
  t.equal(await get(GATEWAY, { 'x-forwarded-for': '10.5.31.7' }), 200, 'established: allowed')
  t.equal(await get(GATEWAY), 403, 'the gateway appended nothing')
  t.equal(await get(GATEWAY, { 'x-forwarded-for': '010.5.31.7' }), 403, 'the entry is not strict decimal')
  t.equal(
    await get('198.51.100.7', { 'x-forwarded-for': '10.5.31.7' }),
    403,
    'not a gateway: its header is not believed',
  )
  const noGateway = await app(metadata, { trustedProxies: ['192.0.2.0/24'] })
  t.equal(await noGateway(GATEWAY, { 'x-forwarded-for': '10.5.31.7' }), 403, 'no gateway configured at all')
})

t.test('msdnPrefix: no subscriber number, no match', async (t) => {
  const metadata = criteria({ region: { msdnPrefix: '135038' } })
  const get = await app(metadata)
  t.equal(await get(GATEWAY, MSISDN), 200, 'established: allowed')
  t.equal(await get(GATEWAY), 403, 'no header')
  t.equal(await get(GATEWAY, { 'x-up-calling-line-id': ['8613503812345', '8613503812345'] }), 403, 'two header lines')
  t.equal(await get(GATEWAY, { ...MSISDN, x_up_calling_line_id: '8613503812345' }), 403, 'an underscore twin beside it')
  t.equal(await get(GATEWAY, { 'x-up-calling-line-id': '86-135-0381-2345' }), 403, 'punctuation')
  t.equal(await get(GATEWAY, { 'x-up-calling-line-id': '8613503812345678' }), 403, 'over 15 digits')
  t.equal(await get('198.51.100.7', MSISDN), 403, 'not from a gateway')
  const noGateway = await app(metadata, {})
  t.equal(await noGateway(GATEWAY, MSISDN), 403, 'no gateway configured at all')
})

t.test('country and bgpAs: no database, no match (and a load warning says so)', async (t) => {
  const dir = t.testdir({})
  const cityPath = join(dir, 'city.mmdb')
  const asnPath = join(dir, 'asn.mmdb')
  writeFileSync(cityPath, CITY)
  writeFileSync(asnPath, ASN)
  const cases = [
    {
      region: { country: 'GB' },
      source: GB,
      databases: { countryDb: cityPath },
      warning: 'country needs a country database and none is configured: regions using it never match',
    },
    {
      region: { bgpAs: 1221 },
      source: TELSTRA,
      databases: { asnDb: asnPath },
      warning: 'bgpAs needs an AS-number database and none is configured: regions using it never match',
    },
  ]
  for (const { region, source, databases, warning } of cases) {
    const name = Object.keys(region)[0] as string
    const metadata = criteria({ region }, { region: { subnet: '10.0.0.0/8' } })
    const withDatabase: LogLine[] = []
    const established = await app(metadata, { ...TRUST, ...databases }, withDatabase)
    t.equal(await established(source), 200, `${name} established from a database: allowed`)
    t.same(warningsIn(withDatabase), [], `${name}: with a database, no load warning`)
    const lines: LogLine[] = []
    const get = await app(metadata, { ...TRUST, countryDb: false }, lines)
    t.same(
      warningsIn(lines),
      [{ pointer: `/deliveryCriteria/0/region/${name}`, message: warning }],
      `${name}: the load warning names the criterion and says it never matches`,
    )
    t.equal(await get(source), 403, `${name} without a database never matches`)
    t.equal(await get('198.51.100.7'), 403, `${name} without a database never matches, for any address`)
    t.equal(await get('10.1.2.3'), 200, 'another region still matches')
  }
})

t.test('protocol: unknown, no match', async (t) => {
  const get = await app(criteria({ protocol: ['http', 'https'] }))
  t.equal(
    await get(PROXY, { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'https' }),
    200,
    'established: allowed',
  )
  t.equal(await get(PROXY, { 'x-forwarded-for': '10.1.2.3' }), 403, 'our proxy did not say')
  t.equal(
    await get(PROXY, { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'gopher' }),
    403,
    'our proxy said something else',
  )
  t.equal(
    await get(PROXY, { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': ['https', 'https'] }),
    403,
    'our proxy said it twice',
  )
})

t.test('timeWindow: the clock is always known; inside the window allowed, outside no match', async (t) => {
  const inside = await app(
    criteria({ timeWindow: { startTime: '2000-01-01T00:00:00Z', endTime: '2100-01-01T00:00:00Z' } }),
  )
  t.equal(await inside('10.1.2.3'), 200, 'established: the clock is inside the window')
  const get = await app(
    criteria({ timeWindow: { startTime: '2000-01-01T00:00:00Z', endTime: '2001-01-01T00:00:00Z' } }),
  )
  t.equal(await get('10.1.2.3'), 403, 'the window has ended')
})

t.test(
  'metadata the edge does not understand is refused whole, and with no policy every request is denied',
  async (t) => {
    const instance = Fastify({ logger: false })
    await instance.register(cdniAuthz, TRUST)
    instance.get('/content', async () => 'ok')
    t.teardown(() => instance.close())
    t.throws(() => instance.cdniAuthz.update(criteria({ region: { subnet: '0.0.0.0/0', handsetModel: 'any' } })), {
      statusCode: 400,
      errors: [{ pointer: /deliveryCriteria/ }],
    })
    t.throws(() => instance.cdniAuthz.update(criteria({ geoFence: { radius: 5 } })), {
      statusCode: 400,
      errors: [{ pointer: /deliveryCriteria/ }],
    })
    t.equal(instance.cdniAuthz.loaded, false)
    t.equal(
      (await instance.inject({ url: '/content', remoteAddress: '10.1.2.3' })).statusCode,
      403,
      'nothing loaded: denied',
    )
  },
)
