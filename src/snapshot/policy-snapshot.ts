/**
 * A compiled policy as a snapshot file (format.ts), so that a worker or a restart serves the
 * document without parsing or compiling it again. A snapshot is used only for the document it was
 * compiled from (the SHA-256 of its text, the one the ETag carries), by the very build that reads
 * it (the fingerprint below), under the same load context (which decides what counts as
 * unenforceable). Anything else is a SnapshotError, and the caller compiles
 * the document as if there were no snapshot: a snapshot is a shortcut, never a source of policy.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SnapshotError } from '../errors.js'
import { etagOf } from '../load/prepare.js'
import type { LoadContext } from '../load/translate.js'
import type { CompiledSite } from '../policy/site.js'
import { writeAtomically } from '../surrogate/state.js'
import { decodeSnapshot, encodeSnapshot } from './format.js'

/** What a snapshot was written for, besides the compiled site. */
export interface PolicySnapshotIdentity {
  /** The document's strong ETag, `"sha256-<base64url>"` (PreparedPolicy.etag). */
  etag: string
  /** The load context the site was compiled under. */
  context: LoadContext
}

export interface PolicySnapshot {
  site: CompiledSite
  version: number
  etag: string
}

const ETAG = /^"sha256-([A-Za-z0-9_-]{43})"$/

/** The 32 bytes of the digest an ETag carries. */
function documentDigest(etag: string): Uint8Array {
  const match = ETAG.exec(etag)
  if (match === null) throw new TypeError(`${JSON.stringify(etag)} is not a document ETag ("sha256-<base64url>")`)
  return Buffer.from(match[1] as string, 'base64url')
}

/** The context as one string, its keys sorted: two contexts compile alike when these are equal. */
const contextKey = (context: LoadContext): string => JSON.stringify(context, Object.keys(context).sort())

let fingerprint: Uint8Array | null = null

/**
 * What identifies the code that compiled a snapshot: the SHA-256 of every module of this package
 * (the .js files of dist/, or the .ts sources under the test loader), by path and content. Another
 * build, one whose range tables are laid out anew or whose loader reads a pattern otherwise,
 * refuses the snapshots of this one and compiles the document; this one reads them without a
 * parse or a compile. Read once per process: a few hundred kilobytes.
 */
export function buildFingerprint(): Uint8Array {
  if (fingerprint !== null) return fingerprint
  const here = fileURLToPath(import.meta.url)
  const root = dirname(dirname(here))
  const extension = extname(here)
  const modules = readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith(extension) && !name.includes('node_modules'))
    .sort()
  const hash = createHash('sha256')
  for (const name of modules) {
    hash
      .update(`${name}\0`)
      .update(readFileSync(join(root, name)))
      .update('\0')
  }
  fingerprint = hash.digest()
  return fingerprint
}

/** The snapshot of a compiled site: the file's bytes. */
export function encodePolicySnapshot(
  site: CompiledSite,
  version: number,
  identity: PolicySnapshotIdentity,
): Uint8Array {
  return encodeSnapshot(
    { context: contextKey(identity.context), site },
    { version, document: documentDigest(identity.etag), build: buildFingerprint() },
  )
}

/**
 * The compiled site in a snapshot's bytes, if they are a whole snapshot of that document, by this
 * build, under that context; else a SnapshotError saying which of these it is not.
 */
export function decodePolicySnapshot(file: Uint8Array, identity: PolicySnapshotIdentity): PolicySnapshot {
  const decoded = decodeSnapshot(file, { document: documentDigest(identity.etag), build: buildFingerprint() })
  const root = decoded.value as { context: string; site: CompiledSite }
  if (root.context !== contextKey(identity.context)) {
    throw new SnapshotError('context', `compiled under ${root.context}, not ${contextKey(identity.context)}`)
  }
  return { site: root.site, version: decoded.version, etag: identity.etag }
}

/**
 * Writes a site's snapshot to `path` atomically (a temporary beside it, synced, renamed, the
 * directory synced, as the state directory's documents are). Returns its size in bytes.
 */
export async function writePolicySnapshot(
  path: string,
  site: CompiledSite,
  version: number,
  identity: PolicySnapshotIdentity,
): Promise<number> {
  const bytes = encodePolicySnapshot(site, version, identity)
  await writeAtomically(dirname(path), basename(path), bytes)
  return bytes.length
}

/**
 * The whole file in a buffer of its own (whose memory the site's typed arrays then view), never a
 * slice of Node's shared pool, which a small file's readFile may return.
 */
async function readWhole(path: string): Promise<Uint8Array> {
  try {
    const handle = await open(path, 'r')
    try {
      const { size } = await handle.stat()
      // Not zero-filled first: on a large file that doubled the load (every page touched twice).
      const bytes = Buffer.allocUnsafeSlow(size)
      // A short read (a file cut while read) leaves a truncated snapshot, which is refused.
      const { bytesRead } = await handle.read(bytes, 0, size, 0)
      return bytes.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  } catch (err) {
    throw new SnapshotError('unreadable', `cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Reads the snapshot at `path` for the document `document` (its text, or its ETag when the
 * caller already has it): the site to serve, or a SnapshotError (a missing file included).
 */
export async function readPolicySnapshot(
  path: string,
  document: string | { etag: string },
  context: LoadContext,
): Promise<PolicySnapshot> {
  const etag = typeof document === 'string' ? etagOf(document) : document.etag
  return decodePolicySnapshot(await readWhole(path), { etag, context })
}
