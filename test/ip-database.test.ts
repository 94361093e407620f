import t from 'tap'
import { readFileSync, writeFileSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { Reader } from 'mmdb-lib'
import { parseAddress } from '../src/facts/address.js'
import { createClientFacts } from '../src/facts/facts.js'
import { InvalidOptionError } from '../src/errors.js'
import {
  asnOf,
  BUNDLED_COUNTRY_DB,
  countryOf,
  fillGeoFacts,
  geoContext,
  IpDatabase,
  NO_GEO_FACTS,
  openGeoDatabases,
  openIpDatabase,
  subdivisionsOf,
} from '../src/facts/ip-database.js'
import { buildMmdb, encode } from './helpers/mmdb.js'
import { ASN, CITY } from './helpers/geo.js'

t.test('the test writer: mmdb-lib reads back what it wrote, in every encoding size', async (t) => {
  const long = 'x'.repeat(70_000)
  const db = new Reader(
    buildMmdb(
      [['10.0.0.0/8', { a: 'y'.repeat(300), b: long, c: [true, false, 70_000, 0], d: { e: 'z'.repeat(40) } }]],
      { databaseType: 'T', ipVersion: 4 },
    ),
  )
  t.same(db.get('10.1.2.3'), { a: 'y'.repeat(300), b: long, c: [true, false, 70_000, 0], d: { e: 'z'.repeat(40) } })
  t.equal(db.metadata.ipVersion, 4)
  t.throws(() => encode(-1), /only uint32/)
  t.throws(() => buildMmdb([['2001:db8::/32', {}]], { databaseType: 'T', ipVersion: 4 }), /IPv4 database/)
  t.throws(() => buildMmdb([['nope/8', {}]], { databaseType: 'T' }), /bad network/)
})

t.test('record shapes: GeoIP2 / GeoLite2 / DB-IP, IPinfo, ip-location-db', async (t) => {
  t.equal(countryOf({ country: { iso_code: 'FR' } }), 'FR', 'GeoIP2, GeoLite2, DB-IP')
  t.equal(countryOf({ country: 'de' }), 'DE', 'IPinfo')
  t.equal(countryOf({ country_code: 'JP' }), 'JP', 'ip-location-db, IPinfo Lite')
  t.equal(
    countryOf({ country: { names: {} }, country_code: 'JP' }),
    'JP',
    'a country object without a code: the flat field',
  )
  t.equal(
    countryOf({ registered_country: { iso_code: 'SE' } }),
    null,
    'where the block is registered is not where it is used',
  )
  t.equal(countryOf({ country: { iso_code: 'EU' } }), null, 'not an assigned country code')
  t.equal(countryOf({ country: { iso_code: 7 } }), null)
  t.equal(countryOf('US'), null)
  t.equal(countryOf(null), null)
  t.same(subdivisionsOf({ subdivisions: [{ iso_code: 'eng' }, { iso_code: 'WSM' }] }, 'GB'), ['GB-ENG', 'GB-WSM'])
  t.same(
    subdivisionsOf({ subdivisions: [{ iso_code: 'far too long' }, { names: {} }, 'NY'] }, 'US'),
    [],
    'only 1–3 letter or digit codes',
  )
  t.same(subdivisionsOf({ subdivisions: [{ iso_code: 'NY' }] }, null), [], 'no country, no subdivision')
  t.same(subdivisionsOf({ subdivisions: 'NY' }, 'US'), [])
  t.equal(asnOf({ autonomous_system_number: 64496 }), 64496, 'GeoLite2-ASN, DB-IP')
  t.equal(asnOf({ asn: 'AS15169' }), 15169, 'IPinfo')
  t.equal(asnOf({ asn: 'as15169' }), 15169)
  t.equal(asnOf({ asn: 13335 }), 13335)
  t.equal(asnOf({ asn: 'ASN' }), -1)
  t.equal(asnOf({ asn: 'AS99999999999' }), -1, 'more than 32 bits')
  t.equal(asnOf({ autonomous_system_number: 1.5 }), -1)
  t.equal(asnOf({}), -1)
})

function lookup(db: IpDatabase, address: string) {
  const words = new Uint32Array(4)
  return db.lookup(parseAddress(address, words), words)
}

t.test('lookups: IPv4, IPv6, IPv4-mapped, unknown, cached', async (t) => {
  const city = new IpDatabase('city.mmdb', CITY)
  t.equal(city.type, 'GeoIP2-City')
  t.equal(city.hasSubdivisions, true)
  t.equal(city.ipVersion, 6)
  t.same(lookup(city, '81.2.69.142'), { country: 'GB', subdivisions: ['GB-ENG', 'GB-WSM'], asn: -1 })
  t.same(
    lookup(city, '81.2.69.170'),
    { country: 'GB', subdivisions: ['GB-ENG', 'GB-KEN'], asn: -1 },
    'the longer network',
  )
  t.same(
    lookup(city, '::ffff:81.2.69.142'),
    { country: 'GB', subdivisions: ['GB-ENG', 'GB-WSM'], asn: -1 },
    'mapped: the IPv4 answer',
  )
  t.same(lookup(city, '2001:480::1'), { country: 'US', subdivisions: ['US-CA'], asn: -1 })
  t.equal(lookup(city, '89.160.20.113').country, null, 'a record with only a registered country')
  t.equal(lookup(city, '192.0.2.1'), NO_GEO_FACTS, 'not in the database')
  t.equal(lookup(city, '2001:db8::1'), NO_GEO_FACTS)
  t.equal(lookup(city, '81.2.69.142'), lookup(city, '81.2.69.142'), 'the second answer is the cached one')
  t.equal(lookup(city, '2001:480::1'), lookup(city, '2001:480::1'))
  t.equal(city.lookup(0, new Uint32Array(4)), NO_GEO_FACTS, 'no address')
  const asn = new IpDatabase('asn.mmdb', ASN)
  t.equal(asn.hasSubdivisions, false)
  t.same(lookup(asn, '1.130.1.1'), { country: null, subdivisions: [], asn: 1221 })
  t.equal(lookup(asn, '2600:1::1').asn, 4_200_000_000)
})

t.test('an IPv4-only database answers no IPv6 address, rather than one from its first 32 bits', async (t) => {
  const v4 = new IpDatabase(
    'v4.mmdb',
    buildMmdb([['32.0.0.0/8', { country_code: 'US' }]], { databaseType: 'ipv4-country', ipVersion: 4 }),
  )
  t.equal(lookup(v4, '32.1.2.3').country, 'US')
  t.equal(lookup(v4, '2001:db8::1'), NO_GEO_FACTS, '2001:db8:: begins with the bits of 32.1.13.184')
})

t.test('a file that is not a database is refused at open, with its path', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'just text\n'.repeat(100), 'empty.mmdb': '' })
  for (const name of ['notes.txt', 'empty.mmdb']) {
    t.throws(() => openIpDatabase(join(dir, name)), {
      code: 'FST_CDNI_INVALID_OPTION',
      message: new RegExp(`${name} is not a MaxMind DB \\(\\.mmdb\\) file`),
    })
  }
  // The marker and metadata of a database, after a tree that is not there.
  const marker = CITY.subarray(CITY.lastIndexOf(Buffer.from('abcdef4d61784d696e642e636f6d', 'hex')))
  t.throws(() => new IpDatabase('cut.mmdb', marker), /cut\.mmdb is not a MaxMind DB/)
  t.throws(() => openIpDatabase(join(dir, 'missing.mmdb')), {
    code: 'FST_CDNI_INVALID_OPTION',
    message: /cannot read the IP database: ENOENT: .*missing\.mmdb/,
  })
})

t.test('odd but readable files: records that are not maps, no build time', async (t) => {
  const bare = new IpDatabase(
    'bare.mmdb',
    buildMmdb(
      [
        ['10.0.0.0/8', 'US'],
        ['11.0.0.0/8', 7],
      ],
      { databaseType: 'bare', ipVersion: 4, buildEpoch: null },
    ),
  )
  t.equal(lookup(bare, '10.1.1.1'), NO_GEO_FACTS, 'a bare string says nothing we read')
  t.equal(lookup(bare, '11.1.1.1'), NO_GEO_FACTS)
  t.equal(bare.built, null)
})

t.test('a damaged data section gives no fact, never an exception on the request path', async (t) => {
  const bytes = Buffer.from(buildMmdb([['10.0.0.0/8', { country_code: 'US' }]], { databaseType: 'T', ipVersion: 4 }))
  const db = new IpDatabase('damaged.mmdb', bytes)
  // The tree's last record points into the data section; point it far past the end of the file.
  bytes.writeUIntBE(0xfffff0, findDataRecord(bytes), 3)
  t.equal(lookup(db, '10.1.1.1'), NO_GEO_FACTS)
})

/** Offset of the tree record that points at data (the first record past the node count). */
function findDataRecord(bytes: Buffer): number {
  const nodeCount = new Reader(bytes).metadata.nodeCount
  for (let offset = 0; offset < nodeCount * 6; offset += 3) if (bytes.readUIntBE(offset, 3) > nodeCount) return offset
  throw new Error('no data record')
}

t.test('openIpDatabase shares an unchanged file, and reads a replaced one again', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'country.mmdb')
  writeFileSync(path, CITY)
  const first = openIpDatabase(path)
  t.equal(openIpDatabase(path), first, 'same size and time: the same database')
  writeFileSync(path, ASN)
  utimesSync(path, new Date(), new Date(Date.now() + 5000))
  const second = openIpDatabase(path)
  t.not(second, first)
  t.equal(second.type, 'GeoLite2-ASN')
})

t.test('the bundled country database opens and knows the world', async (t) => {
  const db = openIpDatabase(BUNDLED_COUNTRY_DB)
  t.equal(db.ipVersion, 6)
  t.match(db.type, /country/)
  t.equal(db.hasSubdivisions, false)
  // Public resolvers: whichever country the data says, it says one.
  t.match(lookup(db, '8.8.8.8').country, /^[A-Z]{2}$/)
  t.match(lookup(db, '2001:4860:4860::8888').country, /^[A-Z]{2}$/)
  t.equal(lookup(db, '10.1.2.3'), NO_GEO_FACTS, 'private space is nowhere')
})

t.test('the answer cache: every answer is what the reader says, through collisions and evictions', async (t) => {
  // More addresses than the cache has slots, twice over, so sets overflow and answers are evicted.
  const reader = new Reader(readFileSync(BUNDLED_COUNTRY_DB))
  const db = new IpDatabase(BUNDLED_COUNTRY_DB, readFileSync(BUNDLED_COUNTRY_DB))
  let seed = 12345
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
  const v4 = Array.from({ length: 100_000 }, random)
  const v6 = Array.from(
    { length: 20_000 },
    () =>
      `2${(random() % 0x1000).toString(16).padStart(3, '0')}:${(random() & 0xffff).toString(16)}::${(random() & 0xffff).toString(16)}`,
  )
  const texts = [
    ...v4.map((a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`),
    ...v6,
    '0.0.0.0',
    '::',
  ]
  let wrong = 0
  let found = 0
  for (let round = 0; round < 2; round++) {
    for (const text of texts) {
      const expected = countryOf(reader.get(text))
      const actual = lookup(db, text).country
      if (actual !== expected) wrong++
      if (actual !== null) found++
    }
  }
  t.equal(wrong, 0)
  t.ok(found > texts.length, `most addresses have a country (${found} of ${texts.length * 2} answers)`)
})

t.test('openGeoDatabases: the defaults, false, and bad values', async (t) => {
  const dir = t.testdir({})
  const asnPath = join(dir, 'asn.mmdb')
  writeFileSync(asnPath, ASN)
  const defaults = openGeoDatabases(undefined, undefined)
  t.equal(defaults.country?.path, BUNDLED_COUNTRY_DB)
  t.equal(defaults.asn, null)
  t.same(geoContext(defaults), { countryDatabase: true, asnDatabase: false, subdivisionDatabase: false })
  const none = openGeoDatabases(false, asnPath)
  t.same(geoContext(none), { countryDatabase: false, asnDatabase: true, subdivisionDatabase: false })
  for (const bad of ['', 7, true, null]) {
    t.throws(() => openGeoDatabases(bad as never, false), InvalidOptionError)
    t.throws(() => openGeoDatabases(false, bad as never), { message: /asnDb must be a \.mmdb file path or false/ })
  }
})

t.test('fillGeoFacts fills only what it is asked for, from the source address', async (t) => {
  const databases = { country: new IpDatabase('city', CITY), asn: new IpDatabase('asn', ASN) }
  const facts = createClientFacts()
  fillGeoFacts(databases, facts, true, true)
  t.equal(facts.country, null, 'no source address: nothing')
  facts.sourceFamily = parseAddress('81.2.69.142', facts.source)
  fillGeoFacts(databases, facts, false, true)
  t.equal(facts.country, null, 'country not asked')
  fillGeoFacts(databases, facts, true, false)
  t.equal(facts.country, 'GB')
  t.same(facts.subdivisions, ['GB-ENG', 'GB-WSM'])
  t.equal(facts.asn, -1)
  facts.sourceFamily = parseAddress('1.130.1.1', facts.source)
  fillGeoFacts(databases, facts, false, true)
  t.equal(facts.asn, 1221)
  const bare = createClientFacts()
  bare.sourceFamily = parseAddress('1.130.1.1', bare.source)
  fillGeoFacts({ country: null, asn: null }, bare, true, true)
  t.same([bare.country, bare.asn], [null, -1], 'no databases: no facts')
})
