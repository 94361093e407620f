import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { parseTimestamp, MAX_PROBLEMS } from '../src/load/translate.js'
import { loadPolicyModel } from '../src/load/delivery-criteria.js'
import { parseMetadataText } from '../src/load/parse-text.js'
import { validateMetadata } from '../src/load/prepare.js'

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`./fixtures/invalid/${name}.json`, import.meta.url), 'utf8'))

/** Each invalid fixture, with the pointer (and a word of the message) of every error it must give. */
const expected: Record<string, [string, RegExp][]> = {
  'empty-criteria': [['/deliveryCriteria', /must not be empty; to allow everyone, say so/]],
  'unknown-top-level': [['/allowAll', /unknown property/]],
  'two-kinds-in-one-entry': [
    ['/deliveryCriteria/0', /exactly one of region, protocol, timeWindow \(found region, protocol\)/],
  ],
  'no-kind-in-entry': [['/deliveryCriteria/1', /exactly one of region, protocol, timeWindow$/]],
  'bad-cidr': [['/deliveryCriteria/0/region/subnet/1', /"10\.1\.0\.0\/33".*0–32/]],
  'octal-address': [['/deliveryCriteria/0/region/subnet2', /not a strict IPv4 or IPv6 address/]],
  'non-contiguous-mask': [['/deliveryCriteria/0/region/subnet', /not contiguous/]],
  'msdn-prefix-not-digits': [['/deliveryCriteria/0/region/msdnPrefix/1', /1–15 ASCII digits/]],
  'msdn-prefix-too-long': [['/deliveryCriteria/0/region/msdnPrefix', /1–15 ASCII digits/]],
  'unknown-country': [['/deliveryCriteria/0/region/country/1', /"ZZ" is not an ISO 3166-1 alpha-2/]],
  'bgp-as-over-32-bits': [['/deliveryCriteria/0/region/bgpAs/1', /must be <= 4294967295/]],
  'time-window-reversed': [['/deliveryCriteria/0/timeWindow/endTime', /must be after startTime/]],
  'time-window-impossible-date': [['/deliveryCriteria/0/timeWindow/startTime', /RFC 3339/]],
  'time-window-not-rfc3339': [['/deliveryCriteria/0/timeWindow/startTime', /RFC 3339/]],
  'time-window-missing-end': [['/deliveryCriteria/0/timeWindow/endTime', /is required/]],
  'bad-protocol': [['/deliveryCriteria/0/protocol', /"http", "https"/]],
  'empty-region': [['/deliveryCriteria/0/region', /at least one of country, bgpAs, subnet, subnet2, msdnPrefix/]],
  'unknown-region-field': [['/deliveryCriteria/0/region/city', /unknown property/]],
  'subnet-wrong-type': [['/deliveryCriteria/0/region/subnet', /must be string or array/]],
  'subnet-empty-list': [['/deliveryCriteria/0/region/subnet', /must not be an empty list/]],
  'profile-missing-rules': [['/deliveryProfiles/0/deliveryRules', /is required/]],
  'profile-allow-not-boolean': [['/deliveryProfiles/0/deliveryRules/allow', /must be boolean/]],
  'profiles-empty': [['/deliveryProfiles', /must not be empty/]],
  'not-metadata': [['', /"deliveryCriteria", "deliveryProfiles" or \(RFC 8006\) "hosts"/]],
  'several-errors': [
    ['/deliveryCriteria/0/region/subnet', /0–32/],
    ['/deliveryCriteria/0/region/country', /"XX"/],
    ['/deliveryCriteria/1/timeWindow/startTime', /RFC 3339/],
    ['/deliveryCriteria/1/timeWindow/endTime', /RFC 3339/],
  ],
}

t.test('every invalid fixture is refused with the pointer of each offending value', async (t) => {
  const files = readdirSync(new URL('./fixtures/invalid/', import.meta.url))
    .map((f) => f.replace(/\.json$/, ''))
    .sort()
  t.same(files, Object.keys(expected).sort(), 'every fixture has expectations and every expectation a fixture')
  for (const name of files) {
    const report = validateMetadata(fixture(name))
    t.equal(report.ok, false, `${name} is refused`)
    const want = expected[name] ?? []
    t.equal(report.errors.length, want.length, `${name}: ${want.length} error(s)`)
    want.forEach(([pointer, message], i) =>
      t.match(report.errors[i], { pointer, message }, `${name}: error ${i} at ${pointer || '(document)'}`),
    )
  }
})

t.test("the seed's examples, corrected, are accepted; host bits set give a warning naming the value", async (t) => {
  const examples = [1, 2, 3].map(
    (n) => JSON.parse(readFileSync(new URL(`../examples/seed-example-${n}.json`, import.meta.url), 'utf8')) as unknown,
  )
  const [first, second, third] = examples.map((doc) => validateMetadata(doc, { gatewaysConfigured: true }))
  t.match(first, {
    ok: true,
    errors: [],
    warnings: [
      {
        pointer: '/deliveryCriteria/0/region/subnet',
        message: /"10\.1\.0\.54\/18" has host bits set; matched as 10\.1\.0\.0\/18/,
      },
    ],
  })
  t.match(second, {
    ok: true,
    warnings: [{ pointer: '/deliveryCriteria/0/region/subnet2', message: /10\.5\.31\.0\/24/ }],
  })
  t.match(third, { ok: true, errors: [], warnings: [] })
})

t.test('mobile fields without an operator gateway, and geo fields without a database, warn once each', async (t) => {
  const doc = {
    deliveryCriteria: [
      { region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } },
      { region: { msdnPrefix: '+86135' } },
      { region: { country: 'cn', bgpAs: 9808 } },
      { region: { country: ['CN'], bgpAs: [9808] } },
    ],
  }
  const report = validateMetadata(doc)
  t.equal(report.ok, true)
  t.same(
    report.warnings.map((w) => w.pointer),
    ['/deliveryCriteria/0/region/subnet2', '/deliveryCriteria/2/region/country', '/deliveryCriteria/2/region/bgpAs'],
  )
  t.match(report.warnings[0], { message: /needs a trusted operator gateway and none is configured/ })
  t.same(validateMetadata(doc, { gatewaysConfigured: true, countryDatabase: true, asnDatabase: true }).warnings, [])
  const msisdnOnly = validateMetadata({ deliveryCriteria: [{ region: { msdnPrefix: '135' } }] })
  t.match(msisdnOnly.warnings, [
    { pointer: '/deliveryCriteria/0/region/msdnPrefix', message: /msdnPrefix needs a trusted operator gateway/ },
  ])
})

t.test('vendor extensions starting with x- are ignored with a warning', async (t) => {
  const report = validateMetadata({
    'x-origin': 'ucdn-1',
    deliveryProfiles: [
      {
        'x-p': 1,
        deliveryCriteria: [
          {
            'x-e': 1,
            timeWindow: { startTime: '2026-01-01T00:00:00Z', endTime: '2027-01-01T00:00:00+08:00', 'x-tz': 'cst' },
          },
          { region: { subnet: '2001:db8::/32', 'x-r': true } },
        ],
        deliveryRules: { allow: false, 'x-why': 'embargo' },
      },
    ],
  })
  t.equal(report.ok, true)
  t.same(
    report.warnings.map((w) => w.pointer),
    [
      '/x-origin',
      '/deliveryProfiles/0/x-p',
      '/deliveryProfiles/0/deliveryRules/x-why',
      '/deliveryProfiles/0/deliveryCriteria/0/x-e',
      '/deliveryProfiles/0/deliveryCriteria/0/timeWindow/x-tz',
      '/deliveryProfiles/0/deliveryCriteria/1/region/x-r',
    ],
  )
})

t.test('every problem comes back, up to a cap that bounds a hostile document', async (t) => {
  const doc = { deliveryCriteria: Array.from({ length: 500 }, (_, i) => ({ region: { subnet: `10.0.${i}.0/99` } })) }
  const report = validateMetadata(doc)
  t.equal(report.errors.length, MAX_PROBLEMS + 1)
  t.match(report.errors[MAX_PROBLEMS], { pointer: '', message: '400 more not shown' })
  const schemaErrors = validateMetadata({ deliveryCriteria: Array.from({ length: 300 }, () => ({ bogus: 1 })) })
  t.equal(schemaErrors.errors.length, MAX_PROBLEMS + 1)
})

t.test('any JSON value is answered, never thrown at', async (t) => {
  for (const value of [
    null,
    42,
    'text',
    [],
    [1],
    true,
    { deliveryCriteria: null },
    { deliveryCriteria: 'x' },
    { deliveryProfiles: [{}] },
  ]) {
    const report = validateMetadata(value)
    t.equal(report.ok, false, JSON.stringify(value))
    t.ok(report.errors.length > 0)
  }
  t.equal(loadPolicyModel({ deliveryCriteria: [{ protocol: ['https', 'http'] }, { protocol: 'http' }] }).ok, true)
})

t.test('invalid JSON text is reported with line and column', async (t) => {
  // The seed's Example Object 3, verbatim apart from the outer braces: a trailing comma and a missing one.
  const seed =
    '{ "deliveryCriteria" :\n  [\n    {\n      "region" : { "msdnPrefix" : "135038" },\n    }\n    {\n      "protocol" : "http"\n    }\n  ]\n}'
  const parsed = parseMetadataText(seed)
  t.match(parsed, {
    ok: false,
    error: { pointer: '', line: 5, column: 5, message: /^invalid JSON at line 5, column 5: / },
  })
  t.match(parseMetadataText('{"a": 1}'), { ok: true, value: { a: 1 } })
  t.match(parseMetadataText(''), { ok: false, error: { line: 1, column: 1 } })
})

t.test('timestamps: RFC 3339 with offsets and fractions, nothing looser', async (t) => {
  t.equal(parseTimestamp('2026-01-01T00:00:00Z'), Date.UTC(2026, 0, 1))
  t.equal(parseTimestamp('2026-01-01t08:00:00.5+08:00'), Date.UTC(2026, 0, 1) + 500)
  t.equal(parseTimestamp('2025-12-31T20:00:00-04:00'), Date.UTC(2026, 0, 1))
  for (const bad of [
    '2026-01-01',
    '2026-01-01 00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-02-29T00:00:00Z',
    '2026-04-31T00:00:00Z',
    'Thu, 01 Jan 2026 00:00:00 GMT',
    '2026-01-01T00:00:00',
  ]) {
    t.ok(Number.isNaN(parseTimestamp(bad)), `refuses ${bad}`)
  }
})

t.test('country codes: assigned ISO 3166-1 alpha-2 in either case, and XK', async (t) => {
  t.match(validateMetadata({ deliveryCriteria: [{ region: { country: ['cn', 'GB', 'XK'] } }] }), { ok: true })
  t.match(validateMetadata({ deliveryCriteria: [{ region: { country: ['CHN', 'C', 'EU'] } }] }), {
    ok: false,
    errors: [
      { pointer: '/deliveryCriteria/0/region/country/0' },
      { pointer: '/deliveryCriteria/0/region/country/1' },
      { pointer: '/deliveryCriteria/0/region/country/2' },
    ],
  })
})
