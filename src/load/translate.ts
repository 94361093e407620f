/**
 * What both metadata formats' loaders share (delivery-criteria.ts and rfc8006.ts): the capped
 * problem list, ajv errors told in the project's words, and the translation of values both formats
 * carry (prefixes, MSISDN prefixes, timestamps) into the policy model, with the same strict
 * parsing the request path uses and the same warnings.
 */
import type { ErrorObject } from 'ajv'
import { formatPrefix, HOST_BITS_SET, parsePrefix, parsePrefixInto } from '../facts/address.js'
import { isDigitString } from '../facts/msisdn.js'
import { PrefixList, pointerToken, type MsisdnPrefixes, type PolicyModel, type Problem } from '../policy/model.js'

/** At most this many errors (and as many warnings) are reported for one document. */
export const MAX_PROBLEMS = 100

/** What the loader must know of the deployment to warn about criteria that can never match. */
export interface LoadContext {
  /** At least one operator gateway is configured (subnet2 and msdnPrefix need one). */
  gatewaysConfigured: boolean
  /** A country database is available. */
  countryDatabase: boolean
  /** An AS-number database is available. */
  asnDatabase: boolean
  /** The country database is a City one, whose records name subdivisions. Default false. */
  subdivisionDatabase?: boolean
  /**
   * RFC 8006 metadata types (lower case) that something else on this edge enforces, such as the
   * cache behind us for MI.SourceMetadata: mandatory-to-enforce objects of these types do not deny.
   */
  enforcedElsewhere?: readonly string[]
}

export const DEFAULT_LOAD_CONTEXT: LoadContext = {
  gatewaysConfigured: false,
  countryDatabase: false,
  asnDatabase: false,
}

export type LoadResult =
  | { ok: true; model: PolicyModel; errors: []; warnings: Problem[] }
  | { ok: false; model: null; errors: Problem[]; warnings: Problem[] }

/** Collects problems up to the cap, counting the ones it drops. */
export class ProblemList {
  readonly items: Problem[] = []
  private dropped = 0

  add(pointer: string, message: string): void {
    if (this.items.length < MAX_PROBLEMS) this.items.push({ pointer, message })
    else this.dropped++
  }

  get size(): number {
    return this.items.length + this.dropped
  }

  done(): Problem[] {
    if (this.dropped > 0) {
      this.items.push({ pointer: '', message: `${this.dropped} more not shown` })
    }
    return this.items
  }
}

export function describeAjvError(error: ErrorObject): Problem {
  const at = error.instancePath
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties':
      return {
        pointer: `${at}/${pointerToken(String(params.additionalProperty))}`,
        message: 'unknown property (vendor extensions must start with "x-")',
      }
    case 'required':
      return { pointer: `${at}/${pointerToken(String(params.missingProperty))}`, message: 'is required' }
    case 'minItems':
      if (/\/deliveryCriteria$|^\/deliveryProfiles$/.test(at)) {
        return {
          pointer: at,
          message: 'must not be empty; to allow everyone, say so: [{ "protocol": ["http", "https"] }]',
        }
      }
      return { pointer: at, message: 'must not be an empty list' }
    case 'enum':
      return { pointer: at, message: 'must be "http", "https" or a list of them' }
    case 'type':
      return { pointer: at, message: `must be ${String(params.type).replace(',', ' or ')}` }
    default:
      return { pointer: at, message: error.message as string }
  }
}

/** A field's value as a list: each field takes one value or a non-empty array. */
export function asList<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value]
}

export function forEachValue<T>(value: T | T[], pointer: string, visit: (item: T, at: string) => void): void {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) visit(value[i] as T, `${pointer}/${i}`)
  } else {
    visit(value, pointer)
  }
}

/** RFC 3339 date-time; Date.parse alone accepts too many shapes. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/** Parses an RFC 3339 timestamp to milliseconds, or NaN (also for impossible dates). */
export function parseTimestamp(text: string): number {
  const m = RFC3339.exec(text)
  if (!m) return Number.NaN
  const ms = Date.parse(text.toUpperCase())
  if (Number.isNaN(ms)) return ms
  // Date.parse rolls 2026-02-30 over to March; a round trip of the date fields catches it.
  const offset = m[8] as string
  const offsetMinutes = /z/i.test(offset)
    ? 0
    : (offset[0] === '-' ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4)))
  const local = new Date(ms + offsetMinutes * 60000)
  if (local.getUTCDate() !== Number(m[3]) || local.getUTCMonth() + 1 !== Number(m[2])) return Number.NaN
  return ms
}

export interface Translation {
  errors: ProblemList
  warnings: ProblemList
  context: LoadContext
  warnedMobile: boolean
  warnedCountry: boolean
  warnedAsn: boolean
  warnedSubdivision: boolean
}

export function warnVendorExtensions(t: Translation, object: object, pointer: string): void {
  for (const key of Object.keys(object)) {
    if (key.startsWith('x-')) t.warnings.add(`${pointer}/${pointerToken(key)}`, 'vendor extension ignored')
  }
}

const prefixWords = new Uint32Array(4)

export function translatePrefixes(t: Translation, value: string | string[], pointer: string): PrefixList {
  const list = new PrefixList()
  forEachValue(value, pointer, (text, at) => {
    const code = parsePrefixInto(text, prefixWords)
    if (code < 0 || (code & HOST_BITS_SET) !== 0) {
      // The rare paths: build the message from the allocating parser.
      const parsed = parsePrefix(text)
      if (!parsed.ok) {
        t.errors.add(at, `"${text}": ${parsed.message}`)
        return
      }
      t.warnings.add(at, `"${text}" has host bits set; matched as ${formatPrefix(parsed.prefix)}`)
    }
    list.addWords(((code >>> 8) & 0xff) as 4 | 6, prefixWords, code & 0xff)
  })
  return list
}

/**
 * Warns, once per document and fact, that a criterion `name` at `pointer` can never match in this
 * deployment because the fact it needs has no source.
 */
export function warnIfNoSource(
  t: Translation,
  fact: 'mobile' | 'country' | 'asn' | 'subdivision',
  pointer: string,
  name: string,
): void {
  if (fact === 'mobile' && !t.context.gatewaysConfigured && !t.warnedMobile) {
    t.warnedMobile = true
    t.warnings.add(
      pointer,
      `${name} needs a trusted operator gateway and none is configured: regions using it never match`,
    )
  } else if (fact === 'country' && !t.context.countryDatabase && !t.warnedCountry) {
    t.warnedCountry = true
    t.warnings.add(pointer, `${name} needs a country database and none is configured: regions using it never match`)
  } else if (fact === 'asn' && !t.context.asnDatabase && !t.warnedAsn) {
    t.warnedAsn = true
    t.warnings.add(pointer, `${name} needs an AS-number database and none is configured: regions using it never match`)
  } else if (fact === 'subdivision' && t.context.subdivisionDatabase !== true && !t.warnedSubdivision) {
    t.warnedSubdivision = true
    t.warnings.add(
      pointer,
      `${name} needs a City country database (one whose records name subdivisions) and none is configured: footprints using it never match`,
    )
  }
}

/** MSISDN prefixes as written (`+` for international), sorted into the model's two lists. */
export function translateMsisdnPrefixes(t: Translation, value: string | string[], pointer: string): MsisdnPrefixes {
  const msisdn: MsisdnPrefixes = { national: [], international: [] }
  forEachValue(value, pointer, (text, at) => {
    const international = text.startsWith('+')
    const digits = international ? text.slice(1) : text
    if (!isDigitString(digits)) {
      t.errors.add(at, `"${text}" must be 1–15 ASCII digits, optionally after a leading "+"`)
    } else {
      ;(international ? msisdn.international : msisdn.national).push(digits)
    }
  })
  return msisdn
}

export function newTranslation(context: LoadContext): Translation {
  return {
    errors: new ProblemList(),
    warnings: new ProblemList(),
    context,
    warnedMobile: false,
    warnedCountry: false,
    warnedAsn: false,
    warnedSubdivision: false,
  }
}

/** The result tools need: is the document acceptable, and what is wrong or suspicious in it. */
export interface ValidationReport {
  ok: boolean
  errors: Problem[]
  warnings: Problem[]
}
