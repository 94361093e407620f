/**
 * One worker thread that prepares policies, one job at a time. The worker is created on first
 * use and replaced if it dies; a dead worker fails its pending jobs rather than hanging them.
 */
import { Worker } from 'node:worker_threads'
import type { LoadContext } from '../load/translate.js'
import type { PreparedPolicy, RefusedPolicy } from '../load/prepare.js'

type Pending = { resolve: (value: PreparedPolicy | RefusedPolicy) => void; reject: (error: Error) => void }

// Under the TypeScript test loader this module is a .ts file, and so is its worker.
/* c8 ignore next - the .js branch is the built package's */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './thread.ts' : './thread.js', import.meta.url)

/** A worker and the jobs it owes. Each worker has its own, so one that is exiting fails only its own. */
type Live = { worker: Worker; pending: Map<number, Pending> }

export class PolicyCompiler {
  private live: Live | null = null
  private nextId = 1

  private start(): Live {
    const live: Live = { worker: new Worker(WORKER_URL), pending: new Map() }
    const { worker, pending } = live
    worker.on('message', (message: { id: number; result: PreparedPolicy | RefusedPolicy }) => {
      const job = pending.get(message.id) as Pending
      pending.delete(message.id)
      // An idle worker must not keep the process alive. One that is being closed stays
      // referenced until its 'exit': terminate() resolves on that event, and an empty event loop
      // would end the process first, leaving whoever awaits close() hanging.
      if (pending.size === 0 && this.live === live) worker.unref()
      job.resolve(message.result)
    })
    const fail = (error: Error): void => {
      if (this.live === live) this.live = null
      for (const job of pending.values()) job.reject(error)
      pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`policy compiler worker exited with code ${code}`)))
    return live
  }

  /** Parses, validates and compiles `text` in the worker. */
  prepare(text: string, context: LoadContext): Promise<PreparedPolicy | RefusedPolicy> {
    const { worker, pending } = (this.live ??= this.start())
    const id = this.nextId++
    // A busy worker must keep the process alive, or a start that waits for its first policy
    // would find an empty event loop and exit.
    worker.ref()
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject })
      worker.postMessage({ id, text, context })
    })
  }

  /** Stops the worker; its pending jobs are failed. A later prepare() starts a new one. */
  async close(): Promise<void> {
    const live = this.live
    this.live = null
    if (!live) return
    live.worker.ref()
    await live.worker.terminate()
  }
}
