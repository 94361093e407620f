/**
 * What the follower's tests share: a metadata document, the surrogate following a source, and
 * reads of what it serves and reports.
 */
import type { Test } from 'tap'
import { AUTH, config, rawGet, start, type Running } from './surrogate.js'
import type { MetadataServer } from './metadata-server.js'
import type { ServerConfig } from '../../src/surrogate/config.js'
import type { SurrogateOptions } from '../../src/surrogate/server.js'

export const HOST = 'video.example.com'
/** The address rawGet's trusted proxy names. */
export const CLIENT = '198.51.100.7/32'
export const OTHER = '203.0.113.0/24'

export const location = (cidr: string) => ({
  'generic-metadata-type': 'MI.LocationACL',
  'generic-metadata-value': {
    locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': [cidr] }] }],
  },
})
export const hostIndex = (host: string, cidr: string) => ({
  hosts: [{ host, 'host-metadata': { metadata: [location(cidr)] } }],
})

/** Polls `check` until it holds, for at most `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return check()
}

export const get = (s: Running, host = HOST) => rawGet(s.contentUrl, '/hello.txt', host).then((r) => r.status)
export const status = (s: Running) =>
  fetch(`${s.apiUrl}/cdni/status`, { headers: AUTH }).then((r) => r.json() as Promise<Record<string, any>>)

export async function follower(
  t: Test,
  source: MetadataServer | string[],
  patch: Partial<ServerConfig> = {},
  options: SurrogateOptions = {},
) {
  const s = await start(
    // A minute of max-stale, so that a loaded machine's slow compile does not make staleness the
    // subject of a test about something else; the tests of staleness set their own.
    config({
      follow: Array.isArray(source) ? source : [`${source.url}/index`],
      followInterval: 300,
      followMaxStale: 60_000,
      ...patch,
    }),
    options,
  )
  t.teardown(() => s.surrogate.close())
  return s
}

/**
 * The document a following surrogate hands on, once it does: it answers 503 while its metadata is
 * past its freshness, which on a loaded machine the first compile alone can outlast.
 */
export async function handedOn(s: { apiUrl: string }): Promise<Response> {
  let response: Response | null = null
  await until(async () => {
    response = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
    return response.status !== 503
  })
  return response as unknown as Response
}

export const version = (s: Running) => status(s).then((r) => r.version as number)
export const readyz = (s: Running) =>
  fetch(`${s.apiUrl}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() }))
