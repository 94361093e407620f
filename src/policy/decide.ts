/**
 * The decision on one request: the compiled policy (compile.ts) read against the client facts.
 *
 *   matched = AND over fields f of (bits_f[label_f(fact)] | regionsWithout_f)
 *
 * then a region clause matches when (matched & clauseRegions) != 0, and the first rule whose
 * clauses all match decides. Nothing here allocates for IPv4 or MSISDN lookups: this is the
 * request path.
 */
import type { ClientFacts } from '../facts/facts.js'
import { keyHighWord, keyLowWord } from '../facts/msisdn.js'
import { lookup1, lookup2, lookup4, type RangeTable } from '../table/range-table.js'
import {
  ASN,
  COUNTRY,
  MSISDN,
  SUBNET,
  SUBNET2,
  type CompiledClause,
  type CompiledPolicy,
  type CompiledRule,
} from './compile.js'
import type { ClauseKind } from './model.js'

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
    const offset = addressOffset(
      policy.subnet2V4.table,
      policy.subnet2V6.table,
      facts.handsetFamily,
      facts.handset,
      words,
    )
    const bits = facts.handsetFamily === 6 ? policy.subnet2V6.bits : policy.subnet2V4.bits
    accumulate(acc, bits, offset, policy.without[SUBNET2] as Uint32Array, words)
  }
  if (used[MSISDN]) {
    const without = policy.without[MSISDN] as Uint32Array
    if (facts.msisdn === null) {
      accumulate(acc, EMPTY_BITS, -1, without, words)
    } else {
      // The keys were made with the number: a table is read only when it holds a prefix.
      const international = policy.msisdnInternational.table
      const national = policy.msisdnNational.table
      const intl = international.labelSets.length > 1 ? msisdnLabel(international, facts.msisdn.key) : 0
      const nat =
        national.labelSets.length > 1 && facts.msisdn.nationalKey >= 0
          ? msisdnLabel(national, facts.msisdn.nationalKey)
          : 0
      for (let w = 0; w < words; w++) {
        const matched =
          (policy.msisdnInternational.bits[intl * words + w] as number) |
          (policy.msisdnNational.bits[nat * words + w] as number)
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
function matchLocation(
  policy: CompiledPolicy,
  countryBits: Uint32Array | undefined,
  subdivisions: readonly string[],
  acc: Uint32Array,
): void {
  const without = policy.without[COUNTRY] as Uint32Array
  for (let w = 0; w < policy.words; w++) {
    let matched = (without[w] as number) | (countryBits === undefined ? 0 : (countryBits[w] as number))
    for (const code of subdivisions) matched |= policy.country.get(code)?.[w] ?? 0
    acc[w] = (acc[w] as number) & matched
  }
}

function msisdnLabel(table: RangeTable, key: number): number {
  // The two words of splitKey, without its tuple: this runs per gateway request.
  const high = keyHighWord(key)
  return lookup2(table, high, keyLowWord(key, high))
}

export function clauseMatches(clause: CompiledClause, facts: ClientFacts, regions: Uint32Array): boolean {
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
export function describeDenial(
  policy: CompiledPolicy,
  facts: ClientFacts,
  scratch: Uint32Array,
  ruleIndex: number,
): { decidedBy: string | null; failed: ClauseKind[] } {
  const failed: ClauseKind[] = []
  const last = ruleIndex < 0 ? policy.rules.length : ruleIndex
  for (let i = 0; i < last; i++) {
    for (const clause of (policy.rules[i] as CompiledRule).clauses) {
      if (!clauseMatches(clause, facts, scratch) && !failed.includes(clause.kind)) failed.push(clause.kind)
    }
  }
  return { decidedBy: ruleIndex < 0 ? null : (policy.rules[ruleIndex] as CompiledRule).pointer, failed }
}
