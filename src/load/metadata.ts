/**
 * Metadata → schema validation → internal policy model (docs/ARCHITECTURE.md, first two stages).
 *
 * ajv checks the structure against the JSON Schemas in `schemas/` (compiled once, at module
 * load); this module then makes the checks a schema cannot express (README, "The seed's format": strict
 * prefixes, contiguous masks, ISO 3166-1 codes, digit-only MSISDN prefixes, startTime < endTime,
 * exactly one kind per entry) and reports them in the same `{ pointer, message }` shape. Every
 * problem comes back, not only the first, up to a cap that keeps a hostile document's error list
 * bounded.
 */
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { parse as parseTolerant, printParseErrorCode, type ParseError } from 'jsonc-parser'
import { formatPrefix, HOST_BITS_SET, parsePrefix, parsePrefixInto } from '../facts/address.js'
import { normalizeCountryCode } from './country-codes.js'
import { isDigitString } from '../facts/msisdn.js'
import {
  PrefixList,
  pointerToken,
  type ClauseModel,
  type MsisdnPrefixes,
  type PolicyModel,
  type Problem,
  type Protocol,
  type RegionModel,
  type RuleModel,
  type TimeWindow,
} from '../policy/model.js'

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

function loadSchema(name: string): object {
  return JSON.parse(readFileSync(new URL(`../../schemas/${name}`, import.meta.url), 'utf8')) as object
}

const definitions = loadSchema('criteria.schema.json')
const criteriaSchema = loadSchema('delivery-criteria.schema.json')
const profilesSchema = loadSchema('delivery-profiles.schema.json')
/** The whole documents, checked by validators that stop at the first error: a yes or a no. */
const firstError = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true })
firstError.addSchema(definitions)
const validateCriteriaDocument = firstError.compile(criteriaSchema)
const validateProfilesDocument = firstError.compile(profilesSchema)
/** The pieces of a refused document, checked for every error. */
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
ajv.addSchema(definitions)

/*
 * Collecting every error of an invalid document in one ajv call is quadratic in the number of
 * failing criteria entries: ajv's generated code concatenates a referenced schema's errors onto
 * everything so far, entry after entry (30,000 bad entries took 2.4 s, found by
 * test/fuzz-metadata.test.ts; a million would take hours). So an invalid document is checked
 * again in pieces: its shell, with the criteria lists' entries left out, then each entry on its
 * own against the same definition. Together they are the same schema; a valid document never
 * takes this path.
 */
const ENTRY_REF = 'urn:cdni-authz:schema:criteria#/definitions/entry'
const LIST_WITHOUT_ENTRIES = { type: 'array', minItems: 1 }
const validateEntry = ajv.getSchema(ENTRY_REF) as ValidateFunction
const criteriaShell = structuredClone(criteriaSchema) as { $id: string; properties: Record<string, unknown> }
criteriaShell.$id += ':shell'
criteriaShell.properties.deliveryCriteria = LIST_WITHOUT_ENTRIES
const profilesShell = structuredClone(profilesSchema) as { $id: string; properties: { deliveryProfiles: { items: { properties: Record<string, unknown> } } } }
profilesShell.$id += ':shell'
profilesShell.properties.deliveryProfiles.items.properties.deliveryCriteria = LIST_WITHOUT_ENTRIES
const validateCriteriaShell = ajv.compile(criteriaShell)
const validateProfilesShell = ajv.compile(profilesShell)

/** Every schema error of a document the full validator refused, in linear time. */
function collectSchemaErrors(format: MetadataFormat, doc: Record<string, unknown>, errors: ProblemList): void {
  const shell = format === 'deliveryCriteria' ? validateCriteriaShell : validateProfilesShell
  if (!shell(doc)) for (const error of shell.errors as ErrorObject[]) errors.add(...describe(error, ''))
  const lists: [string, unknown][] = []
  if (format === 'deliveryCriteria') {
    lists.push(['/deliveryCriteria', doc.deliveryCriteria])
  } else if (Array.isArray(doc.deliveryProfiles)) {
    doc.deliveryProfiles.forEach((profile: unknown, p) => {
      if (typeof profile === 'object' && profile !== null) lists.push([`/deliveryProfiles/${p}/deliveryCriteria`, (profile as Record<string, unknown>).deliveryCriteria])
    })
  }
  for (const [at, list] of lists) {
    if (!Array.isArray(list)) continue
    list.forEach((entry: unknown, i) => {
      if (!validateEntry(entry)) for (const error of validateEntry.errors as ErrorObject[]) errors.add(...describe(error, `${at}/${i}`))
    })
  }
}

const describe = (error: ErrorObject, at: string): [string, string] => {
  const problem = describeAjvError({ ...error, instancePath: at + error.instancePath })
  return [problem.pointer, problem.message]
}

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
function asList<T>(value: T | T[]): T[] {
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
  const offsetMinutes = /z/i.test(offset) ? 0 : (offset[0] === '-' ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4)))
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
export function warnIfNoSource(t: Translation, fact: 'mobile' | 'country' | 'asn' | 'subdivision', pointer: string, name: string): void {
  if (fact === 'mobile' && !t.context.gatewaysConfigured && !t.warnedMobile) {
    t.warnedMobile = true
    t.warnings.add(pointer, `${name} needs a trusted operator gateway and none is configured: regions using it never match`)
  } else if (fact === 'country' && !t.context.countryDatabase && !t.warnedCountry) {
    t.warnedCountry = true
    t.warnings.add(pointer, `${name} needs a country database and none is configured: regions using it never match`)
  } else if (fact === 'asn' && !t.context.asnDatabase && !t.warnedAsn) {
    t.warnedAsn = true
    t.warnings.add(pointer, `${name} needs an AS-number database and none is configured: regions using it never match`)
  } else if (fact === 'subdivision' && t.context.subdivisionDatabase !== true && !t.warnedSubdivision) {
    t.warnedSubdivision = true
    t.warnings.add(pointer, `${name} needs a City country database (one whose records name subdivisions) and none is configured: footprints using it never match`)
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

const REGION_FIELDS = ['country', 'bgpAs', 'subnet', 'subnet2', 'msdnPrefix'] as const

function translateRegion(t: Translation, region: Record<string, unknown>, pointer: string): RegionModel {
  warnVendorExtensions(t, region, pointer)
  const model: RegionModel = { pointer, subnet: null, subnet2: null, msisdn: null, country: null, asn: null }
  if (!REGION_FIELDS.some((field) => field in region)) {
    t.errors.add(pointer, `region must name at least one of ${REGION_FIELDS.join(', ')}`)
    return model
  }
  if (region.subnet !== undefined) {
    model.subnet = translatePrefixes(t, region.subnet as string | string[], `${pointer}/subnet`)
  }
  if (region.subnet2 !== undefined) {
    model.subnet2 = translatePrefixes(t, region.subnet2 as string | string[], `${pointer}/subnet2`)
    warnIfNoSource(t, 'mobile', `${pointer}/subnet2`, 'subnet2')
  }
  if (region.msdnPrefix !== undefined) {
    model.msisdn = translateMsisdnPrefixes(t, region.msdnPrefix as string | string[], `${pointer}/msdnPrefix`)
    warnIfNoSource(t, 'mobile', `${pointer}/msdnPrefix`, 'msdnPrefix')
  }
  if (region.country !== undefined) {
    const countries: string[] = []
    forEachValue(region.country as string | string[], `${pointer}/country`, (text, at) => {
      const code = normalizeCountryCode(text)
      if (code === null) t.errors.add(at, `"${text}" is not an ISO 3166-1 alpha-2 country code`)
      else countries.push(code)
    })
    model.country = countries
    warnIfNoSource(t, 'country', `${pointer}/country`, 'country')
  }
  if (region.bgpAs !== undefined) {
    model.asn = asList(region.bgpAs as number | number[])
    warnIfNoSource(t, 'asn', `${pointer}/bgpAs`, 'bgpAs')
  }
  return model
}

const ENTRY_KINDS = ['region', 'protocol', 'timeWindow'] as const

/** Groups a deliveryCriteria list into one clause per kind present (README, "The seed's format"). */
function translateCriteria(t: Translation, list: Record<string, unknown>[], pointer: string): ClauseModel[] {
  let regions: Extract<ClauseModel, { kind: 'region' }> | null = null
  let protocols: Extract<ClauseModel, { kind: 'protocol' }> | null = null
  let windows: Extract<ClauseModel, { kind: 'timeWindow' }> | null = null
  for (let i = 0; i < list.length; i++) {
    const entry = list[i] as Record<string, unknown>
    const at = `${pointer}/${i}`
    warnVendorExtensions(t, entry, at)
    const kinds = ENTRY_KINDS.filter((kind) => kind in entry)
    if (kinds.length !== 1) {
      t.errors.add(at, `must hold exactly one of region, protocol, timeWindow${kinds.length > 1 ? ` (found ${kinds.join(', ')})` : ''}`)
      continue
    }
    if (entry.region !== undefined) {
      regions ??= { kind: 'region', pointer: `${at}/region`, regions: [] }
      regions.regions.push(translateRegion(t, entry.region as Record<string, unknown>, `${at}/region`))
    } else if (entry.protocol !== undefined) {
      protocols ??= { kind: 'protocol', pointer: `${at}/protocol`, protocols: [] }
      for (const protocol of asList(entry.protocol as Protocol | Protocol[])) {
        if (!protocols.protocols.includes(protocol)) protocols.protocols.push(protocol)
      }
    } else {
      const window = entry.timeWindow as Record<string, string>
      warnVendorExtensions(t, window, `${at}/timeWindow`)
      const start = parseTimestamp(window.startTime as string)
      const end = parseTimestamp(window.endTime as string)
      if (Number.isNaN(start)) t.errors.add(`${at}/timeWindow/startTime`, 'must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z')
      if (Number.isNaN(end)) t.errors.add(`${at}/timeWindow/endTime`, 'must be an RFC 3339 date-time such as 2027-01-01T00:00:00Z')
      if (!Number.isNaN(start) && !Number.isNaN(end) && end <= start) {
        t.errors.add(`${at}/timeWindow/endTime`, 'must be after startTime (the window is [startTime, endTime))')
      }
      windows ??= { kind: 'timeWindow', pointer: `${at}/timeWindow`, windows: [] }
      windows.windows.push({ start, end } satisfies TimeWindow)
    }
  }
  const clauses: ClauseModel[] = []
  if (regions) clauses.push(regions)
  if (protocols) clauses.push(protocols)
  if (windows) clauses.push(windows)
  return clauses
}

/** Which metadata format a document is, told apart by shape. */
export type MetadataFormat = 'deliveryCriteria' | 'deliveryProfiles'

export function detectFormat(doc: unknown): MetadataFormat | null {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null
  if ('deliveryProfiles' in doc) return 'deliveryProfiles'
  if ('deliveryCriteria' in doc) return 'deliveryCriteria'
  return null
}

export function newTranslation(context: LoadContext): Translation {
  return { errors: new ProblemList(), warnings: new ProblemList(), context, warnedMobile: false, warnedCountry: false, warnedAsn: false, warnedSubdivision: false }
}

/**
 * Validates a parsed metadata document and translates it into the policy model.
 * Never throws for any JSON value.
 */
export function loadPolicyModel(doc: unknown, context: LoadContext = DEFAULT_LOAD_CONTEXT): LoadResult {
  const t = newTranslation(context)
  const format = detectFormat(doc)
  if (format === null) {
    return {
      ok: false,
      model: null,
      errors: [{ pointer: '', message: 'must be an object with "deliveryCriteria", "deliveryProfiles" or (RFC 8006) "hosts"' }],
      warnings: [],
    }
  }
  const validate = format === 'deliveryCriteria' ? validateCriteriaDocument : validateProfilesDocument
  if (!validate(doc)) {
    collectSchemaErrors(format, doc as Record<string, unknown>, t.errors)
    return { ok: false, model: null, errors: t.errors.done(), warnings: [] }
  }
  const document = doc as Record<string, unknown>
  warnVendorExtensions(t, document, '')
  const rules: RuleModel[] = []
  if (format === 'deliveryCriteria') {
    rules.push({
      pointer: '/deliveryCriteria',
      allow: true,
      clauses: translateCriteria(t, document.deliveryCriteria as Record<string, unknown>[], '/deliveryCriteria'),
    })
  } else {
    const profiles = document.deliveryProfiles as Record<string, unknown>[]
    profiles.forEach((profile, i) => {
      const at = `/deliveryProfiles/${i}`
      warnVendorExtensions(t, profile, at)
      const deliveryRules = profile.deliveryRules as { allow: boolean }
      warnVendorExtensions(t, deliveryRules, `${at}/deliveryRules`)
      rules.push({
        pointer: at,
        allow: deliveryRules.allow,
        clauses: translateCriteria(t, profile.deliveryCriteria as Record<string, unknown>[], `${at}/deliveryCriteria`),
      })
    })
  }
  if (t.errors.size > 0) return { ok: false, model: null, errors: t.errors.done(), warnings: t.warnings.done() }
  return { ok: true, model: { rules }, errors: [], warnings: t.warnings.done() }
}

/** The result tools need: is the document acceptable, and what is wrong or suspicious in it. */
export interface ValidationReport {
  ok: boolean
  errors: Problem[]
  warnings: Problem[]
}

/**
 * Parses metadata JSON text. Syntax errors come back as a problem carrying line and column
 * (1-based). JSON.parse stays the parser of record (it is the fastest, and what is accepted must
 * be exactly JSON); only when it fails is jsonc-parser, in strict mode, asked where, because V8's
 * messages often give no position.
 */
export function parseMetadataText(text: string): { ok: true; value: unknown } | { ok: false; error: Problem & { line: number; column: number } } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch (err) {
    const errors: ParseError[] = []
    try {
      parseTolerant(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false })
    } catch {
      // jsonc-parser descends recursively: nesting thousands deep overflows its stack (found by
      // test/fuzz-metadata.test.ts). V8's own message is then all there is.
      errors.length = 0
    }
    const first = errors[0]
    const position = first ? first.offset : text.length
    const reason = first ? printParseErrorCode(first.error) : (err as Error).message
    const before = text.slice(0, position)
    const line = before.split('\n').length
    const column = position - before.lastIndexOf('\n')
    return {
      ok: false,
      error: { pointer: '', line, column, message: `invalid JSON at line ${line}, column ${column}: ${reason}` },
    }
  }
}
