import t from 'tap'
import { buildApp, type LogLine } from './helpers/app.js'

const location = (cidr: string) => ({
  'generic-metadata-type': 'MI.LocationACL',
  'generic-metadata-value': {
    locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': [cidr] }] }],
  },
})
const SITE = {
  hosts: ['a.example', 'b.example:8080'].map((host) => ({
    host,
    'host-metadata': { metadata: [location('10.0.0.0/8')] },
  })),
}

t.test('stale metadata denies the hosts it governs, before any fact is read, and only those', async (t) => {
  const lines: LogLine[] = []
  const app = await buildApp(t, { metadata: SITE }, lines)
  const get = (host: string, url = '/x') =>
    app.inject({ url, remoteAddress: '10.1.1.1', headers: { host } }).then((r) => r.statusCode)
  t.equal(await get('a.example'), 200)
  t.equal(app.cdniAuthz.stale, null)
  app.cdniAuthz.markStale(['A.EXAMPLE'])
  t.same(app.cdniAuthz.stale, ['A.EXAMPLE'])
  t.equal(await get('a.example'), 403, 'compared as HostMatch compares')
  t.equal(await get('b.example:8080'), 200, 'another source’s host')
  t.equal(await get('a.example', '/health'), 200, 'a route opted out stays out')
  t.equal(app.cdniAuthz.counts.denied['metadata-stale'], 1)
  const line = lines.find((l) => (l.cdniAuthz as { reason?: string } | undefined)?.reason === 'metadata-stale')
  t.same(
    line?.cdniAuthz,
    { decision: 'deny', reason: 'metadata-stale', policyVersion: 1 },
    'no facts named: none were read',
  )
  const explained = app.cdniAuthz.explain({
    raw: { headers: { host: 'a.example' }, rawHeaders: ['Host', 'a.example'] },
    socket: { remoteAddress: '10.1.1.1' },
    url: '/x',
  } as never)
  t.match(explained, { allowed: false, stale: true })
  app.cdniAuthz.markStale('all')
  t.equal(await get('b.example:8080'), 403)
  t.equal(await app.inject({ url: '/x', remoteAddress: '10.1.1.1' }).then((r) => r.statusCode), 403, 'no Host at all')
  app.cdniAuthz.markStale([])
  t.equal(app.cdniAuthz.stale, null, 'nothing stale')
  t.equal(await get('a.example'), 200)
  app.cdniAuthz.markStale(['a.example'])
  const twoHosts = app.cdniAuthz.explain({
    raw: { headers: { host: 'a.example' }, rawHeaders: ['Host', 'a.example', 'Host', 'a.example'] },
    socket: { remoteAddress: '10.1.1.1' },
    url: '/x',
  } as never)
  t.match(twoHosts, { selected: null, allowed: false }, 'two Host lines name no host: no HostMatch')
  t.notOk(twoHosts !== null && 'stale' in twoHosts, 'and no stale one either')
  app.cdniAuthz.markStale(['not a host!'])
  t.equal(await get('a.example'), 200)
  app.cdniAuthz.markStale(null)
  t.equal(await get('b.example:8080'), 200)
})

t.test('a request without a Host is not stale for a list of hosts', async (t) => {
  const app = await buildApp(t, { metadata: { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8' } }] } })
  app.cdniAuthz.markStale(['a.example'])
  const raw = await app.inject({ url: '/x', remoteAddress: '10.1.1.1', headers: { host: '' } })
  t.equal(raw.statusCode, 200)
})
