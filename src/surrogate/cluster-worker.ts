/**
 * A worker of `--workers N` (cluster.ts): it serves content and nothing else. It takes no push,
 * follows nothing, writes nothing and compiles nothing: each policy arrives as a snapshot the
 * primary wrote, which it loads and verifies when told ("load"), then swaps in, one assignment,
 * when told ("commit"). It listens only once the primary has given it the committed policy.
 */
import type { PreparedSnapshot } from '../plugin/plugin.js'
import type { ServerConfig } from './config.js'
import type { FromWorker, ToWorker } from './cluster.js'
import { createContent, type SurrogateOptions } from './server.js'
import { createWorkerMetrics } from './metrics.js'

/** How the worker talks to the primary: its IPC channel in the program. */
export interface PrimaryChannel {
  send(message: FromWorker): void
  onMessage(handler: (message: ToWorker) => void): void
  /** Called once drained: the worker's work is done. */
  done(): void
}

export async function runWorker(
  config: ServerConfig,
  channel: PrimaryChannel,
  options: SurrogateOptions = {},
): Promise<{ reloadDatabases(): string; drain(): Promise<void> }> {
  const { content, closing } = await createContent(config, options)
  const authz = content.cdniAuthz
  const registry = createWorkerMetrics(authz)
  /** Loaded and verified, not yet live. */
  let held: PreparedSnapshot | null = null
  let draining: Promise<void> | null = null

  const reloadDatabases = (): string => {
    const { country, asn } = authz.reloadDatabases()
    const name = (db: { path: string; type: string } | null): string =>
      db === null ? 'none' : `${db.path} (${db.type})`
    return `country ${name(country)}, AS ${name(asn)}`
  }
  const drain = (): Promise<void> => {
    draining ??= (async () => {
      closing()
      await content.close()
      channel.done()
    })()
    return draining
  }

  const handle = async (message: ToWorker): Promise<Omit<Extract<FromWorker, { ok: true }>, 'cdni' | 'id' | 'ok'>> => {
    switch (message.cdni) {
      case 'load':
        held = null
        held = await authz.readSnapshot(message.path, { etag: message.etag })
        return {}
      case 'commit': {
        const prepared = held
        if (prepared?.etag !== message.etag) throw new Error(`no snapshot of ${message.etag} is loaded`)
        held = null
        return { version: authz.commit(prepared, prepared.version).version }
      }
      case 'abort':
        held = null
        return {}
      case 'listen':
        return { url: await content.listen({ host: config.host, port: config.port }) }
      case 'stale':
        authz.markStale(message.hosts)
        return {}
      case 'metrics':
        return { metrics: await registry.getMetricsAsJSON() }
      case 'reload':
        return { text: reloadDatabases() }
      case 'drain':
        await drain()
        return {}
    }
  }
  channel.onMessage((message) => {
    // Only the primary's messages (node:cluster and prom-client send their own).
    if (typeof message !== 'object' || message === null || typeof (message as { cdni?: unknown }).cdni !== 'string') {
      return
    }
    handle(message).then(
      (reply) => channel.send({ cdni: 'reply', id: message.id, ok: true, ...reply }),
      (err: Error) => channel.send({ cdni: 'reply', id: message.id, ok: false, error: err.message }),
    )
  })
  channel.send({ cdni: 'hello' })
  return { reloadDatabases, drain }
}
