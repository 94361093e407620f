import t from 'tap'
import Fastify from 'fastify'
import fc from 'fast-check'
import { Writable } from 'node:stream'
import cdniAuthz from '../src/index.js'
import { BUNDLED_COUNTRY_DB } from '../src/facts/ip-database.js'
import { normalizeOptions } from '../src/plugin/options.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 300)
const gateway = { name: 'op', cidrs: ['203.0.113.0/28'], countryCode: '86' }
const missing = '/nonexistent/cdni-authz-test.mmdb'

/** Registers the plugin on a fresh instance; resolves with the instance, or rejects as `ready()` does. */
async function register(options: unknown, lines: Record<string, unknown>[] = []) {
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      callback()
    },
  })
  const app = Fastify({ logger: { level: 'warn', stream } })
  try {
    await app.register(cdniAuthz, options as never)
    await app.ready()
    return app
  } finally {
    await app.close()
  }
}

// Each wrong value, alone in the options, with what the error must say. Every case also names a
// database that does not exist: the option is refused before any file is opened.
const wrong: [string, unknown, RegExp][] = [
  ['metadata', null, /^cdni-authz: metadata must be a metadata document \(an object\) or its JSON text$/],
  ['metadata', 42, /^cdni-authz: metadata must be/],
  ['metadata', [{ deliveryCriteria: [] }], /^cdni-authz: metadata must be/],
  ['metadata', true, /^cdni-authz: metadata must be/],
  ['enforcedElsewhere', 'MI.SourceMetadata', /^cdni-authz: enforcedElsewhere must be an array of metadata type names/],
  ['enforcedElsewhere', { 0: 'MI.SourceMetadata' }, /^cdni-authz: enforcedElsewhere must be an array/],
  ['enforcedElsewhere', null, /^cdni-authz: enforcedElsewhere must be an array/],
  ['enforcedElsewhere', [7], /^cdni-authz: enforcedElsewhere\[0\] must be a non-empty string$/],
  ['enforcedElsewhere', ['MI.SourceMetadata', ''], /^cdni-authz: enforcedElsewhere\[1\] must be a non-empty string$/],
  ['logMsisdn', 'yes', /^cdni-authz: logMsisdn must be "off", "masked" or "full"$/],
  ['logMsisdn', 'OFF', /^cdni-authz: logMsisdn must be/],
  ['logMsisdn', false, /^cdni-authz: logMsisdn must be/],
  ['logMsisdn', null, /^cdni-authz: logMsisdn must be/],
  ['countryDb', true, /^cdni-authz: countryDb must be a \.mmdb file path or false$/],
  ['countryDb', '', /^cdni-authz: countryDb must be/],
  ['countryDb', null, /^cdni-authz: countryDb must be/],
  ['countryDb', ['a.mmdb'], /^cdni-authz: countryDb must be/],
  ['asnDb', true, /^cdni-authz: asnDb must be a \.mmdb file path or false$/],
  ['asnDb', 0, /^cdni-authz: asnDb must be/],
  ['trustedProxies', '10.0.0.0/8', /^cdni-authz: trustedProxies must be an array of CIDR strings$/],
  ['trustedProxies', null, /^cdni-authz: trustedProxies must be an array/],
  ['trustedProxies', [42], /^cdni-authz: trustedProxies\[0\] must be a CIDR string$/],
  ['trustedProxies', ['10.0.0.0/8', null], /^cdni-authz: trustedProxies\[1\] must be a CIDR string$/],
  ['gateways', gateway, /^cdni-authz: gateways must be an array of gateway objects$/],
  ['gateways', 'op', /^cdni-authz: gateways must be an array/],
  ['gateways', [null], /^cdni-authz: gateways\[0\] must be an object$/],
  ['gateways', [['op']], /^cdni-authz: gateways\[0\] must be an object$/],
  ['gateways', [gateway, 'op'], /^cdni-authz: gateways\[1\] must be an object$/],
  ['gateways', [{ ...gateway, name: '' }], /^cdni-authz: gateways\[0\]\.name must be a non-empty string$/],
  ['gateways', [{ ...gateway, name: 5 }], /^cdni-authz: gateways\[0\]\.name must be/],
  [
    'gateways',
    [{ name: 'op', countryCode: '86' }],
    /^cdni-authz: gateways\[0\]\.cidrs must be a non-empty array of CIDR strings$/,
  ],
  ['gateways', [{ ...gateway, cidrs: [] }], /^cdni-authz: gateways\[0\]\.cidrs must be a non-empty array/],
  [
    'gateways',
    [{ ...gateway, cidrs: '203.0.113.0/28' }],
    /^cdni-authz: gateways\[0\]\.cidrs must be a non-empty array/,
  ],
  [
    'gateways',
    [{ ...gateway, cidrs: ['203.0.113.0/28', 3] }],
    /^cdni-authz: gateways\[0\]\.cidrs\[1\] must be a CIDR string$/,
  ],
  [
    'gateways',
    [{ ...gateway, countryCode: 86 }],
    /^cdni-authz: gateways\[0\]\.countryCode must be 1–3 digits, such as "86"$/,
  ],
  ['gateways', [{ ...gateway, countryCode: '+86' }], /^cdni-authz: gateways\[0\]\.countryCode must be/],
  ['gateways', [{ ...gateway, countryCode: '8600' }], /^cdni-authz: gateways\[0\]\.countryCode must be/],
  ['gateways', [{ name: 'op', cidrs: ['203.0.113.0/28'] }], /^cdni-authz: gateways\[0\]\.countryCode must be/],
  [
    'gateways',
    [{ ...gateway, msisdnHeaders: 'x-msisdn' }],
    /^cdni-authz: gateways\[0\]\.msisdnHeaders must be a non-empty array of header names$/,
  ],
  [
    'gateways',
    [{ ...gateway, msisdnHeaders: [] }],
    /^cdni-authz: gateways\[0\]\.msisdnHeaders must be a non-empty array/,
  ],
  [
    'gateways',
    [{ ...gateway, msisdnHeaders: ['x-msisdn', 'bad header'] }],
    /^cdni-authz: gateways\[0\]\.msisdnHeaders\[1\] must be an HTTP header name$/,
  ],
  [
    'gateways',
    [{ ...gateway, msisdnHeaders: [null] }],
    /^cdni-authz: gateways\[0\]\.msisdnHeaders\[0\] must be an HTTP header name$/,
  ],
  [
    'gateways',
    [{ ...gateway, msisdnNumbering: 'e164' }],
    /^cdni-authz: gateways\[0\]\.msisdnNumbering must be "international" or "national"$/,
  ],
  ['gateways', [{ ...gateway, msisdnNumbering: null }], /^cdni-authz: gateways\[0\]\.msisdnNumbering must be/],
  [
    'gateways',
    [{ ...gateway, allowDoubleZero: 'yes' }],
    /^cdni-authz: gateways\[0\]\.allowDoubleZero must be true or false$/,
  ],
  [
    'gateways',
    [{ ...gateway, allowDoubleZero: 1 }],
    /^cdni-authz: gateways\[0\]\.allowDoubleZero must be true or false$/,
  ],
  [
    'gateways',
    [{ ...gateway, msisdnHeader: ['x-msisdn'] }],
    /^cdni-authz: gateways\[0\]\.msisdnHeader is not a gateway field \(name, cidrs, msisdnHeaders, countryCode, msisdnNumbering, allowDoubleZero\)$/,
  ],
  ['maxForwardedEntries', '16', /^cdni-authz: maxForwardedEntries must be a positive integer, at most 1000000$/],
  ['maxForwardedEntries', 0, /^cdni-authz: maxForwardedEntries must be/],
  ['maxForwardedEntries', -1, /^cdni-authz: maxForwardedEntries must be/],
  ['maxForwardedEntries', 2.5, /^cdni-authz: maxForwardedEntries must be/],
  ['maxForwardedEntries', 1_000_001, /^cdni-authz: maxForwardedEntries must be/],
  ['maxForwardedEntries', Number.NaN, /^cdni-authz: maxForwardedEntries must be/],
  ['maxForwardedEntries', null, /^cdni-authz: maxForwardedEntries must be/],
  [
    'maxForwardedLength',
    Number.POSITIVE_INFINITY,
    /^cdni-authz: maxForwardedLength must be a positive integer, at most 1000000$/,
  ],
  ['maxForwardedLength', '1024', /^cdni-authz: maxForwardedLength must be/],
  ['maxForwardedLength', 0, /^cdni-authz: maxForwardedLength must be/],
]

t.test(
  'each wrong option fails registration with FST_CDNI_INVALID_OPTION naming it, before a file is opened',
  async (t) => {
    for (const [option, value, message] of wrong) {
      const label = `${option}: ${JSON.stringify(value) ?? String(value)}`
      t.throws(
        () => normalizeOptions({ [option]: value }),
        { code: 'FST_CDNI_INVALID_OPTION', statusCode: 500, message },
        label,
      )
      // The other database option names a missing file: reading it would be a different error.
      const databases = option === 'asnDb' ? { countryDb: missing } : { asnDb: missing }
      await t.rejects(register({ ...databases, [option]: value }), { code: 'FST_CDNI_INVALID_OPTION', message }, label)
    }
  },
)

t.test(
  'registration with a wrong option rejects through register() and ready(), and the process goes on',
  async (t) => {
    // A plugin that throws synchronously from its callback escapes Fastify's loader: with the old
    // callback plugin this string reached `.map` and ended the process.
    const app = Fastify()
    await t.rejects(
      async () => {
        await app.register(cdniAuthz, {
          enforcedElsewhere: 'MI.SourceMetadata' as unknown as string[],
          countryDb: false,
        })
      },
      { code: 'FST_CDNI_INVALID_OPTION', message: /enforcedElsewhere/ },
    )
    const other = Fastify()
    other.register(cdniAuthz, { gateways: [{ ...gateway, cidrs: 'x' as unknown as string[] }], countryDb: false })
    await t.rejects(
      async () => {
        await other.ready()
      },
      { code: 'FST_CDNI_INVALID_OPTION', message: /gateways\[0\]\.cidrs/ },
    )
    // The detailed checks done later keep failing the same way.
    const cidr = Fastify()
    cidr.register(cdniAuthz, { trustedProxies: ['10.0.0.1/8'], countryDb: false })
    await t.rejects(
      async () => {
        await cidr.ready()
      },
      { code: 'FST_CDNI_INVALID_OPTION', message: /trustedProxies\[0\].*host bits/ },
    )
    const file = Fastify()
    file.register(cdniAuthz, { asnDb: missing })
    await t.rejects(
      async () => {
        await file.ready()
      },
      { code: 'FST_CDNI_INVALID_OPTION', message: /cannot read the IP database/ },
    )
  },
)

t.test('the options themselves must be an object; none at all is no options', async (t) => {
  for (const options of [null, 'metadata.json', 42, [gateway]]) {
    t.throws(
      () => normalizeOptions(options),
      { code: 'FST_CDNI_INVALID_OPTION', message: /^cdni-authz: options must be an object$/ },
      JSON.stringify(options),
    )
  }
  t.same(normalizeOptions(undefined), normalizeOptions({}))
})

t.test('defaults, and each valid form normalized', async (t) => {
  t.same(normalizeOptions({}), {
    metadata: undefined,
    enforcedElsewhere: [],
    logMsisdn: 'off',
    countryDb: BUNDLED_COUNTRY_DB,
    asnDb: false,
    trustedProxies: [],
    gateways: [],
    maxForwardedEntries: 16,
    maxForwardedLength: 1024,
    unknown: [],
  })
  const undefinedEverywhere = Object.fromEntries(
    [
      'metadata',
      'enforcedElsewhere',
      'logMsisdn',
      'countryDb',
      'asnDb',
      'trustedProxies',
      'gateways',
      'maxForwardedEntries',
      'maxForwardedLength',
    ].map((key) => [key, undefined]),
  )
  t.same(normalizeOptions(undefinedEverywhere), normalizeOptions({}), 'an option set to undefined is left out')
  const doc = { deliveryCriteria: [{ protocol: 'http' }] }
  t.equal(normalizeOptions({ metadata: doc }).metadata, doc)
  t.equal(normalizeOptions({ metadata: '{}' }).metadata, '{}', 'JSON text is parsed later, with the document')
  t.same(
    normalizeOptions({ enforcedElsewhere: ['MI.SourceMetadata', 'mi.cachecontrol'] }).enforcedElsewhere,
    ['mi.sourcemetadata', 'mi.cachecontrol'],
    'compared in lower case',
  )
  for (const value of ['off', 'masked', 'full'] as const) {
    t.equal(normalizeOptions({ logMsisdn: value }).logMsisdn, value)
  }
  t.match(normalizeOptions({ countryDb: false, asnDb: '/var/lib/GeoIP/asn.mmdb' }), {
    countryDb: false,
    asnDb: '/var/lib/GeoIP/asn.mmdb',
  })
  t.match(normalizeOptions({ countryDb: '/var/lib/GeoIP/city.mmdb', asnDb: false }), {
    countryDb: '/var/lib/GeoIP/city.mmdb',
    asnDb: false,
  })
  t.same(normalizeOptions({ trustedProxies: ['10.0.0.0/8', '2001:db8::/32'] }).trustedProxies, [
    '10.0.0.0/8',
    '2001:db8::/32',
  ])
  t.same(
    normalizeOptions({ gateways: [gateway] }).gateways,
    [{ ...gateway, msisdnHeaders: ['x-up-calling-line-id'], msisdnNumbering: 'international', allowDoubleZero: false }],
    'gateway defaults filled in',
  )
  const full = {
    name: 'op',
    cidrs: ['203.0.113.0/28', '2001:db8::/48'],
    countryCode: '1',
    msisdnHeaders: ['X-MSISDN', 'x-up-calling-line-id'],
    msisdnNumbering: 'national' as const,
    allowDoubleZero: true,
  }
  t.same(normalizeOptions({ gateways: [full] }).gateways, [
    { ...full, msisdnHeaders: ['x-msisdn', 'x-up-calling-line-id'] },
  ])
  t.match(normalizeOptions({ maxForwardedEntries: 1, maxForwardedLength: 1_000_000 }), {
    maxForwardedEntries: 1,
    maxForwardedLength: 1_000_000,
  })

  const given = { trustedProxies: ['10.0.0.0/8'], gateways: [{ ...gateway, cidrs: ['203.0.113.0/28'] }] }
  const normalized = normalizeOptions(given)
  given.trustedProxies.push('192.0.2.0/24')
  ;(given.gateways[0] as { cidrs: string[] }).cidrs.push('198.51.100.0/24')
  t.same(normalized.trustedProxies, ['10.0.0.0/8'], 'copied, not shared')
  t.same(normalized.gateways[0]?.cidrs, ['203.0.113.0/28'])
})

t.test('every valid form registers', async (t) => {
  const valid: Record<string, unknown>[] = [
    {},
    { metadata: { deliveryCriteria: [{ protocol: 'http' }] }, countryDb: false },
    { metadata: '{ "deliveryCriteria": [ { "protocol": "http" } ] }', countryDb: false },
    { enforcedElsewhere: ['MI.SourceMetadata'], countryDb: false },
    { logMsisdn: 'masked', countryDb: false },
    { logMsisdn: 'full', countryDb: false },
    { countryDb: BUNDLED_COUNTRY_DB, asnDb: BUNDLED_COUNTRY_DB },
    { trustedProxies: ['10.0.0.0/8', '2001:db8::/32'], countryDb: false },
    {
      gateways: [
        {
          name: 'op',
          cidrs: ['203.0.113.0/28'],
          countryCode: '1',
          msisdnHeaders: ['X-MSISDN'],
          msisdnNumbering: 'national',
          allowDoubleZero: true,
        },
      ],
      countryDb: false,
    },
    { maxForwardedEntries: 1, maxForwardedLength: 1_000_000, countryDb: false },
  ]
  for (const options of valid) {
    const app = await register(options)
    t.equal(typeof app.cdniAuthz.update, 'function', JSON.stringify(options))
  }
  const app = await register({ metadata: { deliveryCriteria: [{ protocol: 'http' }] }, countryDb: false })
  t.equal(app.cdniAuthz.loaded, true, 'the initial document is live')
})

t.test("unknown option names are ignored with one warning naming them; Fastify's own are not named", async (t) => {
  t.same(
    normalizeOptions({
      trustedProxy: ['10.0.0.0/8'],
      prefix: '/x',
      logLevel: 'warn',
      logSerializers: {},
      enforcedElswhere: [],
    }).unknown,
    ['trustedProxy', 'enforcedElswhere'],
  )
  const lines: Record<string, unknown>[] = []
  await register({ countryDb: false, trustedProxy: ['10.0.0.0/8'], prefix: '/x' }, lines)
  t.match(lines, [
    { level: 40, cdniAuthz: { unknownOptions: ['trustedProxy'] }, msg: 'cdni-authz: unknown options ignored' },
  ])
  const quiet: Record<string, unknown>[] = []
  await register({ countryDb: false, prefix: '/x', logLevel: 'warn' }, quiet)
  t.same(quiet, [], "Fastify's register options draw no warning")
})

/** Values of every JSON type, some near a valid option, plus what JavaScript adds (undefined, NaN). */
const cidr = fc.oneof(
  fc.constantFrom('10.0.0.0/8', '2001:db8::/32', '10.0.0.1/8', '203.0.113.0/28', '::/0'),
  fc.string({ maxLength: 12 }),
)
const strings = fc.array(fc.oneof(cidr, fc.constantFrom('MI.SourceMetadata', 'x-msisdn', '')), { maxLength: 3 })
const gatewayLike = fc.record(
  {
    name: fc.oneof(fc.constantFrom('op', ''), fc.jsonValue()),
    cidrs: fc.oneof(fc.array(cidr, { maxLength: 2 }), fc.jsonValue()),
    countryCode: fc.oneof(fc.constantFrom('86', '1', '+86', '8600'), fc.jsonValue()),
    msisdnHeaders: fc.oneof(strings, fc.jsonValue()),
    msisdnNumbering: fc.oneof(fc.constantFrom('international', 'national', 'e164'), fc.jsonValue()),
    allowDoubleZero: fc.jsonValue(),
    msisdnHeader: fc.jsonValue(),
  },
  { requiredKeys: [] },
)
const anyValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      undefined,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      -0,
      1.5,
      1_000_001,
      'off',
      'masked',
      false,
      '{}',
      '{ "deliveryCriteria": [] }',
    ),
  },
  { weight: 2, arbitrary: strings },
  { weight: 2, arbitrary: fc.array(fc.oneof(gatewayLike, fc.jsonValue({ maxDepth: 1 })), { maxLength: 2 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      deliveryCriteria: fc.array(fc.record({ protocol: fc.jsonValue({ maxDepth: 1 }) }), { maxLength: 2 }),
    }),
  },
)
const position = fc.constantFrom(
  'metadata',
  'enforcedElsewhere',
  'logMsisdn',
  'countryDb',
  'asnDb',
  'trustedProxies',
  'gateways',
  'maxForwardedEntries',
  'maxForwardedLength',
  'notAnOption',
)

t.test('any value in any option position registers or fails with FST_CDNI_INVALID_OPTION, nothing else', async (t) => {
  const outcomes = { registered: 0, refused: 0 }
  await fc.assert(
    fc.asyncProperty(position, anyValue, async (option, value) => {
      // The bundled country database is opened once and then shared: only the value under test
      // may name a file to read.
      const options = option === 'countryDb' ? { countryDb: value } : { countryDb: false, [option]: value }
      try {
        await register(options)
        outcomes.registered++
      } catch (err) {
        const { code } = err as { code?: string }
        // A document of the right type but wrong content is the document validator's refusal.
        const expected =
          option === 'metadata' && code === 'FST_CDNI_INVALID_METADATA' ? code : 'FST_CDNI_INVALID_OPTION'
        if (code !== expected) throw err
        outcomes.refused++
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261123), endOnFailure: true },
  )
  t.ok(
    outcomes.registered > RUNS / 20 && outcomes.refused > RUNS / 20,
    `both outcomes seen: ${JSON.stringify(outcomes)}`,
  )
})
