/**
 * Compiled metadata as the request path sees it, whatever its format: a site, which selects the
 * node governing a request, whose ACLs then decide. The delivery-criteria formats compile to a
 * site with one catch-all node (every request, one policy); RFC 8006 to a site of hosts and
 * paths. So the plugin has one enforcement path: select, decide, one deny line.
 *
 * RFC 8006 selection: hosts are a Map (exact, after normalizeHost); paths are tried in order at
 * each level, the first match descending into its own paths, the deepest match winning (its ACLs
 * already carry what it inherited). No HostMatch for the request's host is a denial.
 *
 * Inherited ACLs are the same model objects as their parent's, so each is compiled once however
 * many paths inherit it. Only compiled data is kept: this crosses the worker boundary.
 */
import { FACT_SOURCE, factNames, type ClientFacts } from '../facts/facts.js'
import { compilePolicy, type CompiledPolicy, type PolicySummary } from './compile.js'
import { explain, type Explanation } from './explain.js'
import { decide, isAllowed } from './decide.js'
import type { AclSet, PathNode, PolicyModel, SiteModel, Unenforceable } from './model.js'
import { compilePattern, compilePatternList, firstMatch, type PatternList } from './path-pattern.js'
import { canonicalPath, normalizeHost } from './request-target.js'

/** A node's ACLs compiled: every policy must allow, and nothing unenforceable may be in force. */
export interface CompiledAcls {
  /** Pointer of the HostMatch or PathMatch these ACLs belong to. */
  pointer: string
  policies: CompiledPolicy[]
  unenforceable: Unenforceable[]
}

/** The PathMatch objects of one level: their patterns in one list, and what each selects. */
interface CompiledLevel {
  patterns: PatternList
  nodes: { acls: CompiledAcls; paths: CompiledLevel }[]
}

export interface CompiledSite {
  hosts: Map<string, { acls: CompiledAcls; paths: CompiledLevel }>
  /** The node of every request when the metadata names no hosts (the delivery-criteria
   * formats); null for RFC 8006, whose requests are selected by host and path. */
  catchAll: CompiledAcls | null
  /** Every distinct compiled policy, once. */
  policies: CompiledPolicy[]
  /** Scratch words the largest policy needs. */
  words: number
  usesTime: boolean
  /** FACT_* bits any of its policies reads (see CompiledPolicy.reads). */
  reads: number
  summary: PolicySummary
}

export function compileSite(site: SiteModel): CompiledSite {
  const compiled = new Map<PolicyModel, CompiledPolicy>()
  const acls = (pointer: string, set: AclSet): CompiledAcls => ({
    pointer,
    policies: [set.location, set.time, set.protocol]
      .filter((model) => model !== null)
      .map((model) => {
        let policy = compiled.get(model)
        if (policy === undefined) compiled.set(model, (policy = compilePolicy(model)))
        return policy
      }),
    unenforceable: set.unenforceable,
  })
  const paths = (nodes: PathNode[]): CompiledLevel => ({
    patterns: compilePatternList(nodes.map((node) => compilePattern(node.pattern, node.caseSensitive))),
    nodes: nodes.map((node) => ({ acls: acls(node.pointer, node.acls), paths: paths(node.paths) })),
  })
  const hosts = new Map(
    site.hosts.map((node) => [node.host, { acls: acls(node.pointer, node.acls), paths: paths(node.paths) }]),
  )
  const policies = [...compiled.values()]
  const summary: PolicySummary = {
    hosts: site.hosts.length,
    rules: 0,
    regions: 0,
    ipv4Prefixes: 0,
    ipv6Prefixes: 0,
    msisdnPrefixes: 0,
    intervals: 0,
  }
  for (const policy of policies) {
    for (const key of ['rules', 'regions', 'ipv4Prefixes', 'ipv6Prefixes', 'msisdnPrefixes', 'intervals'] as const) {
      summary[key] += policy.summary[key]
    }
  }
  return {
    hosts,
    catchAll: null,
    policies,
    words: Math.max(1, ...policies.map((policy) => policy.words)),
    usesTime: policies.some((policy) => policy.usesTime),
    reads: policies.reduce((reads, policy) => reads | policy.reads, FACT_SOURCE),
    summary,
  }
}

/** One policy for every request (the delivery-criteria formats): a site of one catch-all node,
 * whose pointer is the document's. */
export function compileCatchAll(policy: CompiledPolicy): CompiledSite {
  const catchAll: CompiledAcls = { pointer: '', policies: [policy], unenforceable: [] }
  return {
    hosts: new Map(),
    catchAll,
    policies: [policy],
    words: policy.words,
    usesTime: policy.usesTime,
    reads: policy.reads,
    summary: policy.summary,
  }
}

/** Whether the metadata named hosts (RFC 8006), rather than one policy for every request. */
export const namesHosts = (site: CompiledSite): boolean => site.catchAll === null

/**
 * The ACLs for a request's Host header and URL as sent, or null: no HostMatch for the host, or a
 * request-target refused by canonicalPath (request-target.ts), which also cuts query and fragment.
 * A catch-all node governs every request.
 */
export function selectNode(site: CompiledSite, hostHeader: string | undefined, url: string): CompiledAcls | null {
  if (site.catchAll !== null) return site.catchAll
  const host = hostHeader === undefined ? null : normalizeHost(hostHeader)
  const entry = host === null ? undefined : site.hosts.get(host)
  if (entry === undefined) return null
  const path = canonicalPath(url, hostHeader)
  if (path === null) return null
  let selected = entry.acls
  let level = entry.paths
  for (;;) {
    const match = level.nodes[firstMatch(level.patterns, path)]
    if (match === undefined) return selected
    selected = match.acls
    level = match.paths
  }
}

/** An ACL in force that denies a request, and the rule that decided (-1: no rule matched). */
export interface Denial {
  policy: CompiledPolicy
  rule: number
}

/** The first enforceable ACL that denies, or null when every one allows (unenforceable aside). */
export function firstDenial(acls: CompiledAcls, facts: ClientFacts, scratch: Uint32Array): Denial | null {
  for (const policy of acls.policies) {
    const rule = decide(policy, facts, scratch)
    if (!isAllowed(policy, rule)) return { policy, rule }
  }
  return null
}

/** The logical AND of RFC 8006 section 4.2.2 over the ACL kinds in force. */
export function aclsAllow(acls: CompiledAcls, facts: ClientFacts, scratch: Uint32Array): boolean {
  return acls.unenforceable.length === 0 && firstDenial(acls, facts, scratch) === null
}

export interface SiteExplanation extends Explanation {
  /** Pointer of the HostMatch or PathMatch that governs the request, or null when no host matched. */
  selected: string | null
  /** Set when the metadata governing the request is stale (a followed source that cannot be
   * revalidated): the request is denied whatever its rules say. */
  stale?: true
}

/** Explains a decision on a site: which node, then each ACL in force, rule by rule. */
export function explainSite(
  site: CompiledSite,
  hostHeader: string | undefined,
  url: string,
  facts: ClientFacts,
): SiteExplanation {
  const unknowable = factNames(facts.unknowable & site.reads)
  const acls = selectNode(site, hostHeader, url)
  if (acls === null) return { selected: null, allowed: false, decidedBy: null, unknowable, failed: [], rules: [] }
  const blocked = acls.unenforceable[0]
  if (blocked !== undefined) {
    return { selected: acls.pointer, allowed: false, decidedBy: blocked.pointer, unknowable, failed: [], rules: [] }
  }
  const parts = acls.policies.map((policy) => explain(policy, facts))
  const denying = parts.find((part) => !part.allowed)
  return {
    selected: acls.pointer,
    allowed: denying === undefined && unknowable.length === 0,
    unknowable,
    // Allowed: the catch-all's one policy names the rule that allowed; a selected node names
    // itself, its ACLs having allowed together.
    decidedBy:
      denying !== undefined
        ? denying.decidedBy
        : acls === site.catchAll
          ? (parts[0] as Explanation).decidedBy
          : acls.pointer,
    failed: [...new Set(parts.flatMap((part) => part.failed))],
    rules: parts.flatMap((part) => part.rules),
  }
}
