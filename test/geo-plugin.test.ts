// Country, subdivision and AS criteria on real requests, against small databases this test writes:
// both metadata formats, the bundled default, a missing database, a bad file, a reload, the CLI.
import { buildApp } from './helpers/app.js'
import t from 'tap'
import { writeFileSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import type { CdniAuthzOptions } from '../src/index.js'
import { BUNDLED_COUNTRY_DB } from '../src/facts/ip-database.js'
import { main } from '../src/surrogate/cli.js'
import { buildMmdb } from './helpers/mmdb.js'
import { ASN, CITY } from './helpers/geo.js'

const dir = t.testdir({})
const cityPath = join(dir, 'city.mmdb')
const asnPath = join(dir, 'asn.mmdb')
writeFileSync(cityPath, CITY)
writeFileSync(asnPath, ASN)

const build = (options: CdniAuthzOptions) => buildApp(t, options)
const status = async (
  app: Awaited<ReturnType<typeof build>>,
  remoteAddress: string,
  headers: Record<string, string> = {},
) => (await app.inject({ url: '/video/1.ts', remoteAddress, headers })).statusCode

const GB = '81.2.69.142' // GB, England, Westminster
const KENT = '81.2.69.170' // GB, England, Kent
const US = '216.160.83.57' // US, Washington
const TELSTRA = '1.130.1.1' // AS 1221, no country

t.test('seed format: country and bgpAs from the databases', async (t) => {
  const app = await build({
    countryDb: cityPath,
    asnDb: asnPath,
    metadata: { deliveryCriteria: [{ region: { country: 'GB' } }, { region: { bgpAs: 1221 } }] },
  })
  t.equal(await status(app, GB), 200, 'a GB address')
  t.equal(await status(app, US), 403, 'a US address')
  t.equal(await status(app, TELSTRA), 200, 'AS 1221')
  t.equal(await status(app, '192.0.2.1'), 403, 'in neither database')
  t.equal(await status(app, '2001:480::1'), 403, 'IPv6 in the US')
  t.same(app.cdniAuthz.databases.country, { path: cityPath, type: 'GeoIP2-City', built: '2026-01-01T00:00:00.000Z' })
  t.equal(app.cdniAuthz.databases.asn?.type, 'GeoLite2-ASN')
})

t.test('seed format: a region with country and subnet needs both', async (t) => {
  const app = await build({
    countryDb: cityPath,
    metadata: { deliveryCriteria: [{ region: { country: ['GB', 'US'], subnet: '81.0.0.0/8' } }] },
  })
  t.equal(await status(app, GB), 200)
  t.equal(await status(app, US), 403, 'the country, not the subnet')
})

t.test('the source address is the one looked up: behind a trusted proxy, the client left of it', async (t) => {
  const app = await build({
    countryDb: cityPath,
    trustedProxies: ['10.0.0.0/8'],
    metadata: { deliveryCriteria: [{ region: { country: 'GB' } }] },
  })
  t.equal(await status(app, '10.1.1.1', { 'x-forwarded-for': GB }), 200)
  t.equal(await status(app, '10.1.1.1', { 'x-forwarded-for': US }), 403)
  t.equal(await status(app, US, { 'x-forwarded-for': GB }), 403, 'an untrusted peer cannot claim an address')
})

t.test('RFC 8006: countrycode, subdivisioncode and asn footprints', async (t) => {
  const footprint = (type: string, ...values: unknown[]) => ({ 'footprint-type': type, 'footprint-value': values })
  const metadata = {
    hosts: [
      {
        host: 'localhost:80',
        'host-metadata': {
          metadata: [
            {
              'generic-metadata-type': 'MI.LocationACL',
              'generic-metadata-value': {
                locations: [
                  { action: 'deny', footprints: [footprint('subdivisioncode', 'gb-wsm')] },
                  { action: 'allow', footprints: [footprint('countrycode', 'gb')] },
                  {
                    action: 'allow',
                    footprints: [
                      footprint('footprintunion', footprint('subdivisioncode', 'us-wa'), footprint('asn', 'as1221')),
                    ],
                  },
                ],
              },
            },
          ],
        },
      },
    ],
  }
  const app = await build({ countryDb: cityPath, asnDb: asnPath, metadata })
  const update = app.cdniAuthz.update(metadata)
  t.same(update.warnings, [], 'a City and an ASN database: every footprint can match')
  t.equal(await status(app, GB), 403, 'Westminster is denied first')
  t.equal(await status(app, KENT), 200, 'the rest of GB')
  t.equal(await status(app, US), 200, 'Washington')
  t.equal(await status(app, '2001:480::1'), 403, 'California')
  t.equal(await status(app, TELSTRA), 200, 'AS 1221')
})

t.test('no database for a criterion the metadata uses: a load warning, and the criterion never matches', async (t) => {
  const app = await build({
    countryDb: false,
    metadata: { deliveryCriteria: [{ region: { subnet: '216.0.0.0/8' } }, { protocol: 'http' }] },
  })
  t.same(app.cdniAuthz.databases, { country: null, asn: null })
  const result = app.cdniAuthz.update({
    deliveryCriteria: [
      { region: { country: 'GB' } },
      { region: { bgpAs: 1221 } },
      { region: { subnet: '216.0.0.0/8' } },
    ],
  })
  t.match(result.warnings, [
    {
      pointer: '/deliveryCriteria/0/region/country',
      message: /country needs a country database and none is configured/,
    },
    {
      pointer: '/deliveryCriteria/1/region/bgpAs',
      message: /bgpAs needs an AS-number database and none is configured/,
    },
  ])
  t.equal(result.warnings.length, 2)
  t.equal(await status(app, GB), 403, 'no country database: country never matches')
  t.equal(await status(app, TELSTRA), 403, 'no AS database: bgpAs never matches')
  t.equal(await status(app, US), 200, 'the subnet region still does')
  const city = await build({ countryDb: cityPath, metadata: { deliveryCriteria: [{ region: { country: 'GB' } }] } })
  t.same(
    city.cdniAuthz.update({ deliveryCriteria: [{ region: { country: 'GB' } }] }).warnings,
    [],
    'with one: nothing to say',
  )
})

t.test('the bundled country database is the default', async (t) => {
  const app = await build({ metadata: { deliveryCriteria: [{ region: { country: ['US', 'GB', 'DE', 'FR', 'AU'] } }] } })
  t.equal(app.cdniAuthz.databases.country?.path, BUNDLED_COUNTRY_DB)
  t.equal(app.cdniAuthz.databases.asn, null)
  t.equal(await status(app, '8.8.8.8'), 200, "Google's resolver, in one of five large countries")
  t.equal(await status(app, '10.0.0.1'), 403, 'private space has no country')
})

t.test('a database that is missing or not a database fails registration, naming the file', async (t) => {
  const notes = join(dir, 'notes.txt')
  writeFileSync(notes, 'not a database')
  await t.rejects(build({ countryDb: join(dir, 'nope.mmdb') }), {
    code: 'FST_CDNI_INVALID_OPTION',
    message: /cannot read the IP database: ENOENT.*nope\.mmdb/,
  })
  await t.rejects(build({ asnDb: notes }), { message: /notes\.txt is not a MaxMind DB/ })
  await t.rejects(build({ asnDb: 42 as never }), { message: /asnDb must be a \.mmdb file path or false/ })
})

t.test('reloadDatabases: a replaced file is read again; a broken one leaves the databases in use', async (t) => {
  const path = join(dir, 'reloaded.mmdb')
  writeFileSync(path, buildMmdb([['81.2.69.0/24', { country_code: 'FR' }]], { databaseType: 'country-v1' }))
  const app = await build({ countryDb: path, metadata: { deliveryCriteria: [{ region: { country: 'GB' } }] } })
  t.equal(await status(app, GB), 403, 'v1 says FR')
  t.equal(app.cdniAuthz.databases.country?.built, '2026-01-01T00:00:00.000Z')
  writeFileSync(
    path,
    buildMmdb([['81.2.69.0/24', { country_code: 'GB' }]], { databaseType: 'country-v2', buildEpoch: null }),
  )
  utimesSync(path, new Date(), new Date(Date.now() + 10_000))
  t.match(
    app.cdniAuthz.reloadDatabases().country,
    { type: 'country-v2', built: null },
    'a file that does not say when it was built',
  )
  t.equal(await status(app, GB), 200, 'v2 says GB')
  const site = {
    hosts: [
      {
        host: 'localhost:80',
        'host-metadata': {
          metadata: [
            {
              'generic-metadata-type': 'MI.LocationACL',
              'generic-metadata-value': {
                locations: [
                  {
                    action: 'allow',
                    footprints: [{ 'footprint-type': 'subdivisioncode', 'footprint-value': ['gb-eng'] }],
                  },
                ],
              },
            },
          ],
        },
      },
    ],
  }
  t.match(
    app.cdniAuthz.update(site).warnings,
    [{ message: /subdivisioncode needs a City country database/ }],
    'a country database has no subdivisions',
  )
  writeFileSync(path, CITY)
  utimesSync(path, new Date(), new Date(Date.now() + 20_000))
  t.equal(app.cdniAuthz.reloadDatabases().country?.type, 'GeoIP2-City')
  t.same(app.cdniAuthz.update(site).warnings, [], 'after a reload to a City database the next load knows it')
  t.equal(await status(app, GB), 200, 'England')
  writeFileSync(path, 'half a download')
  t.throws(() => app.cdniAuthz.reloadDatabases(), /reloaded\.mmdb is not a MaxMind DB/)
  t.equal(app.cdniAuthz.databases.country?.type, 'GeoIP2-City', 'still in use')
  t.equal(await status(app, GB), 200)
})

t.test('explain and the CLI show the looked-up facts', async (t) => {
  const app = await build({
    countryDb: cityPath,
    asnDb: asnPath,
    metadata: { deliveryCriteria: [{ region: { country: 'GB' } }] },
  })
  app.get('/explain', { config: { cdniAuthz: false } }, async (request) => app.cdniAuthz.explain(request))
  const explained = await app.inject({ url: '/explain', remoteAddress: GB })
  t.match(JSON.parse(explained.body), {
    allowed: true,
    rules: [{ clauses: [{ regions: [{ fields: { country: true } }] }] }],
  })
  const metadata = join(dir, 'country.json')
  writeFileSync(metadata, JSON.stringify({ deliveryCriteria: [{ region: { country: 'GB', bgpAs: 1221 } }] }))
  const out: string[] = []
  const io = {
    stdout: (s: string) => out.push(s),
    stderr: (s: string) => out.push(s),
    env: {},
    cwd: dir,
    stopSignal: () => new Promise<string>(() => {}),
  }
  t.equal(
    await main(['check', '--metadata', metadata, '--peer', GB, '--country-db', cityPath, '--asn-db', asnPath], io),
    1,
  )
  t.match(out.join(''), /country GB GB-ENG GB-WSM, AS unknown/)
  out.length = 0
  t.equal(
    await main(
      ['check', '--json', '--metadata', metadata, '--peer', TELSTRA, '--country-db', 'none', '--asn-db', asnPath],
      io,
    ),
    1,
  )
  t.match(JSON.parse(out.join('')), { facts: { country: null, subdivisions: [], asn: 1221 } })
  out.length = 0
  t.equal(await main(['validate', '--country-db', 'none', metadata], io), 0)
  t.match(out.join(''), /country needs a country database/)
  t.match(out.join(''), /bgpAs needs an AS-number database/)
  out.length = 0
  t.equal(await main(['validate', '--asn-db', asnPath, metadata], io), 0)
  t.match(out.join(''), /country\.json: valid\n$/, 'bundled country and an AS database: no warning')
  out.length = 0
  t.equal(await main(['validate', '--asn-db', join(dir, 'city.json'), metadata], io), 2)
  t.match(out.join(''), /cannot read the IP database/)
})
