import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AUTH, config, rawGet, start, type Running } from './helpers/surrogate.js'
import { metadataServer, type MetadataServer } from './helpers/metadata-server.js'
import type { ServerConfig } from '../src/surrogate/config.js'

const HOST = 'video.example.com'
/** The address rawGet's trusted proxy names. */
const CLIENT = '198.51.100.7/32'
const OTHER = '203.0.113.0/24'

const location = (cidr: string) => ({
  'generic-metadata-type': 'MI.LocationACL',
  'generic-metadata-value': {
    locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': [cidr] }] }],
  },
})
const hostIndex = (host: string, cidr: string) => ({
  hosts: [{ host, 'host-metadata': { metadata: [location(cidr)] } }],
})

/** Polls `check` until it holds, for at most `ms`. */
async function until(check: () => Promise<boolean> | boolean, ms = 8000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return check()
}

const get = (s: Running, host = HOST) => rawGet(s.contentUrl, '/hello.txt', host).then((r) => r.status)
const status = (s: Running) =>
  fetch(`${s.apiUrl}/cdni/status`, { headers: AUTH }).then((r) => r.json() as Promise<Record<string, any>>)

async function follower(
  t: Parameters<Parameters<typeof t.test>[1]>[0],
  source: MetadataServer | string[],
  patch: Partial<ServerConfig> = {},
) {
  const s = await start(
    config({ follow: Array.isArray(source) ? source : [`${source.url}/index`], followInterval: 300, ...patch }),
  )
  t.teardown(() => s.surrogate.close())
  return s
}

t.test('a HostIndex of Links at every level is followed, assembled and enforced', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [{ href: 'hosts/video' }] }), ptype: 'MI.HostIndex' })
  origin.set('/hosts/video', {
    body: JSON.stringify({ host: HOST, 'host-metadata': { href: '/meta/video', type: 'MI.HostMetadata' } }),
    ptype: 'MI.HostMatch',
  })
  origin.set('/meta/video', {
    body: JSON.stringify({ metadata: [{ href: '/acl' }], paths: [{ href: '/paths/free' }] }),
    ptype: 'MI.HostMetadata',
  })
  origin.set('/acl', { body: JSON.stringify(location(CLIENT)), ptype: 'MI.LocationACL' })
  origin.set('/paths/free', {
    body: JSON.stringify({ 'path-pattern': { pattern: '/free/*' }, 'path-metadata': { href: '/paths/free/meta' } }),
    ptype: 'MI.PathMatch',
  })
  origin.set('/paths/free/meta', { body: JSON.stringify({ metadata: [location(OTHER)] }), ptype: 'MI.PathMetadata' })
  const s = await follower(t, origin)
  t.ok(await until(async () => (await get(s)) === 200), 'served once followed')
  t.equal(await get(s, 'other.example.com'), 403, 'a host the uCDN did not name')
  const report = await status(s)
  t.equal(report.following[0].url, `${origin.url}/index`)
  t.equal(report.following[0].resources.length, 6)
  t.equal(report.following[0].staleSince, null)
})
