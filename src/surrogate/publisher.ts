/**
 * The one way a document becomes the live policy, whoever sent it (a push, or a followed source):
 * serialized with every other change, prepared in the worker thread, checked against what the
 * surrogate's content can follow, stored durably, and only then swapped in. Any failure before
 * the swap leaves the live policy as it was.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { CdniAuthz, UpdateResult } from '../plugin/plugin.js'
import type { StateStore } from './state.js'
import { MetadataRefusedError, StorageUnavailableError } from '../errors.js'
import type { CompiledMetadata, PreparedPolicy } from '../load/prepare.js'
import { namesHosts } from '../policy/site.js'
import type { Problem } from '../policy/model.js'

/** The document currently enforced, as it was received. */
export interface LiveDocument {
  text: string
  etag: string
  compileSeconds: number
}

export interface PublishOptions {
  /** Sent as `application/cdni; ptype=MI.HostIndex`: the document must name hosts. */
  hostIndex?: boolean
  /** Runs first, in the queue, against the document live then: throws to refuse (If-Match). */
  check?: (live: LiveDocument | null) => void
}

/**
 * The second process-wide step of a switch, for a surrogate whose content is served by other
 * processes (cluster.ts): `prepare` has every one of them load the policy, `commit` switches them.
 */
export interface FanOut {
  /**
   * Has every serving process load and verify `prepared` (to be live as `version`), switching none.
   * Rejects, with every process left as it was, if one cannot.
   */
  prepare(prepared: PreparedPolicy, version: number): Promise<PreparedSwitch>
}

export interface PreparedSwitch {
  /** Switches every process that prepared; resolves once each has (one that cannot is replaced). */
  commit(): Promise<void>
  /** Drops what was prepared: nothing switches. */
  abort(): Promise<void>
}

export interface Published extends UpdateResult {
  etag: string
}

export class Publisher {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly authz: CdniAuthz,
    private readonly store: StateStore,
    private readonly log: FastifyBaseLogger,
    /** The document enforced now, or null. */
    public live: LiveDocument | null,
    /** Why a valid document cannot be served here (the surrogate's content would not follow it), or null. */
    private readonly refuse: (compiled: CompiledMetadata) => Problem | null,
    /** The other processes that serve the policy, when there are some (`--workers`). */
    private readonly fanOut: FanOut | null = null,
  ) {}

  /** Runs `task` after every change queued before it, so each sees the document the last one left. */
  serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task)
    this.queue = run.catch(() => undefined)
    return run
  }

  /**
   * Makes `text` the live policy, or throws MetadataRefusedError (invalid, or not servable here)
   * or StorageUnavailableError (not stored, so not acknowledged), the live policy unchanged.
   */
  publish(text: string, options: PublishOptions = {}): Promise<Published> {
    return this.serialized(async () => {
      options.check?.(this.live)
      const { authz } = this
      const prepared = await authz.prepare(text)
      if (!prepared.ok) throw new MetadataRefusedError(prepared.errors, prepared.warnings)
      if (options.hostIndex === true && !namesHosts(prepared.compiled)) {
        throw new MetadataRefusedError(
          [
            {
              pointer: '',
              message: 'sent as ptype=MI.HostIndex, but the document is no HostIndex (it has no "hosts")',
            },
          ],
          [],
        )
      }
      const refusal = this.refuse(prepared.compiled)
      if (refusal !== null) throw new MetadataRefusedError([refusal], prepared.warnings)
      const version = authz.version + 1
      // Every worker loads the policy before the document is stored: a worker that cannot refuses
      // the push with nothing changed anywhere, on disk included, and nothing is rolled back. Once
      // the document is stored the switch goes ahead; a worker that then fails to switch is
      // replaced, and its replacement loads the stored policy before it serves.
      const switching = await this.fanOut?.prepare(prepared, version)
      try {
        await this.store.write(text, version)
      } catch (err) {
        await switching?.abort()
        this.log.error({ err }, 'cdni-authz: could not store accepted metadata')
        // fs errors always carry a code; the path stays out of the response.
        throw new StorageUnavailableError((err as NodeJS.ErrnoException).code as string, { cause: err })
      }
      const result = authz.commit(prepared, version)
      this.live = { text, etag: prepared.etag, compileSeconds: prepared.compileMs / 1000 }
      await switching?.commit()
      this.log.info(
        { cdniAuthz: { version, etag: prepared.etag, summary: result.summary, warnings: result.warnings.length } },
        'cdni-authz: metadata accepted',
      )
      return { ...result, etag: prepared.etag }
    })
  }
}
