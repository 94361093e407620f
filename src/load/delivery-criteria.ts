/**
 * The delivery-criteria formats (a bare `deliveryCriteria` list, or ordered `deliveryProfiles`) →
 * schema validation → policy model (docs/ARCHITECTURE.md, first two stages).
 *
 * ajv checks the structure against the JSON Schemas in `schemas/` (compiled once, at module
 * load); this module then makes the checks a schema cannot express (README, "The seed's format":
 * strict prefixes, contiguous masks, ISO 3166-1 codes, digit-only MSISDN prefixes, startTime <
 * endTime, exactly one kind per entry) and reports them in the same `{ pointer, message }` shape.
 * Every problem comes back, not only the first, up to a cap that keeps a hostile document's error
 * list bounded.
 */
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { normalizeCountryCode } from './country-codes.js'
import {
  DEFAULT_LOAD_CONTEXT,
  describeAjvError,
  asList,
  forEachValue,
  newTranslation,
  parseTimestamp,
  ProblemList,
  translateMsisdnPrefixes,
  translatePrefixes,
  warnIfNoSource,
  warnVendorExtensions,
  type LoadContext,
  type LoadResult,
  type Translation,
} from './translate.js'
import type { ClauseModel, Protocol, RegionModel, RuleModel, TimeWindow } from '../policy/model.js'

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
const profilesShell = structuredClone(profilesSchema) as {
  $id: string
  properties: { deliveryProfiles: { items: { properties: Record<string, unknown> } } }
}
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
      if (typeof profile === 'object' && profile !== null) {
        lists.push([`/deliveryProfiles/${p}/deliveryCriteria`, (profile as Record<string, unknown>).deliveryCriteria])
      }
    })
  }
  for (const [at, list] of lists) {
    if (!Array.isArray(list)) continue
    list.forEach((entry: unknown, i) => {
      if (!validateEntry(entry)) {
        for (const error of validateEntry.errors as ErrorObject[]) errors.add(...describe(error, `${at}/${i}`))
      }
    })
  }
}

const describe = (error: ErrorObject, at: string): [string, string] => {
  const problem = describeAjvError({ ...error, instancePath: at + error.instancePath })
  return [problem.pointer, problem.message]
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
      t.errors.add(
        at,
        `must hold exactly one of region, protocol, timeWindow${kinds.length > 1 ? ` (found ${kinds.join(', ')})` : ''}`,
      )
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
      if (Number.isNaN(start)) {
        t.errors.add(`${at}/timeWindow/startTime`, 'must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z')
      }
      if (Number.isNaN(end)) {
        t.errors.add(`${at}/timeWindow/endTime`, 'must be an RFC 3339 date-time such as 2027-01-01T00:00:00Z')
      }
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
      errors: [
        { pointer: '', message: 'must be an object with "deliveryCriteria", "deliveryProfiles" or (RFC 8006) "hosts"' },
      ],
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
