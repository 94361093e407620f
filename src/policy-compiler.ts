/**
 * One worker thread that prepares policies, one job at a time. The worker is created on first
 * use and replaced if it dies; a dead worker fails its pending jobs rather than hanging them.
 */
import { Worker } from 'node:worker_threads'
import type { LoadContext } from './metadata.js'
import type { PreparedPolicy, RefusedPolicy } from './prepare.js'

type Pending = { resolve: (value: PreparedPolicy | RefusedPolicy) => void; reject: (error: Error) => void }

// Under the TypeScript test loader this module is a .ts file, and so is its worker.
/* c8 ignore next - the .js branch is the built package's */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './compile-worker.ts' : './compile-worker.js', import.meta.url)

export class PolicyCompiler {
  private worker: Worker | null = null
  private readonly pending = new Map<number, Pending>()
  private nextId = 1

  private start(): Worker {
    const worker = new Worker(WORKER_URL)
    worker.on('message', (message: { id: number; result: PreparedPolicy | RefusedPolicy }) => {
      const job = this.pending.get(message.id) as Pending
      this.pending.delete(message.id)
      if (this.pending.size === 0) worker.unref()
      job.resolve(message.result)
    })
    const fail = (error: Error): void => {
      if (this.worker === worker) this.worker = null
      for (const job of this.pending.values()) job.reject(error)
      this.pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`policy compiler worker exited with code ${code}`)))
    return worker
  }

  /** Parses, validates and compiles `text` in the worker. */
  prepare(text: string, context: LoadContext): Promise<PreparedPolicy | RefusedPolicy> {
    this.worker ??= this.start()
    const id = this.nextId++
    const worker = this.worker
    // An idle worker must not keep the process alive; a busy one must, or a start that waits
    // for its first policy would find an empty event loop and exit.
    worker.ref()
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, text, context })
    })
  }

  async close(): Promise<void> {
    const worker = this.worker
    this.worker = null
    if (worker) await worker.terminate()
  }
}
