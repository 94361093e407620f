/**
 * RFC 8006 metadata (a HostIndex) → schema validation → the site model: per host and path, the
 * ACLs in force as policy models (model.ts). The enforced types are MI.LocationACL,
 * MI.TimeWindowACL and MI.ProtocolACL; every other type is honoured through
 * `mandatory-to-enforce` (section 4.1.7): mandatory (the default) and not enforced here means the
 * content it covers is denied, with a warning that says so; optional means ignored, also said.
 *
 * Semantics taken from the RFC (README, "RFC 8006", says what we chose where it is silent):
 * - Each ACL is a first-match rule list, `action` defaulting to "deny"; no rule matching is a
 *   denial; a missing list allows all; an empty list denies all. The three kinds are ANDed.
 * - A rule's footprints narrow one another (RFC 8008 appendix B, RFC 9388 section 2.2): a client
 *   must be in every footprint of the rule, in any value of each. `footprintunion` is the union of
 *   its member footprints. A rule with no footprints matches nobody.
 * - A deeper HostMetadata / PathMetadata object of a type replaces the inherited one; within one
 *   `metadata` list only the first object of a type counts. Types compare case-insensitively.
 * - Paths: the first PathMatch whose pattern matches decides, then its own paths, and so on.
 */
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { normalizeCountryCode } from './country-codes.js'
import {
  DEFAULT_LOAD_CONTEXT,
  describeAjvError,
  newTranslation,
  translateMsisdnPrefixes,
  translatePrefixes,
  warnIfNoSource,
  warnVendorExtensions,
  type LoadContext,
  type Translation,
} from './translate.js'
import {
  type AclSet,
  type ClauseModel,
  type HostNode,
  type PathNode,
  type PolicyModel,
  type Problem,
  type RegionModel,
  type RuleModel,
  type SiteModel,
  type Unenforceable,
} from '../policy/model.js'
import {
  compilePattern,
  compilePatternList,
  MAX_PATH_LENGTH,
  patternCost,
  patternError,
  SELECTION_BUDGET,
  type PathPattern,
} from '../policy/path-pattern.js'
import { canonicalPattern, normalizeHost } from '../policy/request-target.js'

/** Footprint types of our own for the draft's mobile fields, documented in the README ("RFC 8006"). */
export const HANDSET_CIDR = 'x-handset-cidr'
export const MSISDN_PREFIX = 'x-msisdn-prefix'

export const LOCATION_ACL = 'mi.locationacl'
export const TIME_WINDOW_ACL = 'mi.timewindowacl'
export const PROTOCOL_ACL = 'mi.protocolacl'

/** Protocol names of the CDNI Metadata Protocol Types registry (RFC 8006 section 7.3) we can tell apart. */
const PROTOCOLS: Record<string, 'http' | 'https'> = { 'http/1.1': 'http', 'https/1.1': 'https' }

export type SiteLoadResult =
  | { ok: true; site: SiteModel; errors: []; warnings: Problem[] }
  | { ok: false; site: null; errors: Problem[]; warnings: Problem[] }

interface Validators {
  document: ValidateFunction
  shell: ValidateFunction
  host: ValidateFunction
  values: Record<string, ValidateFunction>
}

let compiled: Validators | null = null

/**
 * The validators, compiled on first use rather than at import: most deployments never see RFC 8006
 * metadata, and a process that imported the compiled ajv code paid for it on every request (bare
 * Fastify in the same process went from about 22 to 26 µs of CPU per request; bench/http.js).
 */
function validators(): Validators {
  if (compiled !== null) return compiled
  const schema = JSON.parse(readFileSync(new URL('../../schemas/rfc8006.schema.json', import.meta.url), 'utf8')) as {
    $id: string
    properties: Record<string, unknown>
  }
  const document = new Ajv({ allErrors: false, strict: true }).compile(schema)
  // A refused document is checked again for every error, host by host, so the work stays linear
  // in the number of bad hosts (see collectSchemaErrors in metadata.ts for why).
  const every = new Ajv({ allErrors: true, strict: true })
  every.addSchema(schema)
  const shell = structuredClone(schema)
  shell.$id += ':shell'
  shell.properties.hosts = { type: 'array' }
  const definition = (name: string) =>
    every.getSchema(`urn:cdni-authz:schema:rfc8006#/definitions/${name}`) as ValidateFunction
  compiled = {
    document,
    shell: every.compile(shell),
    host: definition('HostMatch'),
    values: {
      [LOCATION_ACL]: definition('LocationACL'),
      [TIME_WINDOW_ACL]: definition('TimeWindowACL'),
      [PROTOCOL_ACL]: definition('ProtocolACL'),
    },
  }
  return compiled
}

function addAjvErrors(t: Translation, validate: ValidateFunction, at: string): void {
  for (const error of validate.errors as ErrorObject[]) {
    const problem = describeAjvError({ ...error, instancePath: at + error.instancePath })
    const href =
      error.keyword === 'additionalProperties' &&
      (error.params as { additionalProperty: string }).additionalProperty === 'href'
    t.errors.add(
      problem.pointer,
      href ? 'a Link object: references are not fetched, embed the object it points to' : problem.message,
    )
  }
}

/** Does this document look like RFC 8006 metadata (a HostIndex)? */
export function isHostIndex(doc: unknown): boolean {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'hosts' in doc
}

/** Hosts compare as request-target.ts reads them from a request, in one function. */

/**
 * Identical ACL values (a partner often writes the same LocationACL under thousands of hosts) are
 * translated, and so compiled, once: the key is the type and the value's JSON text. Their rule
 * pointers then name the first place the value was written.
 */
interface SiteTranslation extends Translation {
  acls: Map<string, { acl: PolicyModel | null; problems: string[] }>
}

/** One type's object in force at a node. Neither field: understood, nothing to enforce here. */
interface Entry {
  /** The model for an enforced ACL (null: allow all); undefined for anything else. */
  acl?: PolicyModel | null
  unenforceable?: Unenforceable
}

function rule(pointer: string, action: unknown, clauses: ClauseModel[]): RuleModel {
  return { pointer, allow: action === 'allow', clauses }
}

function footprintRegion(
  t: Translation,
  footprint: Record<string, unknown>,
  at: string,
  problems: string[],
): RegionModel {
  const type = footprint['footprint-type'] as string
  const values = footprint['footprint-value'] as unknown[]
  const region: RegionModel = { pointer: at, subnet: null, subnet2: null, msisdn: null, country: null, asn: null }
  const strings = (): string[] => {
    const bad = values.findIndex((value) => typeof value !== 'string')
    if (bad >= 0) t.errors.add(`${at}/footprint-value/${bad}`, `${type} values must be strings`)
    return values.filter((value): value is string => typeof value === 'string')
  }
  const valuesAt = `${at}/footprint-value`
  /** The string values parsed; one that does not parse is an error at its index. */
  const parseEach = <T>(parse: (value: string) => T | null, problem: (value: string) => string): T[] => {
    const parsed: T[] = []
    strings().forEach((value, i) => {
      const result = parse(value)
      if (result === null) t.errors.add(`${valuesAt}/${i}`, problem(value))
      else parsed.push(result)
    })
    return parsed
  }
  switch (type) {
    case 'ipv4cidr':
    case 'ipv6cidr': {
      const list = strings()
      list.forEach((value, i) => {
        if (value.includes(':') !== (type === 'ipv6cidr')) {
          t.errors.add(`${valuesAt}/${i}`, `"${value}" is not an ${type === 'ipv4cidr' ? 'IPv4' : 'IPv6'} CIDR`)
        }
      })
      region.subnet = translatePrefixes(t, list, valuesAt)
      break
    }
    case HANDSET_CIDR:
      region.subnet2 = translatePrefixes(t, strings(), valuesAt)
      warnIfNoSource(t, 'mobile', at, HANDSET_CIDR)
      break
    case MSISDN_PREFIX:
      region.msisdn = translateMsisdnPrefixes(t, strings(), valuesAt)
      warnIfNoSource(t, 'mobile', at, MSISDN_PREFIX)
      break
    case 'asn':
      region.asn = parseEach(
        (value) => {
          const n = Number(/^as(\d{1,10})$/i.exec(value)?.[1] ?? NaN)
          return n <= 0xffffffff ? n : null
        },
        (value) => `"${value}" must be "as" and an AS number (RFC 8006 section 4.3.7), such as "as64496"`,
      )
      warnIfNoSource(t, 'asn', at, 'asn')
      break
    case 'countrycode':
      region.country = parseEach(
        normalizeCountryCode,
        (value) => `"${value}" is not an ISO 3166-1 alpha-2 country code`,
      )
      warnIfNoSource(t, 'country', at, 'countrycode')
      break
    case 'subdivisioncode':
      // Kept in the country table beside country codes (`US-NY` cannot be mistaken for `US`).
      region.country = parseEach(
        (value) => {
          const m = /^([a-z]{2})-([a-z0-9]{1,3})$/i.exec(value)
          const country = m ? normalizeCountryCode(m[1] as string) : null
          return country === null ? null : `${country}-${(m?.[2] as string).toUpperCase()}`
        },
        (value) => `"${value}" is not an ISO 3166-2 subdivision code such as "us-ny"`,
      )
      warnIfNoSource(t, 'subdivision', at, 'subdivisioncode')
      break
    default:
      problems.push(`footprint type "${type}" is not one this edge knows`)
  }
  return region
}

/** One footprint as a region clause: one region, or one per member of a footprintunion. */
function footprintClause(
  t: Translation,
  footprint: Record<string, unknown>,
  at: string,
  problems: string[],
): ClauseModel {
  if (footprint['footprint-type'] !== 'footprintunion') {
    return { kind: 'region', pointer: at, regions: [footprintRegion(t, footprint, at, problems)] }
  }
  const regions: RegionModel[] = []
  ;(footprint['footprint-value'] as unknown[]).forEach((member, i) => {
    const memberAt = `${at}/footprint-value/${i}`
    const ok =
      typeof member === 'object' &&
      member !== null &&
      typeof (member as Record<string, unknown>)['footprint-type'] === 'string' &&
      Array.isArray((member as Record<string, unknown>)['footprint-value'])
    if (!ok) {
      t.errors.add(memberAt, 'a footprintunion lists footprint objects ({ "footprint-type", "footprint-value" })')
    } else if ((member as Record<string, unknown>)['footprint-type'] === 'footprintunion') {
      t.errors.add(memberAt, 'a footprintunion must not list a footprintunion (RFC 9388 section 2.2)')
    } else regions.push(footprintRegion(t, member as Record<string, unknown>, memberAt, problems))
  })
  return { kind: 'region', pointer: at, regions }
}

/** Translates an enforced ACL's value (already checked against its schema). */
function translateAcl(
  t: Translation,
  type: string,
  value: Record<string, unknown>,
  at: string,
  problems: string[],
): PolicyModel | null {
  if (type === LOCATION_ACL) {
    if (value.locations === undefined) return null
    const rules = (value.locations as Record<string, unknown>[]).map((location, r) => {
      const ruleAt = `${at}/locations/${r}`
      const footprints = location.footprints as Record<string, unknown>[]
      // No footprints: the rule applies to nobody (an empty region clause never matches).
      const clauses =
        footprints.length === 0
          ? [{ kind: 'region', pointer: `${ruleAt}/footprints`, regions: [] } satisfies ClauseModel]
          : footprints.map((footprint, f) => footprintClause(t, footprint, `${ruleAt}/footprints/${f}`, problems))
      return rule(ruleAt, location.action, clauses)
    })
    return { rules }
  }
  if (type === TIME_WINDOW_ACL) {
    if (value.times === undefined) return null
    const rules = (value.times as Record<string, unknown>[]).map((time, r) => {
      const ruleAt = `${at}/times/${r}`
      const windows = (time.windows as { start: number; end: number }[]).map((window, w) => {
        if (window.end <= window.start) {
          t.errors.add(
            `${ruleAt}/windows/${w}/end`,
            'must be after start (the window is [start, end), in seconds since the epoch)',
          )
        }
        return { start: window.start * 1000, end: window.end * 1000 }
      })
      return rule(ruleAt, time.action, [{ kind: 'timeWindow', pointer: `${ruleAt}/windows`, windows }])
    })
    return { rules }
  }
  if (value['protocol-acl'] === undefined) return null
  const rules = (value['protocol-acl'] as Record<string, unknown>[]).map((entry, r) => {
    const ruleAt = `${at}/protocol-acl/${r}`
    const protocols: ('http' | 'https')[] = []
    ;(entry.protocols as string[]).forEach((name, p) => {
      const protocol = PROTOCOLS[name.toLowerCase()]
      if (protocol === undefined) {
        t.warnings.add(
          `${ruleAt}/protocols/${p}`,
          `"${name}" is not a protocol this edge serves (http/1.1, https/1.1): it never matches`,
        )
      } else if (!protocols.includes(protocol)) protocols.push(protocol)
    })
    return rule(ruleAt, entry.action, [{ kind: 'protocol', pointer: `${ruleAt}/protocols`, protocols }])
  })
  return { rules }
}

/** One `metadata` list, as entries by type (first of a type wins). */
function translateMetadataList(t: SiteTranslation, list: Record<string, unknown>[], at: string): Map<string, Entry> {
  const entries = new Map<string, Entry>()
  list.forEach((generic, i) => {
    const entryAt = `${at}/${i}`
    warnVendorExtensions(t, generic, entryAt)
    const written = generic['generic-metadata-type'] as string
    const type = written.toLowerCase()
    if (entries.has(type)) {
      t.warnings.add(entryAt, `a second ${written} in the same list is ignored: only the first of a type counts`)
      return
    }
    const mandatory = generic['mandatory-to-enforce'] !== false
    const valueAt = `${entryAt}/generic-metadata-value`
    const validate = validators().values[type]
    const unenforceable = (reason: string): void => {
      if (mandatory) {
        entries.set(type, { unenforceable: { pointer: entryAt, type: written, reason } })
        t.warnings.add(entryAt, `${written} is mandatory-to-enforce and ${reason}: the content it covers is denied`)
      } else {
        entries.set(type, {})
        t.warnings.add(entryAt, `${written} ${reason}; it is not mandatory-to-enforce, so it is ignored`)
      }
    }
    if (generic.incomprehensible === true) return unenforceable('is marked incomprehensible by a CDN upstream')
    if (validate === undefined) {
      if (t.context.enforcedElsewhere?.includes(type)) entries.set(type, {})
      else unenforceable('this edge does not enforce it')
      return
    }
    const value = generic['generic-metadata-value']
    if (!validate(value)) {
      addAjvErrors(t, validate, valueAt)
      return
    }
    const key = `${type}\n${JSON.stringify(value)}`
    let translated = t.acls.get(key)
    if (translated === undefined) {
      const problems: string[] = []
      translated = { acl: translateAcl(t, type, value as Record<string, unknown>, valueAt, problems), problems }
      t.acls.set(key, translated)
    }
    const { acl, problems } = translated
    if (problems.length > 0) unenforceable(`cannot be enforced here (${problems.join('; ')})`)
    else entries.set(type, { acl })
  })
  return entries
}

function aclSet(entries: Map<string, Entry>): AclSet {
  const acl = (type: string) => entries.get(type)?.acl ?? null
  const unenforceable: Unenforceable[] = []
  for (const entry of entries.values()) if (entry.unenforceable) unenforceable.push(entry.unenforceable)
  return { location: acl(LOCATION_ACL), time: acl(TIME_WINDOW_ACL), protocol: acl(PROTOCOL_ACL), unenforceable }
}

function translatePaths(
  t: SiteTranslation,
  paths: Record<string, unknown>[] | undefined,
  at: string,
  inherited: Map<string, Entry>,
): PathNode[] {
  return (paths ?? []).map((match, i) => {
    const matchAt = `${at}/${i}`
    warnVendorExtensions(t, match, matchAt)
    const pattern = match['path-pattern'] as { pattern: string; 'case-sensitive'?: boolean }
    const patternAt = `${matchAt}/path-pattern/pattern`
    const error = patternError(pattern.pattern)
    const canonical = error === null ? canonicalPattern(pattern.pattern) : { ok: false as const, message: error }
    if (!canonical.ok) t.errors.add(patternAt, canonical.message)
    else if (canonical.pattern !== pattern.pattern) {
      t.warnings.add(
        patternAt,
        `"${pattern.pattern}" is compared as "${canonical.pattern}", the canonical form request paths are compared in (RFC 3986 section 6.2.2)`,
      )
    }
    if (canonical.ok && !/^[/*]/.test(canonical.pattern)) {
      t.warnings.add(
        patternAt,
        `"${pattern.pattern}" matches no request: every path starts with "/" (RFC 8006 section 4.1.5 matches the path-absolute)`,
      )
    }
    const metadata = match['path-metadata'] as Record<string, unknown>
    const own = translateMetadataList(
      t,
      metadata.metadata as Record<string, unknown>[],
      `${matchAt}/path-metadata/metadata`,
    )
    const effective = new Map([...inherited, ...own])
    return {
      pointer: matchAt,
      pattern: canonical.ok ? canonical.pattern : pattern.pattern,
      caseSensitive: pattern['case-sensitive'] === true,
      acls: aclSet(effective),
      paths: translatePaths(
        t,
        metadata.paths as Record<string, unknown>[] | undefined,
        `${matchAt}/path-metadata/paths`,
        effective,
      ),
    }
  })
}

const count = (n: number): string => n.toLocaleString('en-US')

/**
 * Refuses what could make selecting one request's node cost more than SELECTION_BUDGET
 * comparisons (path-pattern.ts): along any chain of levels a request can descend, the patterns
 * its path is tried against, each at its worst for a path of MAX_PATH_LENGTH characters. The
 * error names the pattern at which the costliest path would cross the budget.
 */
function checkSelectionCost(t: SiteTranslation, nodes: PathNode[], spent: number): void {
  if (nodes.length === 0) return
  const patterns = nodes.map((node) => compilePattern(node.pattern, node.caseSensitive))
  const list = compilePatternList(patterns)
  if (spent + list.cost > SELECTION_BUDGET) {
    let total = spent + list.cost - list.costliest.reduce((sum, i) => sum + patternCost(patterns[i] as PathPattern), 0)
    let culprit = list.costliest[0] as number
    for (const i of list.costliest) {
      culprit = i
      total += patternCost(patterns[i] as PathPattern)
      if (total > SELECTION_BUDGET) break
    }
    t.errors.add(
      `${(nodes[culprit] as PathNode).pointer}/path-pattern/pattern`,
      `selecting a request's path could take ${count(total)} comparisons by this pattern (those its path is tried against here and at the levels above, for a path of ${count(MAX_PATH_LENGTH)} characters), more than the ${count(SELECTION_BUDGET)} allowed per request: index such patterns by a literal first segment ("/v/*" rather than "*/v/*"), or write fewer with two or more "*"`,
    )
    return
  }
  for (const node of nodes) checkSelectionCost(t, node.paths, spent + list.cost)
}

/** Validates a HostIndex and translates it into the site model. Never throws for any JSON value. */
export function loadSiteModel(doc: unknown, context: Partial<LoadContext> = {}): SiteLoadResult {
  const t: SiteTranslation = { ...newTranslation({ ...DEFAULT_LOAD_CONTEXT, ...context }), acls: new Map() }
  const { document: validateDocument, shell, host: validateHost } = validators()
  if (!validateDocument(doc)) {
    if (!shell(doc)) addAjvErrors(t, shell, '')
    const hosts = (doc as { hosts?: unknown }).hosts
    if (Array.isArray(hosts)) {
      hosts.forEach((host, i) => validateHost(host) || addAjvErrors(t, validateHost, `/hosts/${i}`))
    }
    return { ok: false, site: null, errors: t.errors.done(), warnings: [] }
  }
  const document = doc as { hosts: Record<string, unknown>[] }
  warnVendorExtensions(t, document, '')
  const seen = new Set<string>()
  const hosts: HostNode[] = []
  document.hosts.forEach((match, i) => {
    const at = `/hosts/${i}`
    warnVendorExtensions(t, match, at)
    const host = normalizeHost(match.host as string)
    if (host === null) {
      t.errors.add(`${at}/host`, `"${String(match.host)}" is not a host name or IP address with an optional port`)
      return
    }
    const metadata = match['host-metadata'] as Record<string, unknown>
    const own = translateMetadataList(t, metadata.metadata as Record<string, unknown>[], `${at}/host-metadata/metadata`)
    const paths = translatePaths(
      t,
      metadata.paths as Record<string, unknown>[] | undefined,
      `${at}/host-metadata/paths`,
      own,
    )
    if (seen.has(host)) {
      t.warnings.add(`${at}/host`, `"${host}" is matched by an earlier HostMatch: this one is never used`)
      return
    }
    seen.add(host)
    hosts.push({ pointer: at, host, acls: aclSet(own), paths })
  })
  if (hosts.length === 0 && t.errors.size === 0) t.warnings.add('/hosts', 'no HostMatch: every request is denied')
  if (t.errors.size === 0) for (const host of hosts) checkSelectionCost(t, host.paths, 0)
  if (t.errors.size > 0) return { ok: false, site: null, errors: t.errors.done(), warnings: t.warnings.done() }
  return { ok: true, site: { hosts }, errors: [], warnings: t.warnings.done() }
}
