import { buildApp, type LogLine } from './helpers/app.js'
import t from 'tap'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import cdniAuthz, { validateMetadata, type CdniAuthzOptions } from '../src/index.js'
import { logsAtInfo, nullLoggerInfo } from '../src/plugin/plugin.js'

const gateways = [{ name: 'op-a', cidrs: ['203.0.113.0/28'], countryCode: '86' }]

const build = (options: CdniAuthzOptions, lines: LogLine[] = []) => buildApp(t, options, lines)

const get = (app: Awaited<ReturnType<typeof build>>, remoteAddress: string, headers: Record<string, string> = {}) =>
  app.inject({ url: '/content', remoteAddress, headers }).then((r) => r.statusCode)

t.test('with no metadata every request is denied until one is loaded', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build({}, lines)
  t.equal(app.cdniAuthz.loaded, false)
  t.equal(app.cdniAuthz.version, 0)
  t.equal(app.cdniAuthz.summary, null)
  t.equal(await get(app, '10.0.0.1'), 403)
  t.match(
    lines.find((l) => l.cdniAuthz),
    { level: 40, cdniAuthz: { decision: 'deny', reason: 'no-policy' } },
  )
  const result = app.cdniAuthz.update({ deliveryCriteria: [{ protocol: ['http', 'https'] }] })
  t.match(result, { version: 1, warnings: [], summary: { rules: 1, regions: 0 } })
  t.equal(app.cdniAuthz.loaded, true)
  t.equal(await get(app, '10.0.0.1'), 200, 'allow-everyone said explicitly')
})

t.test('a refused update throws a 400 error with every problem and keeps the live policy', async (t) => {
  const app = await build({ metadata: { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }] } })
  t.equal(await get(app, '10.1.1.1'), 200)
  t.throws(() => app.cdniAuthz.update({ deliveryCriteria: [{ region: { subnet: 10 } }, { protocol: 'gopher' }] }), {
    statusCode: 400,
    code: 'FST_CDNI_INVALID_METADATA',
    message: /\/deliveryCriteria\/0\/region\/subnet must be string or array \(and 1 more\)/,
    errors: [{ pointer: '/deliveryCriteria/0/region/subnet' }, { pointer: '/deliveryCriteria/1/protocol' }],
  })
  t.throws(() => app.cdniAuthz.update({ deliveryCriteria: [{ region: { subnet: '10.0.0.0/33' } }] }), {
    errors: [{ pointer: '/deliveryCriteria/0/region/subnet', message: /0–32/ }],
  })
  t.throws(() => app.cdniAuthz.update('{ "deliveryCriteria": [ }'), {
    statusCode: 400,
    errors: [{ pointer: '', message: /line 1, column 25: ValueExpected/ }],
  })
  t.equal(app.cdniAuthz.version, 1, 'no refused document counted')
  t.equal(await get(app, '10.1.1.1'), 200, 'the previous policy is still live')
  t.equal(await get(app, '11.1.1.1'), 403)
  t.match(app.cdniAuthz.update('{ "deliveryCriteria": [ { "region": { "subnet": "11.0.0.0/8" } } ] }'), { version: 2 })
  t.equal(await get(app, '10.1.1.1'), 403, 'an accepted replacement takes over')
  t.equal(await get(app, '11.1.1.1'), 200)
})

t.test('an invalid initial document fails registration loudly', async (t) => {
  const app = Fastify()
  app.register(cdniAuthz, { metadata: { deliveryCriteria: [] } })
  await t.rejects(
    async () => {
      await app.ready()
    },
    { statusCode: 400, errors: [{ pointer: '/deliveryCriteria' }] },
  )
  const logging = Fastify()
  logging.register(cdniAuthz, { logMsisdn: 'yes' as 'off' })
  await t.rejects(
    async () => {
      await logging.ready()
    },
    { code: 'FST_CDNI_INVALID_OPTION', message: /logMsisdn/ },
  )
  const bad = Fastify()
  bad.register(cdniAuthz, { trustedProxies: ['10.0.0.1/8'] })
  await t.rejects(
    async () => {
      await bad.ready()
    },
    { code: 'FST_CDNI_INVALID_OPTION', message: /trustedProxies\[0\]/ },
  )
})

t.test('a route opts out with config.cdniAuthz = false', async (t) => {
  const app = await build({})
  t.equal((await app.inject({ url: '/health', remoteAddress: '10.0.0.1' })).statusCode, 200, 'with no policy')
  app.cdniAuthz.update({ deliveryCriteria: [{ region: { subnet: '192.0.2.0/24' } }] })
  t.equal(
    (await app.inject({ url: '/health', remoteAddress: '10.0.0.1' })).statusCode,
    200,
    'with a policy that denies the client',
  )
  t.equal((await app.inject({ url: '/content', remoteAddress: '10.0.0.1' })).statusCode, 403)
  t.equal(
    (await app.inject({ url: '/nowhere', remoteAddress: '10.0.0.1' })).statusCode,
    403,
    'unknown routes are enforced too',
  )
})

t.test('an opt-out on a route registered before the plugin is not seen, and that route stays enforced', async (t) => {
  const app = Fastify()
  app.get('/early', { config: { cdniAuthz: false } }, async () => 'early')
  await app.register(cdniAuthz, { metadata: { deliveryCriteria: [{ region: { subnet: '192.0.2.0/24' } }] } })
  t.equal((await app.inject({ url: '/early', remoteAddress: '10.0.0.1' })).statusCode, 403, 'fails closed')
  t.equal((await app.inject({ url: '/early', remoteAddress: '192.0.2.1' })).statusCode, 200)
})

t.test('profiles: the first profile whose criteria all match decides; none matches: deny', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(
    {
      metadata: {
        deliveryProfiles: [
          { deliveryCriteria: [{ region: { subnet: '10.9.0.0/16' } }], deliveryRules: { allow: false } },
          {
            deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }, { protocol: 'http' }],
            deliveryRules: { allow: true },
          },
        ],
      },
    },
    lines,
  )
  t.equal(await get(app, '10.1.0.1'), 200)
  t.equal(await get(app, '10.9.0.1'), 403, 'the embargo profile comes first')
  t.match(lines.filter((l) => l.cdniAuthz).at(-1), {
    cdniAuthz: { reason: 'deny-rule', rule: '/deliveryProfiles/0', via: 'direct' },
  })
  t.equal(await get(app, '192.0.2.1'), 403)
  t.match(lines.filter((l) => l.cdniAuthz).at(-1), {
    cdniAuthz: { reason: 'no-rule-matched', rule: null, failed: ['region'] },
  })
})

t.test('time windows are [startTime, endTime) against the server clock', async (t) => {
  const now = Date.now()
  const iso = (ms: number) => new Date(ms).toISOString()
  const app = await build({
    metadata: { deliveryCriteria: [{ timeWindow: { startTime: iso(now - 3600e3), endTime: iso(now + 3600e3) } }] },
  })
  t.equal(await get(app, '10.0.0.1'), 200)
  app.cdniAuthz.update({
    deliveryCriteria: [
      { timeWindow: { startTime: iso(now - 7200e3), endTime: iso(now - 3600e3) } },
      { timeWindow: { startTime: iso(now + 3600e3), endTime: iso(now + 7200e3) } },
    ],
  })
  t.equal(await get(app, '10.0.0.1'), 403, 'outside both windows')
})

const MOBILE_REGION = {
  gateways,
  metadata: { deliveryCriteria: [{ region: { subnet2: '10.5.31.0/24', msdnPrefix: '+86135038' } }] },
}

t.test('a region matches only when every field in it matches', async (t) => {
  const app = await build(MOBILE_REGION)
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.5.31.9', 'x-up-calling-line-id': '8613503800000' }),
    200,
  )
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.5.31.9', 'x-up-calling-line-id': '8613603800000' }),
    403,
    'handset matches, MSISDN does not',
  )
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.5.32.9', 'x-up-calling-line-id': '8613503800000' }),
    403,
    'MSISDN matches, handset does not',
  )
})

t.test('a subscriber who moved to Wi-Fi is denied, and the deny line says direct, no handset, no MSISDN', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(MOBILE_REGION, lines)
  t.equal(
    await get(app, '198.51.100.1', { 'x-forwarded-for': '10.5.31.9' }),
    403,
    'the handset moved to Wi-Fi: no gateway, no mobile facts',
  )
  t.match(
    lines.filter((l) => l.cdniAuthz).at(-1),
    { cdniAuthz: { via: 'direct', handset: false, msisdn: false, failed: ['region'] } },
    'the deny line makes the Wi-Fi case recognisable',
  )
})

t.test('MSISDNs stay out of deny lines unless logMsisdn says full or masked', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(MOBILE_REGION, lines)
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.5.31.9', 'x-up-calling-line-id': '8613603800000' }),
    403,
    'denied with the MSISDN known',
  )
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.5.32.9', 'x-up-calling-line-id': '8613503800000' }),
    403,
    'denied with the MSISDN known',
  )
  t.match(
    lines.filter((l) => l.cdniAuthz),
    [{ cdniAuthz: { msisdn: true } }, { cdniAuthz: { msisdn: true } }],
    'the deny lines say a number was there',
  )
  t.notMatch(JSON.stringify(lines), /8613[56]038/, 'no MSISDN in the logs')
  const full: Record<string, unknown>[] = []
  const fullApp = await build(
    { gateways, logMsisdn: 'full', metadata: { deliveryCriteria: [{ region: { msdnPrefix: '139' } }] } },
    full,
  )
  t.equal(await get(fullApp, '203.0.113.1', { 'x-up-calling-line-id': '8613503800000' }), 403)
  t.match(
    full.filter((l) => l.cdniAuthz).at(-1),
    { cdniAuthz: { msisdn: '8613503800000' } },
    'logMsisdn full, when the operator enables it',
  )
  const masked: Record<string, unknown>[] = []
  const maskedApp = await build(
    { gateways, logMsisdn: 'masked', metadata: { deliveryCriteria: [{ region: { msdnPrefix: '139' } }] } },
    masked,
  )
  t.equal(await get(maskedApp, '203.0.113.1', { 'x-up-calling-line-id': '8613503800000' }), 403)
  t.match(
    masked.filter((l) => l.cdniAuthz).at(-1),
    { cdniAuthz: { msisdn: '86135xxxxxxxx' } },
    'logMsisdn masked keeps five digits',
  )
})

t.test('a request with no usable peer address is denied, and the deny line says no-source', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(MOBILE_REGION, lines)
  t.equal(await get(app, 'not-an-address'), 403)
  t.match(lines.filter((l) => l.cdniAuthz).at(-1), { cdniAuthz: { via: 'no-source' } })
})

t.test('IPv6 sources match IPv6 prefixes; an address outside them, or IPv4-mapped, does not', async (t) => {
  const app = await build({
    countryDb: false,
    metadata: {
      deliveryCriteria: [
        { region: { subnet: '2001:db8::/32' } },
        { region: { country: 'CN' } },
        { region: { bgpAs: 9808 } },
      ],
    },
  })
  t.equal(await get(app, '2001:db8::1'), 200)
  t.equal(await get(app, '2001:db9::1'), 403)
  t.equal(await get(app, '::ffff:10.0.0.1'), 403)
  t.match(app.cdniAuthz.summary, { regions: 3, ipv6Prefixes: 1 })
})

t.test(
  'country and AS criteria cannot match without a database, and registration logs a warning for each',
  async (t) => {
    const lines: Record<string, unknown>[] = []
    const app = await build(
      {
        countryDb: false,
        metadata: {
          deliveryCriteria: [
            { region: { subnet: '2001:db8::/32' } },
            { region: { country: 'CN' } },
            { region: { bgpAs: 9808 } },
          ],
        },
      },
      lines,
    )
    t.same(app.cdniAuthz.databases, { country: null, asn: null }, 'no country database, no AS database')
    t.match(
      lines.filter((l) => l.msg === 'cdni-authz: metadata warning'),
      [
        {
          level: 40,
          cdniAuthz: {
            warning: {
              pointer: '/deliveryCriteria/1/region/country',
              message: 'country needs a country database and none is configured: regions using it never match',
            },
          },
        },
        {
          level: 40,
          cdniAuthz: {
            warning: {
              pointer: '/deliveryCriteria/2/region/bgpAs',
              message: 'bgpAs needs an AS-number database and none is configured: regions using it never match',
            },
          },
        },
      ],
    )
    t.equal(lines.filter((l) => l.msg === 'cdni-authz: metadata warning').length, 2, 'one warning per criterion')
    t.equal(await get(app, '223.5.5.5'), 403, 'an address in China, with no country database')
    t.equal(await get(app, '2001:db8::1'), 200, 'the subnet region still matches')
    const bundled: Record<string, unknown>[] = []
    const withCountries = await build(
      { metadata: { deliveryCriteria: [{ region: { country: 'CN' } }, { region: { bgpAs: 9808 } }] } },
      bundled,
    )
    t.equal(await get(withCountries, '223.5.5.5'), 200, 'the same address, with the bundled country database')
    t.match(
      bundled.filter((l) => l.msg === 'cdni-authz: metadata warning'),
      [{ cdniAuthz: { warning: { pointer: '/deliveryCriteria/1/region/bgpAs' } } }],
      'only the AS criterion is warned about then',
    )
    t.equal(bundled.filter((l) => l.msg === 'cdni-authz: metadata warning').length, 1)
  },
)

t.test('single-field regions of every kind merge per clause and still match', async (t) => {
  const app = await build({
    gateways,
    metadata: {
      deliveryCriteria: [
        { region: { msdnPrefix: '135' } },
        { region: { msdnPrefix: ['+44'] } },
        { region: { country: 'CN' } },
        { region: { country: 'GB' } },
        { region: { bgpAs: 1 } },
        { region: { bgpAs: [2, 3] } },
        { region: { subnet2: '10.5.0.0/16' } },
        { region: { subnet2: '10.6.0.0/16' } },
      ],
    },
  })
  t.match(app.cdniAuthz.summary, { regions: 4, msisdnPrefixes: 2, ipv4Prefixes: 2 })
  t.equal(await get(app, '203.0.113.1', { 'x-forwarded-for': '10.6.0.1' }), 200, 'second merged handset subnet')
  t.equal(await get(app, '203.0.113.1', { 'x-up-calling-line-id': '447700900123' }), 200, 'second merged MSISDN prefix')
  t.equal(await get(app, '203.0.113.1', { 'x-up-calling-line-id': '8613500000000' }), 200, 'first merged MSISDN prefix')
  t.equal(await get(app, '203.0.113.1', { 'x-up-calling-line-id': '8613600000000' }), 403)
})

t.test('more than 32 combined regions use wider bitsets', async (t) => {
  const regions = Array.from({ length: 40 }, (_, i) => ({
    region: { subnet2: `10.${i}.0.0/16`, msdnPrefix: `1350${String(i).padStart(2, '0')}` },
  }))
  const app = await build({
    gateways,
    metadata: {
      deliveryCriteria: [...regions, { region: { subnet: '192.0.2.0/24' } }, { region: { subnet: '198.51.100.0/24' } }],
    },
  })
  t.match(
    app.cdniAuthz.summary,
    { regions: 41, ipv4Prefixes: 42, msisdnPrefixes: 40 },
    'the two single-subnet regions merged into one',
  )
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.39.1.1', 'x-up-calling-line-id': '8613503912345' }),
    200,
    'region 39 (second bitset word)',
  )
  t.equal(
    await get(app, '203.0.113.1', { 'x-forwarded-for': '10.39.1.1', 'x-up-calling-line-id': '8613503812345' }),
    403,
    "region 39's handset with region 38's number",
  )
  t.equal(await get(app, '198.51.100.7'), 200, 'a merged single-field region')
})

t.test('explain() tells field by field what matched', async (t) => {
  const app = await build({
    gateways,
    metadata: {
      deliveryCriteria: [{ region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } }, { protocol: 'https' }],
    },
  })
  let explanation: unknown
  app.get('/explain', { config: { cdniAuthz: false } }, async (request) => {
    explanation = app.cdniAuthz.explain(request)
    return 'x'
  })
  await app.inject({
    url: '/explain',
    remoteAddress: '203.0.113.1',
    headers: { 'x-forwarded-for': '10.5.31.9', 'x-up-calling-line-id': '8613503800000' },
  })
  t.match(explanation, {
    allowed: false,
    decidedBy: null,
    failed: ['protocol'],
    rules: [
      {
        matched: false,
        clauses: [
          {
            kind: 'region',
            matched: true,
            regions: [
              { pointers: ['/deliveryCriteria/0/region'], matched: true, fields: { subnet2: true, msisdn: true } },
            ],
          },
          { kind: 'protocol', matched: false },
        ],
      },
    ],
  })
  await app.inject({
    url: '/explain',
    remoteAddress: '203.0.113.1',
    headers: { 'x-forwarded-for': '10.5.31.9', 'x-up-calling-line-id': '8613503800000', 'x-forwarded-proto': 'https' },
  })
  t.match(explanation, { allowed: false, failed: ['protocol'] }, 'X-Forwarded-Proto from a gateway is not believed')
})

t.test('explain() names the first of two matching profiles as the one that decides', async (t) => {
  const app = await build({})
  let explanation: unknown
  app.get('/explain', { config: { cdniAuthz: false } }, async (request) => {
    explanation = app.cdniAuthz.explain(request)
    return 'x'
  })
  app.cdniAuthz.update({
    deliveryProfiles: [1, 2].map((n) => ({
      deliveryCriteria: [{ protocol: 'http' }],
      deliveryRules: { allow: n === 2 },
    })),
  })
  await app.inject({ url: '/explain', remoteAddress: '203.0.113.1' })
  t.match(
    explanation,
    { allowed: false, decidedBy: '/deliveryProfiles/0', failed: [], rules: [{ matched: true }, { matched: true }] },
    'the first of two matching profiles decides',
  )
})

t.test('explain() gives null while no policy is loaded', async (t) => {
  const empty = await build({})
  empty.get('/explain', { config: { cdniAuthz: false } }, async (request) => String(empty.cdniAuthz.explain(request)))
  t.equal(
    (await empty.inject({ url: '/explain', remoteAddress: '10.0.0.1' })).body,
    'null',
    'no policy, nothing to explain',
  )
})

t.test('validateMetadata is exported for tools', async (t) => {
  t.match(validateMetadata({ deliveryCriteria: [{ protocol: 'http' }] }), { ok: true, errors: [], warnings: [] })
})

t.test('the deny line is built only for a logger that writes info lines; denials are counted either way', async (t) => {
  const metadata = { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }] }
  for (const logger of [{ level: 'warn' }, false] as const) {
    const lines: string[] = []
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk))
        callback()
      },
    })
    const app = Fastify({ logger: logger === false ? false : { ...logger, stream } })
    await app.register(cdniAuthz, { metadata })
    app.get('/content', async () => 'ok')
    t.teardown(() => app.close())
    const denied = await app.inject({ url: '/content', remoteAddress: '11.0.0.1' })
    t.equal(denied.statusCode, 403)
    t.same(
      JSON.parse(denied.body),
      { statusCode: 403, error: 'Forbidden', message: 'Access denied' },
      'the same fixed body',
    )
    t.equal(app.cdniAuthz.counts.denied['no-rule-matched'], 1, `counted with logger ${JSON.stringify(logger)}`)
    t.same(
      lines.filter((l) => l.includes('cdni-authz')),
      [],
      'no deny line written',
    )
  }
})

t.test("which loggers get deny lines: Fastify's null logger and pino above info do not", async (t) => {
  const silent = Fastify({ logger: false })
  t.teardown(() => silent.close())
  t.equal(logsAtInfo(silent.log), false, 'logger: false is known by its no-op info')
  t.equal(logsAtInfo(silent.log, null), true, 'without that no-op to compare, it cannot tell, so it writes')
  t.equal(logsAtInfo(Fastify({ logger: { level: 'info' } }).log), true, 'pino at info')
  t.equal(logsAtInfo(Fastify({ logger: { level: 'warn' } }).log), false, 'pino at warn says so')
  const noop = () => {}
  const custom = {
    info: noop,
    error: noop,
    debug: noop,
    fatal: noop,
    warn: noop,
    trace: noop,
    child: () => custom,
    level: 'info',
  }
  t.equal(logsAtInfo(custom as never), true, 'a logger of its own with no-op methods cannot tell, so it writes')
  t.type(nullLoggerInfo(), 'function', 'found the way Fastify loads it')
  t.equal(
    nullLoggerInfo(() => {
      throw new Error('Cannot find module')
    }),
    null,
    'a Fastify without abstract-logging: none',
  )
  t.equal(
    nullLoggerInfo(() => ({})),
    null,
    'an abstract-logging without info: none',
  )
})

t.test(
  'a route that opted out is served even with an unknowable fact; others are denied and the line names the fact',
  async (t) => {
    const lines: Record<string, unknown>[] = []
    const app = await build({ metadata: { deliveryCriteria: [{ region: { msdnPrefix: '135038' } }] }, gateways }, lines)
    const twin = { 'x-up-calling-line-id': '8613503812345', x_up_calling_line_id: '8613503812345' }
    t.equal(
      (await app.inject({ url: '/health', remoteAddress: '203.0.113.1', headers: twin })).statusCode,
      200,
      'opted out',
    )
    t.equal(await get(app, '203.0.113.1', twin), 403, 'enforced')
    t.equal(
      await get(app, '203.0.113.1', { 'x-up-calling-line-id': '8613503812345' }),
      200,
      'the number alone is allowed',
    )
    t.match(
      lines.find((l) => l.cdniAuthz),
      { cdniAuthz: { decision: 'deny', reason: 'unknowable-msisdn', unknowable: ['msisdn'], via: 'op-a' } },
    )
    t.equal(app.cdniAuthz.counts.denied['unknowable-msisdn'], 1)
  },
)

t.test('the peer is classified once per connection; an unreadable peer address is not kept', async (t) => {
  const app = await build({
    metadata: { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }] },
    trustedProxies: ['192.0.2.0/24'],
  })
  // inject() gives every request a socket of its own; a keep-alive connection is shared, as here.
  const { Socket } = await import('node:net')
  const socket = new Socket()
  let address: string | undefined = 'nonsense'
  Object.defineProperty(socket, 'remoteAddress', { get: () => address })
  const request = (xff: string) =>
    ({ socket, raw: { rawHeaders: ['X-Forwarded-For', xff, 'X-Forwarded-Proto', 'http'], headers: {} } }) as never
  t.match(app.cdniAuthz.explain(request('10.1.1.1')), { allowed: false }, 'no address: no source')
  address = '192.0.2.1'
  t.match(
    app.cdniAuthz.explain(request('10.1.1.1')),
    { allowed: true },
    'read again once the socket has an address: a trusted proxy',
  )
  address = '198.51.100.1'
  t.match(app.cdniAuthz.explain(request('10.1.1.1')), { allowed: true }, 'kept for the connection: classified once')
  socket.destroy()
})

t.test('requests from connections taking turns each get their own peer', async (t) => {
  // The plugin remembers the last socket it saw; a request from another one must not get its facts.
  const app = await build({
    metadata: { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }] },
    trustedProxies: ['192.0.2.0/24'],
  })
  const { Socket } = await import('node:net')
  const socketOf = (address: string) => {
    const socket = new Socket()
    Object.defineProperty(socket, 'remoteAddress', { get: () => address })
    t.teardown(() => socket.destroy())
    return socket
  }
  const proxy = socketOf('192.0.2.1')
  const client = socketOf('198.51.100.1')
  const request = (socket: InstanceType<typeof Socket>) =>
    ({
      socket,
      raw: { rawHeaders: ['X-Forwarded-For', '10.1.1.1', 'X-Forwarded-Proto', 'http'], headers: {} },
    }) as never
  const answers = [proxy, client, client, proxy, proxy, client].map(
    (socket) => app.cdniAuthz.explain(request(socket))?.allowed,
  )
  t.same(
    answers,
    [true, false, false, true, true, false],
    'through our proxy the forwarded 10.1.1.1 decides; a direct client is its own source',
  )
})
