/**
 * The state directory: the last accepted metadata document, kept so a restart serves what was
 * acknowledged. Writes are atomic (temporary file, fsync, rename, fsync of the directory), so a
 * crash leaves either the old document or the new one, never a torn one.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'

export const DOCUMENT_FILE = 'metadata.json'
export const STATE_FILE = 'state.json'

export class StateError extends Error {
  override name = 'StateError'
}

export interface StoredState {
  text: string
  version: number
}

let sequence = 0

async function writeAtomically(dir: string, name: string, data: string): Promise<void> {
  const temporary = join(dir, `.${name}.${process.pid}.${++sequence}.tmp`)
  const file = await open(temporary, 'w', 0o600)
  try {
    await file.writeFile(data)
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    await rename(temporary, join(dir, name))
  } catch (err) {
    await rm(temporary, { force: true })
    throw err
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export class StateStore {
  constructor(readonly dir: string) {}

  /** The stored document, or null when there is none yet. Unreadable state is a StateError. */
  async read(): Promise<StoredState | null> {
    let text: string
    try {
      text = await readFile(join(this.dir, DOCUMENT_FILE), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new StateError(`cannot read ${join(this.dir, DOCUMENT_FILE)}: ${(err as Error).message}`)
    }
    let version = 1
    try {
      const state = JSON.parse(await readFile(join(this.dir, STATE_FILE), 'utf8')) as { version?: unknown }
      if (typeof state.version === 'number' && Number.isSafeInteger(state.version) && state.version > 0) version = state.version
    } catch {
      // The version is informational; a missing or damaged state.json restarts the count.
    }
    return { text, version }
  }

  /** Stores a document durably before it is acknowledged. */
  async write(text: string, version: number): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await writeAtomically(this.dir, DOCUMENT_FILE, text)
    await writeAtomically(this.dir, STATE_FILE, JSON.stringify({ version, storedAt: new Date().toISOString() }))
    await syncDirectory(this.dir)
  }
}
