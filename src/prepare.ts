/**
 * Everything a push needs before the swap, as one pure function: parse the JSON text, validate,
 * compile, and fingerprint the document. It runs in a worker thread for pushes (so a
 * million-prefix document never stalls content traffic) and directly in tests and the CLI.
 */
import { createHash } from 'node:crypto'
import { compilePolicy, type CompiledPolicy } from './compile.js'
import { loadPolicyModel, parseMetadataText, type LoadContext } from './metadata.js'
import type { Problem } from './model.js'

export interface PreparedPolicy {
  ok: true
  compiled: CompiledPolicy
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

export function preparePolicy(text: string, context: LoadContext): PreparedPolicy | RefusedPolicy {
  const started = performance.now()
  const parsed = parseMetadataText(text)
  if (!parsed.ok) return { ok: false, errors: [parsed.error], warnings: [] }
  const loaded = loadPolicyModel(parsed.value, context)
  if (!loaded.ok) return { ok: false, errors: loaded.errors, warnings: loaded.warnings }
  const compiled = compilePolicy(loaded.model)
  return { ok: true, compiled, warnings: loaded.warnings, etag: etagOf(text), compileMs: performance.now() - started }
}

/** The buffers of a compiled policy, to transfer (not copy) across a worker boundary. */
export function transferList(compiled: CompiledPolicy): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const field of [compiled.subnetV4, compiled.subnetV6, compiled.subnet2V4, compiled.subnet2V6, compiled.msisdnNational, compiled.msisdnInternational]) {
    buffers.add(field.table.entries.buffer as ArrayBuffer)
    buffers.add(field.table.index.buffer as ArrayBuffer)
    buffers.add(field.bits.buffer as ArrayBuffer)
  }
  return [...buffers]
}
