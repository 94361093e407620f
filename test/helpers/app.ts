// One way for tests to build an app with the plugin, as the official Fastify plugins' tests do: a
// fresh instance per test, driven with inject(), closed when the test ends.
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import cdniAuthz, { type CdniAuthzOptions } from '../../src/index.js'

export type LogLine = Record<string, unknown>

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * Fastify with the plugin registered with `options`; every path answers 'ok', and `/health` has
 * opted out of authorization. With `lines`, the log (pino, info and up) is collected into them;
 * without, logging is off.
 */
export async function buildApp(t: Teardown, options: CdniAuthzOptions, lines?: LogLine[]): Promise<FastifyInstance> {
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines?.push(JSON.parse(String(chunk)) as LogLine)
      callback()
    },
  })
  const app = Fastify({ logger: lines === undefined ? false : { level: 'info', stream } })
  await app.register(cdniAuthz, options)
  app.get('/*', async () => 'ok')
  app.get('/health', { config: { cdniAuthz: false } }, async () => 'alive')
  t.teardown(() => app.close())
  return app
}
