// The workers of `--workers N` run in this process: each a real content listener of its own
// (runWorker), reached through an in-memory channel shaped like node:cluster's, so the primary's
// pool and the worker's side of each switch run instrumented, and a test can make one worker
// fail a step or vanish. test/workers-process.test.ts runs the real cluster.
import { EventEmitter } from 'node:events'
import type { Worker } from 'node:cluster'
import type { FromWorker, ToWorker } from '../../src/surrogate/cluster.js'
import { runWorker } from '../../src/surrogate/cluster-worker.js'
import type { ServerConfig } from '../../src/surrogate/config.js'

export class InProcessWorker extends EventEmitter {
  static next = 0
  readonly id = ++InProcessWorker.next
  dead = false
  /** Every message the primary sent it. */
  readonly received: ToWorker[] = []
  /** Returns a reply to send instead of the worker's, `'silent'` to send none, or null to let it answer. */
  intercept: (message: ToWorker) => FromWorker | 'silent' | null = () => null
  url: string | null = null
  private deliver: ((message: ToWorker) => void) | null = null
  private worker: Awaited<ReturnType<typeof runWorker>> | null = null
  readonly process = {
    pid: 100_000 + this.id,
    kill: (signal: NodeJS.Signals) => {
      void this.exit(null, signal)
    },
  }

  constructor(config: ServerConfig) {
    super()
    void runWorker(config, {
      send: (message) => {
        if (message.cdni === 'reply' && message.ok && message.url !== undefined) this.url = message.url
        if (!this.dead) setImmediate(() => this.emit('message', message))
      },
      onMessage: (handler) => (this.deliver = handler),
      done: () => {
        void this.exit(0, null)
      },
    }).then((worker) => (this.worker = worker))
  }

  isDead(): boolean {
    return this.dead
  }

  send(message: ToWorker, callback: (error: Error | null) => void): boolean {
    if (this.dead) {
      callback(new Error('channel closed'))
      return false
    }
    this.received.push(message)
    const instead = this.intercept(message)
    if (instead === null) setImmediate(() => this.deliver?.(message))
    else if (instead !== 'silent') setImmediate(() => this.emit('message', instead))
    callback(null)
    return true
  }

  /** Ends it as a crash would (its listener closed, its pending requests unanswered). */
  async exit(code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (this.dead) return
    this.dead = true
    await this.worker?.drain()
    this.emit('exit', code, signal)
  }

  /** Asks the worker's own reload, as its SIGHUP handler does. */
  reloadDatabases(): string {
    return (this.worker as NonNullable<typeof this.worker>).reloadDatabases()
  }
}

/** A `fork` for the pool that starts in-process workers, and the list of those it started. */
export function inProcessFork(config: ServerConfig): { fork: () => Worker; started: InProcessWorker[] } {
  const started: InProcessWorker[] = []
  return {
    started,
    fork: () => {
      const worker = new InProcessWorker({ ...config, workers: 1 })
      started.push(worker)
      return worker as unknown as Worker
    },
  }
}
