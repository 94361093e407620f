/**
 * Host and path selection for RFC 8006 metadata: which node of the site model governs a request.
 * Hosts are a Map (exact, after normalizeHost); paths are tried in order at each level, the first
 * match descending into its own paths, the deepest match winning (its ACLs already carry what it
 * inherited). No HostMatch for the request's host is no node: the caller denies.
 */
import type { ClientFacts } from './client-facts.js'
import { compilePolicy, decide, isAllowed, type CompiledPolicy } from './compile.js'
import type { AclSet, HostNode, PathNode, SiteModel, Unenforceable } from './model.js'
import { compilePattern, matchPattern, type PathPattern } from './path-pattern.js'
import { normalizeHost } from './rfc8006.js'

interface IndexedPath {
  node: PathNode
  pattern: PathPattern
  paths: IndexedPath[]
}

export interface SiteIndex {
  hosts: Map<string, { node: HostNode; paths: IndexedPath[] }>
}

export interface Selection {
  /** Pointer of the HostMatch or PathMatch that governs the request. */
  pointer: string
  acls: AclSet
}

function indexPaths(paths: PathNode[]): IndexedPath[] {
  return paths.map((node) => ({ node, pattern: compilePattern(node.pattern, node.caseSensitive), paths: indexPaths(node.paths) }))
}

export function indexSite(site: SiteModel): SiteIndex {
  return { hosts: new Map(site.hosts.map((node) => [node.host, { node, paths: indexPaths(node.paths) }])) }
}

/** The node for a request's Host header and raw path (query and fragment are cut here), or null. */
export function selectNode(index: SiteIndex, hostHeader: string | undefined, rawPath: string): Selection | null {
  const host = hostHeader === undefined ? null : normalizeHost(hostHeader)
  const entry = host === null ? undefined : index.hosts.get(host)
  if (entry === undefined) return null
  const end = rawPath.search(/[?#]/)
  const path = end < 0 ? rawPath : rawPath.slice(0, end)
  let selected: Selection = { pointer: entry.node.pointer, acls: entry.node.acls }
  let level = entry.paths
  for (;;) {
    const match = level.find((candidate) => matchPattern(candidate.pattern, path))
    if (match === undefined) return selected
    selected = { pointer: match.node.pointer, acls: match.node.acls }
    level = match.paths
  }
}

/** A node's ACLs compiled: every policy must allow, and nothing unenforceable may be in force. */
export interface CompiledAcls {
  policies: CompiledPolicy[]
  unenforceable: Unenforceable[]
  /** Scratch words the largest policy needs. */
  words: number
}

export function compileAcls(acls: AclSet): CompiledAcls {
  const policies = [acls.location, acls.time, acls.protocol].filter((model) => model !== null).map(compilePolicy)
  return { policies, unenforceable: acls.unenforceable, words: Math.max(1, ...policies.map((policy) => policy.words)) }
}

/** The logical AND of RFC 8006 section 4.2.2 over the ACL kinds in force. */
export function aclsAllow(compiled: CompiledAcls, facts: ClientFacts, scratch: Uint32Array): boolean {
  if (compiled.unenforceable.length > 0) return false
  for (const policy of compiled.policies) if (!isAllowed(policy, decide(policy, facts, scratch))) return false
  return true
}
