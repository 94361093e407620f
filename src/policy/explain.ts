/**
 * A decision explained field by field, for deny lines, the CLI and `cdniAuthz.explain()`. Slower
 * than decide(): it runs the matcher once per field. Never on the allow path.
 */
import { factNames, type ClientFacts, type FactName } from '../facts/facts.js'
import { FIELDS, type CompiledPolicy, type CompiledRegion, type Field } from './compile.js'
import { clauseMatches, matchRegions } from './decide.js'
import type { ClauseKind } from './model.js'

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
