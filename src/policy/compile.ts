/**
 * Policy model → compiled policy → decision (docs/ARCHITECTURE.md, last two stages).
 *
 * Regions become bit positions. Every fact a request carries (source address, handset address,
 * MSISDN, country, AS number) is looked up once in its table, whose label turns into a bitset of
 * the regions whose field for that fact matches. A region matches when all its fields do:
 *
 *   matched = AND over fields f of (bits_f[label_f(fact)] | regionsWithout_f)
 *
 * then a region clause matches when (matched & clauseRegions) != 0, and the first rule whose
 * clauses all match decides. With up to 32 regions this is one 32-bit word per field.
 *
 * Regions that name a single field are merged per clause before numbering (a clause listing a
 * million `{ "subnet": ... }` regions is one region with a million prefixes), so the bitset width
 * grows only with regions that combine fields, such as `subnet2` with `msdnPrefix`.
 */
import { keyHighWord, keyLowWord, msisdnKey, msisdnPrefixRange } from '../facts/msisdn.js'
import type { ClauseKind, ClauseModel, MsisdnPrefixes, PolicyModel, PrefixList, RegionModel, TimeWindow } from './model.js'
import { lookup1, lookup2, lookup4, RangeTableBuilder, type RangeTable } from '../table/range-table.js'
import { FACT_HANDSET, FACT_MSISDN, FACT_PROTOCOL, FACT_SOURCE, factNames, type ClientFacts, type FactName } from '../facts/trust-walk.js'

/** Region fields in evaluation order. */
export const FIELDS = ['subnet', 'subnet2', 'msisdn', 'country', 'asn'] as const
export type Field = (typeof FIELDS)[number]
const SUBNET = 0
const SUBNET2 = 1
const MSISDN = 2
const COUNTRY = 3
const ASN = 4

export const PROTOCOL_HTTP = 1
export const PROTOCOL_HTTPS = 2

/** A region table answering one field for one key kind, with its labels as region bitsets. */
interface FieldTable {
  table: RangeTable
  /** labels × W words: bit r set when region r's field contains every key with that label. */
  bits: Uint32Array
}

type CompiledClause =
  | { kind: 'region'; pointer: string; regions: Uint32Array }
  | { kind: 'protocol'; pointer: string; protocols: number }
  | { kind: 'timeWindow'; pointer: string; windows: readonly TimeWindow[] }

interface CompiledRule {
  pointer: string
  allow: boolean
  clauses: CompiledClause[]
}

/** A compiled region, for explanations. */
interface CompiledRegion {
  pointers: string[]
  fields: Field[]
}

export interface PolicySummary {
  /** HostMatch objects, for RFC 8006 metadata. */
  hosts?: number
  rules: number
  regions: number
  ipv4Prefixes: number
  ipv6Prefixes: number
  msisdnPrefixes: number
  intervals: number
}

export interface CompiledPolicy {
  /** Words per region bitset. */
  readonly words: number
  /** Fields some region uses; a request looks up only these. */
  readonly used: readonly boolean[]
  /** Per field: regions that do not name it (so pass it whatever the fact). */
  readonly without: readonly Uint32Array[]
  readonly all: Uint32Array
  readonly subnetV4: FieldTable
  readonly subnetV6: FieldTable
  readonly subnet2V4: FieldTable
  readonly subnet2V6: FieldTable
  readonly msisdnNational: FieldTable
  readonly msisdnInternational: FieldTable
  readonly country: ReadonlyMap<string, Uint32Array>
  readonly asn: ReadonlyMap<number, Uint32Array>
  readonly rules: readonly CompiledRule[]
  readonly regions: readonly CompiledRegion[]
  /** Whether some rule has a time window (else the request path need not read the clock). */
  readonly usesTime: boolean
  /**
   * FACT_* bits of the facts some rule reads, allow or deny: one of them unknowable denies the
   * request before any rule is tried. The source is always among them: without it behind our
   * own proxy, nobody can say who the client is.
   */
  readonly reads: number
  readonly summary: PolicySummary
}

function fieldsOf(region: RegionModel): Field[] {
  const fields: Field[] = []
  if (region.subnet) fields.push('subnet')
  if (region.subnet2) fields.push('subnet2')
  if (region.msisdn) fields.push('msisdn')
  if (region.country) fields.push('country')
  if (region.asn) fields.push('asn')
  return fields
}

/**
 * Merges single-field regions of one clause per field (see the header comment). The model is
 * never changed: a region is copied only when a second one is merged into it.
 */
function mergeSingleFieldRegions(regions: RegionModel[]): { region: RegionModel; pointers: string[] }[] {
  const merged: { region: RegionModel; pointers: string[]; copied: boolean }[] = []
  const byField = new Map<Field, { region: RegionModel; pointers: string[]; copied: boolean }>()
  for (const region of regions) {
    const fields = fieldsOf(region)
    const only = fields.length === 1 ? (fields[0] as Field) : null
    if (only === null) {
      merged.push({ region, pointers: [region.pointer], copied: false })
      continue
    }
    const target = byField.get(only)
    if (target === undefined) {
      const entry = { region, pointers: [region.pointer], copied: false }
      byField.set(only, entry)
      merged.push(entry)
      continue
    }
    if (!target.copied) {
      target.region = cloneRegion(target.region)
      target.copied = true
    }
    appendField(target.region, region, only)
    target.pointers.push(region.pointer)
  }
  return merged
}

function appendField(target: RegionModel, source: RegionModel, field: Field): void {
  switch (field) {
    case 'subnet':
    case 'subnet2':
      ;(target[field] as PrefixList).addAll(source[field] as PrefixList)
      break
    case 'msisdn': {
      const from = source.msisdn as MsisdnPrefixes
      const into = target.msisdn as MsisdnPrefixes
      into.national.push(...from.national)
      into.international.push(...from.international)
      break
    }
    case 'country':
      ;(target.country as string[]).push(...(source.country as string[]))
      break
    case 'asn':
      ;(target.asn as number[]).push(...(source.asn as number[]))
      break
  }
}

/** Copies a region so merging never mutates the model the caller handed in. */
function cloneRegion(region: RegionModel): RegionModel {
  return {
    pointer: region.pointer,
    subnet: region.subnet && region.subnet.copy(),
    subnet2: region.subnet2 && region.subnet2.copy(),
    msisdn: region.msisdn && { national: region.msisdn.national.slice(), international: region.msisdn.international.slice() },
    country: region.country && region.country.slice(),
    asn: region.asn && region.asn.slice(),
  }
}

function setBit(bits: Uint32Array, offset: number, bit: number): void {
  const w = offset + (bit >>> 5)
  bits[w] = ((bits[w] as number) | (1 << (bit & 31))) >>> 0
}

function toFieldTable(builder: RangeTableBuilder, words: number): FieldTable {
  const table = builder.compile()
  const bits = new Uint32Array(table.labelSets.length * words)
  table.labelSets.forEach((set, label) => {
    for (const region of set) setBit(bits, label * words, region)
  })
  return { table, bits }
}

/** Compiles a policy model. Pure: the same model always gives the same tables. */
export function compilePolicy(model: PolicyModel): CompiledPolicy {
  // Number the regions, merging single-field ones per clause.
  const regions: CompiledRegion[] = []
  const regionModels: RegionModel[] = []
  const clauseRegions: number[][][] = model.rules.map((rule) =>
    rule.clauses.map((clause) => {
      if (clause.kind !== 'region') return []
      const ids: number[] = []
      for (const { region, pointers } of mergeSingleFieldRegions(clause.regions)) {
        ids.push(regions.length)
        regions.push({ pointers, fields: fieldsOf(region) })
        regionModels.push(region)
      }
      return ids
    }),
  )
  const words = Math.max(1, Math.ceil(regions.length / 32))
  const all = new Uint32Array(words)
  const without = FIELDS.map(() => new Uint32Array(words))
  const used = FIELDS.map(() => false)
  for (let r = 0; r < regions.length; r++) {
    setBit(all, 0, r)
    const fields = (regions[r] as CompiledRegion).fields
    FIELDS.forEach((field, f) => {
      if (fields.includes(field)) used[f] = true
      else setBit(without[f] as Uint32Array, 0, r)
    })
  }

  const v4 = [new RangeTableBuilder(1), new RangeTableBuilder(1)]
  const v6 = [new RangeTableBuilder(4), new RangeTableBuilder(4)]
  const national = new RangeTableBuilder(2)
  const international = new RangeTableBuilder(2)
  const country = new Map<string, Uint32Array>()
  const asn = new Map<number, Uint32Array>()
  const summary: PolicySummary = { rules: model.rules.length, regions: regions.length, ipv4Prefixes: 0, ipv6Prefixes: 0, msisdnPrefixes: 0, intervals: 0 }

  regionModels.forEach((region, r) => {
    ;[region.subnet, region.subnet2].forEach((list, which) => {
      if (list === null) return
      const b4 = v4[which] as RangeTableBuilder
      const b6 = v6[which] as RangeTableBuilder
      for (let i = 0; i < list.v4Count; i++) b4.addPrefix(list.v4Networks, list.v4Lengths[i] as number, r, i)
      for (let i = 0; i < list.v6Count; i++) b6.addPrefix(list.v6Words, list.v6Lengths[i] as number, r, i * 4)
      summary.ipv4Prefixes += list.v4Count
      summary.ipv6Prefixes += list.v6Count
    })
    if (region.msisdn) {
      for (const [digitsList, builder] of [[region.msisdn.national, national], [region.msisdn.international, international]] as const) {
        for (const digits of digitsList) {
          const { start, last } = msisdnPrefixRange(digits)
          builder.add(start, last, digits.length, r)
        }
        summary.msisdnPrefixes += digitsList.length
      }
    }
    for (const [values, map] of [[region.country, country], [region.asn, asn]] as const) {
      for (const value of values ?? []) {
        let bits = (map as Map<string | number, Uint32Array>).get(value)
        if (bits === undefined) {
          bits = new Uint32Array(words)
          ;(map as Map<string | number, Uint32Array>).set(value, bits)
        }
        setBit(bits, 0, r)
      }
    }
  })

  const rules: CompiledRule[] = model.rules.map((rule, i) => ({
    pointer: rule.pointer,
    allow: rule.allow,
    clauses: rule.clauses.map((clause: ClauseModel, c): CompiledClause => {
      switch (clause.kind) {
        case 'region': {
          const mask = new Uint32Array(words)
          for (const r of (clauseRegions[i] as number[][])[c] as number[]) setBit(mask, 0, r)
          return { kind: 'region', pointer: clause.pointer, regions: mask }
        }
        case 'protocol':
          return {
            kind: 'protocol',
            pointer: clause.pointer,
            protocols: (clause.protocols.includes('http') ? PROTOCOL_HTTP : 0) | (clause.protocols.includes('https') ? PROTOCOL_HTTPS : 0),
          }
        case 'timeWindow':
          return { kind: 'timeWindow', pointer: clause.pointer, windows: clause.windows.slice() }
      }
    }),
  }))

  const tables = {
    subnetV4: toFieldTable(v4[0] as RangeTableBuilder, words),
    subnetV6: toFieldTable(v6[0] as RangeTableBuilder, words),
    subnet2V4: toFieldTable(v4[1] as RangeTableBuilder, words),
    subnet2V6: toFieldTable(v6[1] as RangeTableBuilder, words),
    msisdnNational: toFieldTable(national, words),
    msisdnInternational: toFieldTable(international, words),
  }
  for (const t of Object.values(tables)) summary.intervals += t.table.count
  const usesTime = rules.some((rule) => rule.clauses.some((clause) => clause.kind === 'timeWindow'))
  const reads = FACT_SOURCE
    | (used[SUBNET2] ? FACT_HANDSET : 0)
    | (used[MSISDN] ? FACT_MSISDN : 0)
    | (rules.some((rule) => rule.clauses.some((clause) => clause.kind === 'protocol')) ? FACT_PROTOCOL : 0)
  return { words, used, without, all, ...tables, country, asn, rules, regions, summary, usesTime, reads }
}

/** Stands in for a table's bits when there is no fact (offset -1): never read. */
const EMPTY_BITS = new Uint32Array(0)

/** AND-accumulates `bits[offset..]` (or nothing matched, when offset < 0) into `acc`. */
function accumulate(acc: Uint32Array, bits: Uint32Array, offset: number, without: Uint32Array, words: number): void {
  for (let w = 0; w < words; w++) {
    const matched = offset < 0 ? 0 : (bits[offset + w] as number)
    acc[w] = (acc[w] as number) & (matched | (without[w] as number))
  }
}

/** Offset into `v4.bits` / `v6.bits` for an address, or -1 when there is no address fact. */
function addressOffset(v4: RangeTable, v6: RangeTable, family: number, address: Uint32Array, words: number): number {
  if (family === 4) return lookup1(v4, address[0] as number) * words
  if (family === 6) return lookup4(v6, address) * words
  return -1
}

/**
 * Computes, into `acc`, the regions whose every field matches the facts. The request path calls
 * this with a scratch array; nothing here allocates for IPv4 or MSISDN lookups.
 */
export function matchRegions(policy: CompiledPolicy, facts: ClientFacts, acc: Uint32Array): void {
  const words = policy.words
  // A loop, not acc.set(policy.all): for one or two words the builtin's call costs more.
  const all = policy.all
  for (let w = 0; w < words; w++) acc[w] = all[w] as number
  const used = policy.used
  if (used[SUBNET]) {
    const offset = addressOffset(policy.subnetV4.table, policy.subnetV6.table, facts.sourceFamily, facts.source, words)
    const bits = facts.sourceFamily === 6 ? policy.subnetV6.bits : policy.subnetV4.bits
    accumulate(acc, bits, offset, policy.without[SUBNET] as Uint32Array, words)
  }
  if (used[SUBNET2]) {
    const offset = addressOffset(policy.subnet2V4.table, policy.subnet2V6.table, facts.handsetFamily, facts.handset, words)
    const bits = facts.handsetFamily === 6 ? policy.subnet2V6.bits : policy.subnet2V4.bits
    accumulate(acc, bits, offset, policy.without[SUBNET2] as Uint32Array, words)
  }
  if (used[MSISDN]) {
    const without = policy.without[MSISDN] as Uint32Array
    if (facts.msisdn === null) {
      accumulate(acc, EMPTY_BITS, -1, without, words)
    } else {
      const intl = msisdnLabel(policy.msisdnInternational.table, facts.msisdn.international)
      const nat = facts.msisdn.national === null ? 0 : msisdnLabel(policy.msisdnNational.table, facts.msisdn.national)
      for (let w = 0; w < words; w++) {
        const matched = (policy.msisdnInternational.bits[intl * words + w] as number) | (policy.msisdnNational.bits[nat * words + w] as number)
        acc[w] = (acc[w] as number) & (matched | (without[w] as number))
      }
    }
  }
  if (used[COUNTRY]) {
    // Country and subdivision codes share the table (`US`, `US-NY`): a region lists either kind,
    // and matches when the address's country or one of its subdivisions is listed.
    const bits = facts.country === null ? undefined : policy.country.get(facts.country)
    if (facts.subdivisions.length > 0) matchLocation(policy, bits, facts.subdivisions, acc)
    else accumulate(acc, bits ?? EMPTY_BITS, bits ? 0 : -1, policy.without[COUNTRY] as Uint32Array, words)
  }
  if (used[ASN]) {
    const bits = facts.asn < 0 ? undefined : policy.asn.get(facts.asn)
    accumulate(acc, bits ?? EMPTY_BITS, bits ? 0 : -1, policy.without[ASN] as Uint32Array, words)
  }
}

/** The country step when the address has subdivisions: a region passes when it lists the
 * country or one of the subdivisions (or names no location at all). */
function matchLocation(policy: CompiledPolicy, countryBits: Uint32Array | undefined, subdivisions: readonly string[], acc: Uint32Array): void {
  const without = policy.without[COUNTRY] as Uint32Array
  for (let w = 0; w < policy.words; w++) {
    let matched = (without[w] as number) | (countryBits === undefined ? 0 : (countryBits[w] as number))
    for (const code of subdivisions) matched |= policy.country.get(code)?.[w] ?? 0
    acc[w] = (acc[w] as number) & matched
  }
}

function msisdnLabel(table: RangeTable, digits: string): number {
  // The two words of splitKey, without its tuple: this runs per gateway request.
  const key = msisdnKey(digits)
  const high = keyHighWord(key)
  return lookup2(table, high, keyLowWord(key, high))
}

function clauseMatches(clause: CompiledClause, facts: ClientFacts, regions: Uint32Array): boolean {
  switch (clause.kind) {
    case 'region': {
      const mask = clause.regions
      for (let w = 0; w < mask.length; w++) if (((mask[w] as number) & (regions[w] as number)) !== 0) return true
      return false
    }
    case 'protocol':
      return (clause.protocols & facts.protocol) !== 0
    case 'timeWindow': {
      for (const window of clause.windows) if (facts.now >= window.start && facts.now < window.end) return true
      return false
    }
  }
}

/**
 * The decision: index of the rule that decided, or -1 when none matched (deny).
 * `scratch` must hold `policy.words` words.
 */
export function decide(policy: CompiledPolicy, facts: ClientFacts, scratch: Uint32Array): number {
  matchRegions(policy, facts, scratch)
  const rules = policy.rules
  for (let i = 0; i < rules.length; i++) {
    const clauses = (rules[i] as CompiledRule).clauses
    let all = true
    for (let c = 0; c < clauses.length; c++) {
      if (!clauseMatches(clauses[c] as CompiledClause, facts, scratch)) {
        all = false
        break
      }
    }
    if (all) return i
  }
  return -1
}

/** Whether a decision allows the request. */
export function isAllowed(policy: CompiledPolicy, ruleIndex: number): boolean {
  return ruleIndex >= 0 && (policy.rules[ruleIndex] as CompiledRule).allow
}

/**
 * Why a request was denied, from the regions `decide` left in `scratch`: the rule that decided
 * (a deny rule) or null, and the kinds that failed in the rules that did not match. Cheap: no
 * lookups, so a flood of denials costs little more than a flood of allows.
 */
export function describeDenial(policy: CompiledPolicy, facts: ClientFacts, scratch: Uint32Array, ruleIndex: number): { decidedBy: string | null; failed: ClauseKind[] } {
  const failed: ClauseKind[] = []
  const last = ruleIndex < 0 ? policy.rules.length : ruleIndex
  for (let i = 0; i < last; i++) {
    for (const clause of (policy.rules[i] as CompiledRule).clauses) {
      if (!clauseMatches(clause, facts, scratch) && !failed.includes(clause.kind)) failed.push(clause.kind)
    }
  }
  return { decidedBy: ruleIndex < 0 ? null : (policy.rules[ruleIndex] as CompiledRule).pointer, failed }
}

export interface RegionExplanation {
  pointers: string[]
  matched: boolean
  fields: Partial<Record<Field, boolean>>
}

export interface ClauseExplanation {
  kind: ClauseKind
  pointer: string
  matched: boolean
  regions?: RegionExplanation[]
}

export interface RuleExplanation {
  pointer: string
  allow: boolean
  matched: boolean
  clauses: ClauseExplanation[]
}

export interface Explanation {
  allowed: boolean
  /** Facts the policy reads that the request made unknowable: when any, the request is denied
   * before any rule is tried. */
  unknowable: FactName[]
  /** Pointer of the rule that decided, or null when no rule matched. */
  decidedBy: string | null
  /** Kinds whose clauses failed in the rules that did not match, for logs and metrics. */
  failed: ClauseKind[]
  rules: RuleExplanation[]
}

/** Explains a decision field by field. Slower than `decide`; used for denials and the CLI. */
export function explain(policy: CompiledPolicy, facts: ClientFacts): Explanation {
  const words = policy.words
  const full = new Uint32Array(words)
  matchRegions(policy, facts, full)
  // Each field alone: the same accumulation with every other field switched off.
  const perField = FIELDS.map((_, f) => {
    const bits = new Uint32Array(words)
    matchRegions({ ...policy, used: FIELDS.map((_, g) => g === f && (policy.used[g] as boolean)) }, facts, bits)
    return bits
  })
  const bit = (bits: Uint32Array, r: number): boolean => (((bits[r >>> 5] as number) >>> (r & 31)) & 1) === 1
  const failed = new Set<ClauseKind>()
  const unknowable = factNames(facts.unknowable & policy.reads)
  let decidedBy: string | null = null
  let allowed = false
  const rules = policy.rules.map((rule) => {
    const clauses = rule.clauses.map((clause): ClauseExplanation => {
      const matched = clauseMatches(clause, facts, full)
      if (clause.kind !== 'region') return { kind: clause.kind, pointer: clause.pointer, matched }
      const regions: RegionExplanation[] = []
      for (let r = 0; r < policy.regions.length; r++) {
        if (!bit(clause.regions, r)) continue
        const region = policy.regions[r] as CompiledRegion
        const fields: Partial<Record<Field, boolean>> = {}
        for (const field of region.fields) fields[field] = bit(perField[FIELDS.indexOf(field)] as Uint32Array, r)
        regions.push({ pointers: region.pointers, matched: bit(full, r), fields })
      }
      return { kind: clause.kind, pointer: clause.pointer, matched, regions }
    })
    const matched = clauses.every((c) => c.matched)
    if (matched && decidedBy === null) {
      decidedBy = rule.pointer
      allowed = rule.allow && unknowable.length === 0
    }
    if (!matched) for (const c of clauses) if (!c.matched) failed.add(c.kind)
    return { pointer: rule.pointer, allow: rule.allow, matched, clauses }
  })
  return { allowed, decidedBy, unknowable, failed: [...failed], rules }
}
