/**
 * The state directory: the last accepted metadata document, kept so a restart serves what was
 * acknowledged.
 *
 * Two files. `metadata.json` is the document exactly as the uCDN pushed it; its rename is the one
 * commit point. `state.json` records the version and the SHA-256 of the document it was written
 * for, and is made durable *before* the document, so on disk it is either about the document
 * beside it or about the one push after it whose document never landed (a crash or a full disk
 * between the two). A reader tells the two apart by the digest. Every file is written whole to a
 * temporary name, synced, renamed and its directory synced, so a crash leaves the old file or the
 * new one, never a torn one; temporaries a crash left behind are removed at the next start. The
 * state directory (and any missing parent) is created with its entry synced in its own parent, so
 * the first push does not vanish with the directory that holds it.
 */
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'

export const DOCUMENT_FILE = 'metadata.json'
export const STATE_FILE = 'state.json'
/** The compiled policy of the document beside it (src/snapshot/policy-snapshot.ts). */
export const SNAPSHOT_FILE = 'metadata.snapshot'
/**
 * With `--workers`, the snapshot of a document the workers are loading, not yet stored: renamed
 * to SNAPSHOT_FILE once the document is (src/surrogate/cluster.ts). One left by a crash is of a
 * document never acknowledged, and is removed at the next start.
 */
export const STAGED_SNAPSHOT_FILE = 'metadata.next.snapshot'

export class StateError extends Error {
  override name = 'StateError'
}

export interface StoredState {
  text: string
  version: number
}

let sequence = 0
const TEMPORARY =
  /^(\.(metadata\.json|state\.json|metadata\.snapshot|metadata\.next\.snapshot)\.\d+\.\d+\.tmp|metadata\.next\.snapshot)$/

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Creates `dir` and any missing parents. A directory's entry lives in its parent, which syncing the
 * directory (or a file in it) does not make durable: every parent that gained an entry is synced.
 */
async function makeDirectory(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true })
  if (first === undefined) return
  // mkdir made `first` and each directory below it down to `dir`; their parents, deepest first.
  // Stopping at the root as well covers a path that reaches `dir` through `..`, where `first` is
  // not on the way up: syncing more parents than changed is only slower.
  const top = resolve(first)
  let made = resolve(dir)
  let parent = dirname(made)
  await syncDirectory(parent)
  while (made !== top && dirname(parent) !== parent) {
    made = parent
    parent = dirname(made)
    await syncDirectory(parent)
  }
}

/** Writes `name` whole or not at all; a failure (a full disk, say) leaves no temporary behind. */
export async function writeAtomically(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  const temporary = join(dir, `.${name}.${process.pid}.${++sequence}.tmp`)
  try {
    const file = await open(temporary, 'w', 0o600)
    try {
      await file.writeFile(data)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temporary, join(dir, name))
  } catch (err) {
    await rm(temporary, { force: true })
    throw err
  }
  await syncDirectory(dir)
}

function storedVersion(text: string, stateText: string | null): number {
  if (stateText === null) return 1
  let state: { version?: unknown; sha256?: unknown }
  try {
    state = JSON.parse(stateText) as typeof state
  } catch {
    return 1 // The version is informational; a damaged state.json restarts the count.
  }
  if (typeof state.version !== 'number' || !Number.isSafeInteger(state.version) || state.version < 1) return 1
  // A record about another document is about the push after this one, which never committed.
  return state.sha256 === undefined || state.sha256 === sha256(text) ? state.version : Math.max(1, state.version - 1)
}

export class StateStore {
  constructor(readonly dir: string) {}

  /**
   * The stored document, or null when there is none yet. Unreadable state is a StateError.
   * Called once at start: it also clears temporaries left by a writer that was killed.
   */
  async read(): Promise<StoredState | null> {
    await this.clearTemporaries()
    let text: string
    try {
      text = await readFile(join(this.dir, DOCUMENT_FILE), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new StateError(`cannot read ${join(this.dir, DOCUMENT_FILE)}: ${(err as Error).message}`)
    }
    const stateText = await readFile(join(this.dir, STATE_FILE), 'utf8').catch(() => null)
    return { text, version: storedVersion(text, stateText) }
  }

  private async clearTemporaries(): Promise<void> {
    // No directory yet means nothing to clear; anything worse is reported by the read that follows.
    const names = await readdir(this.dir).catch(() => [])
    for (const name of names) {
      if (TEMPORARY.test(name)) await rm(join(this.dir, name), { force: true })
    }
  }

  /** Stores a document durably before it is acknowledged; throws (changing nothing read back) if it cannot. */
  async write(text: string, version: number): Promise<void> {
    await makeDirectory(this.dir)
    await writeAtomically(
      this.dir,
      STATE_FILE,
      JSON.stringify({ version, sha256: sha256(text), storedAt: new Date().toISOString() }),
    )
    await writeAtomically(this.dir, DOCUMENT_FILE, text)
  }
}
