/**
 * Policy model → compiled policy (docs/ARCHITECTURE.md). decide.ts reads what this builds.
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
import { msisdnPrefixRange } from '../facts/msisdn.js'
import type { ClauseModel, MsisdnPrefixes, PolicyModel, PrefixList, RegionModel, TimeWindow } from './model.js'
import { RangeTableBuilder, type RangeTable } from '../table/range-table.js'
import { FACT_HANDSET, FACT_MSISDN, FACT_PROTOCOL, FACT_SOURCE, PROTOCOL_HTTP, PROTOCOL_HTTPS } from '../facts/facts.js'

/** Region fields in evaluation order. */
export const FIELDS = ['subnet', 'subnet2', 'msisdn', 'country', 'asn'] as const
export type Field = (typeof FIELDS)[number]
export const SUBNET = 0
export const SUBNET2 = 1
export const MSISDN = 2
export const COUNTRY = 3
export const ASN = 4

/** A region table answering one field for one key kind, with its labels as region bitsets. */
export interface FieldTable {
  table: RangeTable
  /** labels × W words: bit r set when region r's field contains every key with that label. */
  bits: Uint32Array
}

export type CompiledClause =
  | { kind: 'region'; pointer: string; regions: Uint32Array }
  | { kind: 'protocol'; pointer: string; protocols: number }
  | { kind: 'timeWindow'; pointer: string; windows: readonly TimeWindow[] }

export interface CompiledRule {
  pointer: string
  allow: boolean
  clauses: CompiledClause[]
}

/** A compiled region, for explanations. */
export interface CompiledRegion {
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
    msisdn: region.msisdn && {
      national: region.msisdn.national.slice(),
      international: region.msisdn.international.slice(),
    },
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
  const summary: PolicySummary = {
    rules: model.rules.length,
    regions: regions.length,
    ipv4Prefixes: 0,
    ipv6Prefixes: 0,
    msisdnPrefixes: 0,
    intervals: 0,
  }

  // Each table's size known up front, its builder never regrows.
  const sizes = [0, 0, 0, 0]
  for (const region of regionModels) {
    ;[region.subnet, region.subnet2].forEach((list, which) => {
      sizes[which] = (sizes[which] as number) + (list?.v4Count ?? 0)
      sizes[2 + which] = (sizes[2 + which] as number) + (list?.v6Count ?? 0)
    })
  }
  ;[...v4, ...v6].forEach((builder, i) => builder.reserve(sizes[i] as number))
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
      for (const [digitsList, builder] of [
        [region.msisdn.national, national],
        [region.msisdn.international, international],
      ] as const) {
        for (const digits of digitsList) {
          const { start, last } = msisdnPrefixRange(digits)
          builder.add(start, last, digits.length, r)
        }
        summary.msisdnPrefixes += digitsList.length
      }
    }
    for (const [values, map] of [
      [region.country, country],
      [region.asn, asn],
    ] as const) {
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
    // eslint-disable-next-line array-callback-return -- the switch returns for every ClauseKind, as TypeScript checks
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
            protocols:
              (clause.protocols.includes('http') ? PROTOCOL_HTTP : 0) |
              (clause.protocols.includes('https') ? PROTOCOL_HTTPS : 0),
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
  const reads =
    FACT_SOURCE |
    (used[SUBNET2] ? FACT_HANDSET : 0) |
    (used[MSISDN] ? FACT_MSISDN : 0) |
    (rules.some((rule) => rule.clauses.some((clause) => clause.kind === 'protocol')) ? FACT_PROTOCOL : 0)
  return { words, used, without, all, ...tables, country, asn, rules, regions, summary, usesTime, reads }
}
