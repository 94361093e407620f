/**
 * Everything a push needs before the swap, as one pure function: parse the JSON text, validate,
 * compile, and fingerprint the document. It runs in a worker thread for pushes (so a
 * million-prefix document never stalls content traffic) and directly in tests and the CLI.
 */
import { createHash } from 'node:crypto'
import { compilePolicy } from '../policy/compile.js'
import { DEFAULT_LOAD_CONTEXT, type LoadContext, type LoadResult, type ValidationReport } from './translate.js'
import { loadPolicyModel } from './delivery-criteria.js'
import { parseMetadataText } from './parse-text.js'
import type { Problem } from '../policy/model.js'
import { isHostIndex, loadSiteModel, type SiteLoadResult } from './rfc8006.js'
import { compileCatchAll, compileSite, type CompiledSite } from '../policy/site.js'

/** Either format, compiled to one shape: the seed's criteria as a site with one catch-all node,
 * RFC 8006 as a site of hosts. Nothing downstream asks which format it was. */
export type CompiledMetadata = CompiledSite

export type Compilation =
  { ok: true; compiled: CompiledMetadata; warnings: Problem[] } | { ok: false; errors: Problem[]; warnings: Problem[] }

/** Either format's loader, told apart by shape: RFC 8006 has `hosts`. */
function loadMetadata(doc: unknown, context: LoadContext): LoadResult | SiteLoadResult {
  return isHostIndex(doc) ? loadSiteModel(doc, context) : loadPolicyModel(doc, context)
}

/** A loaded document's compiled form. */
function compileLoaded(loaded: Extract<LoadResult | SiteLoadResult, { ok: true }>): CompiledMetadata {
  return 'site' in loaded ? compileSite(loaded.site) : compileCatchAll(compilePolicy(loaded.model))
}

/** One entry point for both formats: validated and compiled. */
export function compileMetadata(doc: unknown, context: LoadContext): Compilation {
  const loaded = loadMetadata(doc, context)
  if (!loaded.ok) return loaded
  return { ok: true, compiled: compileLoaded(loaded), warnings: loaded.warnings }
}

export interface PreparedPolicy {
  ok: true
  compiled: CompiledMetadata
  warnings: Problem[]
  /** Strong ETag of the document bytes: `"sha256-<base64url>"`. */
  etag: string
  /** Time spent validating and compiling, in milliseconds. */
  compileMs: number
}

export interface RefusedPolicy {
  ok: false
  errors: Problem[]
  warnings: Problem[]
}

export function etagOf(text: string): string {
  return `"sha256-${createHash('sha256').update(text).digest('base64url')}"`
}

/** Validates a parsed metadata document of either format; compiles nothing. */
export function validateMetadata(doc: unknown, context: Partial<LoadContext> = {}): ValidationReport {
  const result = loadMetadata(doc, { ...DEFAULT_LOAD_CONTEXT, ...context })
  return { ok: result.ok, errors: result.errors, warnings: result.warnings }
}

/**
 * The document's text parsed and loaded into its model. A function of its own so that the parsed
 * document (for 1,200,000 prefixes, 1.2 million strings and 49 MB of heap) is unreachable once it
 * returns: the model holds none of it, and the compile that follows allocates enough buffers for
 * V8 to run two or three full collections, each of which would otherwise mark the whole document
 * again.
 */
function loadText(text: string, context: LoadContext): LoadResult | SiteLoadResult | RefusedPolicy {
  const parsed = parseMetadataText(text)
  if (!parsed.ok) return { ok: false, errors: [parsed.error], warnings: [] }
  return loadMetadata(parsed.value, context)
}

export function preparePolicy(text: string, context: LoadContext): PreparedPolicy | RefusedPolicy {
  const started = performance.now()
  const loaded = loadText(text, context)
  if (!loaded.ok) return { ok: false, errors: loaded.errors, warnings: loaded.warnings }
  return {
    ok: true,
    compiled: compileLoaded(loaded),
    warnings: loaded.warnings,
    etag: etagOf(text),
    compileMs: performance.now() - started,
  }
}

/** The buffers of a compiled policy, to transfer (not copy) across a worker boundary. */
export function transferList(compiled: CompiledMetadata): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const policy of compiled.policies) {
    for (const field of [
      policy.subnetV4,
      policy.subnetV6,
      policy.subnet2V4,
      policy.subnet2V6,
      policy.msisdnNational,
      policy.msisdnInternational,
    ]) {
      buffers.add(field.table.nodes.buffer as ArrayBuffer)
      buffers.add(field.table.leaves.buffer as ArrayBuffer)
      buffers.add(field.bits.buffer as ArrayBuffer)
    }
  }
  return [...buffers]
}
