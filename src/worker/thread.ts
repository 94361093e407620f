/**
 * Worker thread entry: prepares policies off the main event loop. All logic is in prepare.ts,
 * tested in the main thread; this file is only the message glue.
 */
import { parentPort } from 'node:worker_threads'
import { preparePolicy, transferList } from '../load/prepare.js'
import type { LoadContext } from '../load/translate.js'

/* c8 ignore start - runs inside the worker thread, where coverage is not collected; exercised by the push tests */
parentPort?.on('message', (job: { id: number; text: string; context: LoadContext }) => {
  const result = preparePolicy(job.text, job.context)
  parentPort?.postMessage({ id: job.id, result }, result.ok ? transferList(result.compiled) : [])
})
/* c8 ignore stop */
