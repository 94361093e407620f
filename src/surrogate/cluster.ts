/**
 * `--workers N`: the content served by N processes (node:cluster), one policy for all of them.
 * This process, the primary, keeps the control plane: the push API, the follower, the compile
 * worker thread, the state directory and the metrics. The workers (cluster-worker.ts) serve
 * content only, and never compile: they load the snapshot the primary writes (docs/ARCHITECTURE.md,
 * "Workers").
 *
 * A change is switched in two phases, as Envoy's runOnAllThreads or HAProxy's prepare/commit map:
 * every worker loads and verifies the new snapshot and says so ("prepared"); only when all have
 * does each switch (one assignment), and the push is answered once all have switched. A worker is
 * admitted (given the committed policy, then told to listen) in the publisher's queue, so it can
 * never start between the two phases of a switch and miss it.
 */
import cluster, { type Worker } from 'node:cluster'
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import type { CdniAuthz } from '../plugin/plugin.js'
import type { PreparedPolicy } from '../load/prepare.js'
import { StorageUnavailableError, WorkersUnavailableError } from '../errors.js'
import type { FanOut, PreparedSwitch, Publisher } from './publisher.js'
import { SNAPSHOT_FILE, STAGED_SNAPSHOT_FILE } from './state.js'

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[]

/** What the primary asks a worker; each request carries an id its reply repeats. */
export type ToWorker =
  | { cdni: 'load'; id: number; path: string; etag: string }
  | { cdni: 'commit'; id: number; etag: string }
  | { cdni: 'abort'; id: number }
  | { cdni: 'listen'; id: number }
  | { cdni: 'metrics'; id: number }
  | { cdni: 'reload'; id: number }
  | { cdni: 'stale'; id: number; hosts: readonly string[] | 'all' | null }
  | { cdni: 'drain'; id: number }

/** A worker's messages: `hello` once it can take requests from the primary, else a reply. */
export type FromWorker =
  | { cdni: 'hello' }
  | { cdni: 'reply'; id: number; ok: true; version?: number; url?: string; metrics?: WorkerMetrics; text?: string }
  | { cdni: 'reply'; id: number; ok: false; error: string }

type Reply = Extract<FromWorker, { cdni: 'reply'; ok: true }>
/** A request before its id is given (Omit over each member of the union, not over the union). */
type Request = ToWorker extends infer T ? (T extends ToWorker ? Omit<T, 'id'> : never) : never

/** How long the pool waits, in milliseconds. */
export interface PoolTimeouts {
  /** For a worker to load a snapshot (a large policy loads in well under a second). */
  load: number
  /** For anything else: a switch is one assignment, a listen one handle from the primary. */
  step: number
  /** For a drain, before the worker is killed. */
  drain: number
  /** Before a crashed worker is replaced, so that one which cannot start does not spin. */
  restart: number
}

const TIMEOUTS: PoolTimeouts = { load: 30_000, step: 10_000, drain: 30_000, restart: 250 }

interface Member {
  worker: Worker
  /** Admitted: it has the committed policy and listens. */
  serving: boolean
  /** Being admitted: it is told of staleness changes as they come, so none passes it by. */
  admitting: boolean
  /** Version of the policy it serves (0: none). */
  version: number
  pending: Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>
  /** Its counters as last scraped: stand in for it in a scrape it misses, and outlive it. */
  counters: WorkerMetrics
}

/** Our counters in a worker's metrics: they only grow, whichever workers come and go. */
const countersOf = (metrics: WorkerMetrics): WorkerMetrics =>
  metrics.filter((metric) => String(metric.type) === 'counter' && metric.name.startsWith('cdni_authz_'))

export interface WorkerPoolOptions {
  count: number
  stateDir: string
  /** The primary's plugin: it compiles, and writes the snapshots. */
  authz: CdniAuthz
  log: FastifyBaseLogger
  /** Starts a worker (cluster.fork in the program). */
  fork?: () => Worker
  timeouts?: Partial<PoolTimeouts>
}

export class WorkerPool implements FanOut {
  private readonly members = new Map<number, Member>()
  private publisher: Publisher | null = null
  /** The snapshot every worker serves, or null before the first document. */
  private committed: { path: string; etag: string; version: number } | null = null
  private stale: readonly string[] | 'all' | null = null
  private stopping = false
  private requests = 0
  private url: string | null = null
  private readonly fork: () => Worker
  private readonly timeouts: PoolTimeouts
  private readonly started: { resolve: (url: string) => void; reject: (err: Error) => void }[] = []
  /** The counters of the workers that exited, as last scraped. */
  private retired: WorkerMetrics[] = []

  constructor(private readonly options: WorkerPoolOptions) {
    /* c8 ignore next - the real fork runs in the program only; tests fork in-process workers */
    this.fork = options.fork ?? (() => cluster.fork())
    this.timeouts = { ...TIMEOUTS, ...options.timeouts }
  }

  private get snapshotPath(): string {
    return join(this.options.stateDir, SNAPSHOT_FILE)
  }

  /** Forks every worker, each loading the live policy; resolves with the content URL once all serve. */
  async start(publisher: Publisher): Promise<string> {
    this.publisher = publisher
    const { authz } = this.options
    if (authz.loaded) {
      // Written even when the policy came from this very file: one write at start keeps the code
      // free of a "which snapshot is on disk" case.
      await mkdir(this.options.stateDir, { recursive: true })
      await authz.writeSnapshot(this.snapshotPath)
      this.committed = { path: this.snapshotPath, etag: publisher.live?.etag as string, version: authz.version }
    }
    // A stop while the snapshot was written: nothing to start.
    if (this.stopping) throw new Error('stopped while starting')
    const all = new Promise<string>((resolve, reject) => this.started.push({ resolve, reject }))
    for (let i = 0; i < this.options.count; i++) this.spawn()
    return all
  }

  private spawn(): void {
    const worker = this.fork()
    const member: Member = { worker, serving: false, admitting: false, version: 0, pending: new Map(), counters: [] }
    this.members.set(worker.id, member)
    worker.on('message', (message: FromWorker) => {
      if (message.cdni === 'hello') {
        void this.admit(member)
        return
      }
      const waiting = member.pending.get(message.id)
      member.pending.delete(message.id)
      if (message.ok) waiting?.resolve(message)
      else waiting?.reject(new Error(message.error))
    })
    worker.on('exit', (code, signal) => {
      this.members.delete(worker.id)
      if (member.counters.length > 0) this.retired.push(member.counters)
      for (const { reject } of member.pending.values()) reject(new Error(`worker ${worker.id} exited`))
      if (this.stopping) return
      this.options.log.error(
        { cdniAuthz: { worker: worker.id, pid: worker.process.pid, code, signal } },
        'cdni-authz: a worker exited; starting another',
      )
      setTimeout(() => {
        if (!this.stopping) this.spawn()
      }, this.timeouts.restart).unref()
    })
  }

  /** Sends `message` to one worker and waits for its reply, no longer than `timeout`. */
  private ask(member: Member, message: Request, timeout = this.timeouts.step): Promise<Reply> {
    const id = ++this.requests
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        member.pending.delete(id)
        reject(new Error(`worker ${member.worker.id} did not answer "${message.cdni}" in ${timeout} ms`))
      }, timeout)
      const settle =
        <T>(then: (value: T) => void) =>
        (value: T) => {
          clearTimeout(timer)
          then(value)
        }
      const fail = settle(reject)
      member.pending.set(id, { resolve: settle(resolve), reject: fail })
      // A channel that closed under the send (the worker is exiting): it will not answer.
      member.worker.send({ ...message, id } as ToWorker, (err: Error | null) => {
        if (err !== null) {
          member.pending.delete(id)
          fail(err)
        }
      })
    })
  }

  /**
   * Gives a new worker the committed policy, then has it listen. In the publisher's queue: no
   * switch runs meanwhile, so the worker serves the live version from its first connection on.
   */
  private admit(member: Member): Promise<void> {
    return (this.publisher as Publisher).serialized(async () => {
      // A stop came while it waited its turn: it is being drained, not admitted.
      if (this.stopping) return
      member.admitting = true
      try {
        const committed = this.committed
        if (committed !== null) {
          await this.ask(member, { cdni: 'load', path: committed.path, etag: committed.etag }, this.timeouts.load)
          member.version = (await this.ask(member, { cdni: 'commit', etag: committed.etag })).version as number
        }
        if (this.stale !== null) await this.ask(member, { cdni: 'stale', hosts: this.stale })
        const { url } = await this.ask(member, { cdni: 'listen' })
        member.serving = true
        this.url ??= url as string
        if (this.serving().length === this.options.count) {
          for (const { resolve } of this.started.splice(0)) resolve(this.url)
        }
      } catch (err) {
        // Drained by a stop before it served: nothing failed.
        if (this.stopping) return
        // It never served: killed, it is replaced (or, while starting, the start fails).
        this.options.log.error({ err, cdniAuthz: { worker: member.worker.id } }, 'cdni-authz: a worker failed to start')
        for (const { reject } of this.started.splice(0)) reject(err as Error)
        member.worker.process.kill('SIGKILL')
      } finally {
        member.admitting = false
      }
    })
  }

  private serving(): Member[] {
    return [...this.members.values()].filter((member) => member.serving)
  }

  /**
   * Phase one. The snapshot goes to a staged file beside the committed one (which a worker
   * starting meanwhile would load, and a restart would read); every serving worker loads it. A
   * worker that cannot, or does not answer, aborts the switch: the others drop what they loaded,
   * the staged file is removed, and nothing has changed anywhere.
   */
  async prepare(prepared: PreparedPolicy, version: number): Promise<PreparedSwitch> {
    const { authz, log, stateDir } = this.options
    const staged = join(stateDir, STAGED_SNAPSHOT_FILE)
    try {
      await mkdir(stateDir, { recursive: true })
      await authz.writeSnapshot(staged, { prepared, version })
    } catch (err) {
      log.error({ err }, 'cdni-authz: could not write the snapshot for the workers')
      // fs errors always carry a code; the path stays out of the response.
      throw new StorageUnavailableError((err as NodeJS.ErrnoException).code as string, { cause: err })
    }
    const targets = this.serving()
    const results = await Promise.allSettled(
      targets.map((member) =>
        this.ask(member, { cdni: 'load', path: staged, etag: prepared.etag }, this.timeouts.load),
      ),
    )
    const abort = async (): Promise<void> => {
      await Promise.allSettled(targets.map((member) => this.ask(member, { cdni: 'abort' })))
      await rm(staged, { force: true })
    }
    // A worker that exited meanwhile is not a refusal: it serves nothing, and its replacement is
    // admitted after this switch, with whatever policy it leaves live.
    const failed = results.findIndex(
      (result, i) => result.status === 'rejected' && this.members.has((targets[i] as Member).worker.id),
    )
    if (failed >= 0) {
      await abort()
      const reason = (results[failed] as PromiseRejectedResult).reason as Error
      const worker = (targets[failed] as Member).worker.id
      log.error({ err: reason, cdniAuthz: { worker } }, 'cdni-authz: a worker could not load the new policy')
      throw new WorkersUnavailableError(`worker ${worker}: ${reason.message}`)
    }
    return {
      abort,
      commit: async () => {
        // The document is stored: from here on the switch goes ahead whatever fails.
        try {
          await rename(staged, this.snapshotPath)
          this.committed = { path: this.snapshotPath, etag: prepared.etag, version }
        } catch (err) {
          // The staged file stays the committed one until the next document; a restart, finding
          // no snapshot of its document, compiles it.
          log.error({ err }, 'cdni-authz: could not move the snapshot into place')
          this.committed = { path: staged, etag: prepared.etag, version }
        }
        const alive = targets.filter((member) => this.members.has(member.worker.id))
        await Promise.all(
          alive.map(async (member) => {
            try {
              member.version = (await this.ask(member, { cdni: 'commit', etag: prepared.etag })).version as number
            } catch (err) {
              // It may still serve the old policy: it goes, and its replacement loads the new one.
              log.error({ err, cdniAuthz: { worker: member.worker.id } }, 'cdni-authz: a worker failed to switch')
              member.serving = false
              member.worker.process.kill('SIGKILL')
            }
          }),
        )
      },
    }
  }

  /**
   * Passes the follower's staleness on to every worker, now and at each one's admission. One being
   * admitted is told at once too: the message goes before its listen, so it serves nothing stale.
   */
  markStale(hosts: readonly string[] | 'all' | null): void {
    this.stale = hosts
    for (const member of this.members.values()) {
      if (!member.serving && !member.admitting) continue
      this.ask(member, { cdni: 'stale', hosts }).catch((err: Error) => {
        this.options.log.error({ err }, 'cdni-authz: a worker did not take the staleness; replacing it')
        member.worker.process.kill('SIGKILL')
      })
    }
  }

  /** Why the workers are not all serving the live version, or null when they are. */
  notReady(): string | null {
    const serving = this.serving()
    if (serving.length < this.options.count) return `${serving.length} of ${this.options.count} workers serving`
    const live = this.options.authz.version
    const behind = serving.find((member) => member.version !== live)
    return behind === undefined ? null : `worker ${behind.worker.id} serves version ${behind.version}, not ${live}`
  }

  /**
   * Every serving worker's metrics. A sum of counters must never go back (Prometheus would read a
   * reset, and count everything again), so a worker that does not answer in time is counted by its
   * counters as last scraped, and so is every worker that exited. What a worker counted after its
   * last scrape and before it died is lost, as it is with any process that crashes.
   */
  async metrics(): Promise<WorkerMetrics[]> {
    // Every worker that has counted: one switched out but not yet exited (a failed commit, killed)
    // is counted by its last counters, not asked.
    const members = [...this.members.values()].filter((member) => member.serving || member.counters.length > 0)
    const replies = await Promise.all(
      members.map(async (member) => {
        if (!member.serving) return null
        try {
          const metrics = (await this.ask(member, { cdni: 'metrics' })).metrics as WorkerMetrics
          member.counters = countersOf(metrics)
          return metrics
        } catch {
          return null
        }
      }),
    )
    // Decided after the last wait: a worker that exited meanwhile (having answered or not) is in
    // `retired` with its latest counters, and counted there only.
    const live = members.flatMap((member, i) =>
      this.members.has(member.worker.id) ? [replies[i] ?? member.counters] : [],
    )
    // Folded into one, so a pool that replaced many workers keeps one entry for them.
    if (this.retired.length > 1) this.retired = [await AggregatorRegistry.aggregate(this.retired).getMetricsAsJSON()]
    return [...live, ...this.retired]
  }

  /** Has every worker read the IP databases again; resolves with one line per worker. */
  async reloadDatabases(): Promise<string[]> {
    const replies = await Promise.allSettled(this.serving().map((member) => this.ask(member, { cdni: 'reload' })))
    return replies.map((reply) =>
      reply.status === 'fulfilled' ? (reply.value.text as string) : `failed: ${(reply.reason as Error).message}`,
    )
  }

  /** Drains every worker (each finishes its in-flight requests, then exits). */
  async stop(): Promise<void> {
    this.stopping = true
    // A stop that comes while the workers start (SIGTERM during start-up) ends the start.
    for (const { reject } of this.started.splice(0)) reject(new Error('stopped while starting'))
    await Promise.all(
      [...this.members.values()].map(async (member) => {
        const exited = new Promise((resolve) => member.worker.once('exit', resolve))
        if (member.worker.isDead()) return
        const killer = setTimeout(() => member.worker.process.kill('SIGKILL'), this.timeouts.drain)
        this.ask(member, { cdni: 'drain' }, this.timeouts.drain).catch(() => undefined)
        await exited
        clearTimeout(killer)
      }),
    )
  }
}
