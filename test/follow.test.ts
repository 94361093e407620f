import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import type { Test } from 'tap'
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

async function follower(t: Test, source: MetadataServer | string[], patch: Partial<ServerConfig> = {}) {
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

const version = (s: Running) => status(s).then((r) => r.version as number)
const readyz = (s: Running) =>
  fetch(`${s.apiUrl}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() }))

t.test('an unchanged tree costs 304s and no compile; a change is live within a poll', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex' })
  const s = await follower(t, origin)
  t.ok(await until(async () => (await get(s)) === 200))
  t.ok(await until(() => origin.requests.filter((r) => r.status === 304).length >= 3), 'revalidated, 304s')
  t.equal(await version(s), 1, 'nothing compiled again')
  const metrics = await fetch(`${s.apiUrl}/metrics`).then((r) => r.text())
  t.match(metrics, /cdni_authz_follow_requests_total\{source="[^"]+\/index",answer="not_modified"\} [1-9]/)
  t.match(metrics, /cdni_authz_follow_polls_total\{source="[^"]+",result="changed"\} 1/)
  t.match(metrics, /cdni_authz_follow_stale\{source="[^"]+"\} 0/)
  origin.set('/index', { body: JSON.stringify(hostIndex(HOST, OTHER)), ptype: 'MI.HostIndex' })
  t.ok(await until(async () => (await get(s)) === 403), 'the new policy, once polled')
  t.equal(await version(s), 2)
})

t.test('public output names a source without its query, which may carry a credential', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex' })
  const s = await follower(t, [`${origin.url}/index?key=secret-of-the-ucdn`])
  t.ok(await until(async () => (await get(s)) === 200))
  origin.failWith = 500
  t.ok(await until(async () => (await readyz(s)).status === 503, 6000))
  const open = (await readyz(s)).body + (await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()))
  t.match(open, `${origin.url}/index`)
  t.notMatch(open, 'secret-of-the-ucdn')
})

t.test('pushes answer 409 naming the source; GET serves the followed document', async (t) => {
  const origin = await metadataServer(t)
  const text = JSON.stringify(hostIndex(HOST, CLIENT))
  origin.set('/index', { body: text, ptype: 'MI.HostIndex' })
  const s = await follower(t, origin)
  t.ok(await until(async () => (await get(s)) === 200))
  const push = await s.push(hostIndex(HOST, OTHER))
  t.equal(push.status, 409)
  t.match(await push.json(), { message: `this surrogate follows ${origin.url}/index; its policy changes only there` })
  const doc = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
  t.equal(await doc.text(), text, 'as the source sent it')
  t.equal(await get(s), 200, 'the push changed nothing')
  t.equal((await fetch(`${s.apiUrl}/cdni/status`)).status, 401, 'the status needs the token')
  t.match(await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()), /cdni_authz_push_total\{result="following"\} 1/)
})

t.test(
  'a stale policy denies (metadata-stale) once past freshness and stale-if-error, and recovers at once',
  async (t) => {
    const origin = await metadataServer(t)
    origin.set('/index', {
      body: JSON.stringify(hostIndex(HOST, CLIENT)),
      ptype: 'MI.HostIndex',
      cacheControl: 'max-age=1, stale-if-error=1',
    })
    const s = await follower(t, origin)
    t.ok(await until(async () => (await get(s)) === 200))
    origin.failWith = 503
    const failed = Date.now()
    t.ok(await until(async () => (await get(s)) === 403, 6000), 'denied once stale')
    t.ok(Date.now() - failed >= 900, 'not before freshness and stale-if-error ran out')
    const report = await status(s)
    t.match(report.following[0], { lastError: { message: /answered 503/ }, staleSince: String })
    t.match(await readyz(s), { status: 503, body: /followed metadata is stale/ })
    t.match(
      await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()),
      /cdni_authz_decisions_total\{outcome="deny",reason="metadata-stale"\} [1-9]/,
    )
    origin.failWith = null
    t.ok(await until(async () => (await get(s)) === 200), 'served again after one good poll')
    t.equal((await readyz(s)).status, 200)
    t.equal(await version(s), 1, 'the same policy, revalidated')
  },
)

t.test(
  'max-stale serves a policy its source cannot revalidate for that long, then denies; its return restores it',
  async (t) => {
    const origin = await metadataServer(t)
    origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex' })
    const s = await follower(t, origin, { followMaxStale: 4000 })
    t.ok(await until(async () => (await get(s)) === 200))
    // A revalidation after the first compile, so that the last success is recent.
    const seen = origin.requests.length
    t.ok(await until(() => origin.requests.slice(seen).some((r) => r.status === 304)))
    await origin.close()
    const closed = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    t.equal(await get(s), 200, 'max-stale keeps it served a while')
    t.ok(await until(async () => (await get(s)) === 403, 8000), 'then denied')
    t.ok(Date.now() - closed >= 3500, 'not before its interval and max-stale ran out')
    await origin.reopen()
    t.ok(await until(async () => (await get(s)) === 200, 4000), 'back within an interval of its return')
  },
)

t.test('a refused tree keeps the live policy, is reported, and is not compiled again while unchanged', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  const s = await follower(t, origin, { followMaxStale: 60_000 })
  t.ok(await until(async () => (await get(s)) === 200))
  origin.set('/index', {
    body: JSON.stringify({ hosts: [{ host: HOST, 'host-metadata': { metadata: 7 } }] }),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  t.ok(await until(async () => (await status(s)).following[0].lastError !== null, 4000))
  t.match((await status(s)).following[0].lastError.message, /^refused: \/hosts\/0\/host-metadata\/metadata/)
  t.equal(await get(s), 200, 'the live policy stays')
  t.equal(await version(s), 1)
  const refusals = async () =>
    Number(
      /cdni_authz_follow_polls_total\{source="[^"]+",result="refused"\} (\d+)/.exec(
        await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()),
      )?.[1],
    )
  const lastSuccess = (await status(s)).following[0].lastSuccess
  t.ok(await until(async () => (await refusals()) >= 3), 'refused at every poll, without a compile')
  t.match(
    (await status(s)).following[0].lastError.message,
    /^refused: \/hosts\/0\/host-metadata\/metadata/,
    'the reason kept',
  )
  t.equal(await version(s), 1)
  t.equal((await status(s)).following[0].lastSuccess, lastSuccess, 'a 304 for the refused tree revalidates nothing')
  origin.set('/index', { body: '"text"', cacheControl: 'max-age=1' })
  t.ok(await until(async () => /^refused: \(document\) /.test((await status(s)).following[0].lastError.message)))
})

t.test('a surrogate follows another surrogate, with the token, in either format', async (t) => {
  const upstream = await start(config())
  t.teardown(() => upstream.surrogate.close())
  t.equal((await upstream.push({ deliveryCriteria: [{ region: { subnet: CLIENT } }] })).status, 200)
  const s = await follower(t, [`${upstream.apiUrl}/cdni/metadata`], { followToken: AUTH.authorization.slice(7) })
  t.ok(await until(async () => (await get(s, 'any.example')) === 200))
  t.equal(
    (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })).headers.get('etag'),
    (await fetch(`${upstream.apiUrl}/cdni/metadata`, { headers: AUTH })).headers.get('etag'),
    'the same document, byte for byte',
  )
  t.equal((await upstream.push({ deliveryCriteria: [{ region: { subnet: OTHER } }] })).status, 200)
  t.ok(await until(async () => (await get(s, 'any.example')) === 403), 'the change fans out')
  const refused = await follower(t, [`${upstream.apiUrl}/cdni/metadata`])
  t.ok(await until(async () => (await status(refused)).following[0].lastError !== null))
  t.match((await status(refused)).following[0].lastError.message, /answered 401/)
  t.equal(await get(refused, 'any.example'), 403, 'without the token, nothing to serve')
})

t.test('a restart serves the kept tree while fresh, and revalidates it with 304s', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=3600',
  })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  await first.surrogate.close()
  await origin.close()
  const second = await start(cfg)
  t.teardown(() => second.surrogate.close())
  t.equal(await get(second), 200, 'served from the kept tree, the source down')
  t.equal((await readyz(second)).status, 200)
})

t.test('a restart whose kept tree is not fresh denies until its source answers', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex' })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  await first.surrogate.close()
  origin.failWith = 503
  await new Promise((resolve) => setTimeout(resolve, 400))
  const second = await start(cfg)
  t.teardown(() => second.surrogate.close())
  t.equal(await get(second), 403, 'past its freshness, the source failing')
  t.match(await readyz(second), { status: 503 })
  origin.failWith = null
  t.ok(await until(async () => (await get(second)) === 200), 'revalidated')
  t.equal(origin.requests.at(-1)?.status, 304, 'with a 304, from the kept validators')
})

t.test('two sources: their HostIndexes merged, a host named twice refused, staleness per source', async (t) => {
  const a = await metadataServer(t)
  const b = await metadataServer(t)
  a.set('/index', {
    body: JSON.stringify(hostIndex('a.example', CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  b.set('/index', {
    body: JSON.stringify(hostIndex('b.example', CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  const cfg = config({ follow: [`${a.url}/index`, `${b.url}/index`], followInterval: 300, rootLayout: 'per-host' })
  for (const host of ['a.example', 'b.example']) {
    mkdirSync(join(cfg.root as string, host))
    writeFileSync(join(cfg.root as string, host, 'hello.txt'), host)
  }
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.ok(await until(async () => (await get(s, 'a.example')) === 200 && (await get(s, 'b.example')) === 200))
  b.failWith = 500
  t.ok(await until(async () => (await get(s, 'b.example')) === 403, 6000), "b's hosts denied once stale")
  t.equal(await get(s, 'a.example'), 200, "a's stay served")
  b.failWith = null
  t.ok(await until(async () => (await get(s, 'b.example')) === 200))
  b.set('/index', {
    body: JSON.stringify(hostIndex('a.example', CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  t.ok(await until(async () => /named by two sources/.test((await status(s)).following[1].lastError?.message ?? '')))
  t.equal(await get(s, 'a.example'), 200, 'the live policy stays')
})

t.test('what cannot be stored is not served, and is reported; the caches not kept only cost a fetch', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    lastModified: 'Mon, 01 Jun 2026 00:00:00 GMT',
    noEtag: true,
  })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  mkdirSync(join(cfg.stateDir, 'state.json'), { recursive: true })
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.ok(
    await until(async () =>
      /could not store the document/.test((await status(s)).following[0].lastError?.message ?? ''),
    ),
  )
  t.equal(await get(s), 403)
  const metrics = await fetch(`${s.apiUrl}/metrics`).then((r) => r.text())
  t.match(metrics, /cdni_authz_follow_seconds_since_success\{source="[^"]+"\} -1/, 'never succeeded')
  rmSync(join(cfg.stateDir, 'state.json'), { recursive: true })
  mkdirSync(join(cfg.stateDir, 'follow.json'))
  t.ok(await until(async () => (await get(s)) === 200), 'stored and served once the disk allows')
  t.ok(await until(() => origin.requests.some((r) => r.status === 304)), 'revalidated by Last-Modified alone')
  t.match((await status(s)).following[0].resources[0], { etag: null, lastModified: 'Mon, 01 Jun 2026 00:00:00 GMT' })
})

t.test('a restart with its caches damaged, or kept for another document, fetches afresh', async (t) => {
  const origin = await metadataServer(t)
  const text = JSON.stringify(hostIndex(HOST, CLIENT))
  origin.set('/index', { body: text, ptype: 'MI.HostIndex', cacheControl: 'max-age=3600' })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  await first.surrogate.close()
  const kept = JSON.parse(readFileSync(join(cfg.stateDir, 'follow.json'), 'utf8'))
  const url = `${origin.url}/index`
  for (const damaged of [
    '{ not json',
    JSON.stringify({ ...kept, sources: { [url]: { resources: 1 } } }),
    JSON.stringify({ ...kept, sources: { [url]: { ...kept.sources[url], resources: [] } } }),
  ]) {
    writeFileSync(join(cfg.stateDir, 'follow.json'), damaged)
    const requests = origin.requests.length
    const again = await start(cfg)
    t.equal(await get(again), 403, 'not served before a fetch')
    t.ok(await until(async () => (await get(again)) === 200))
    t.equal(await version(again), 1, 'the same document: not compiled again')
    t.equal(origin.requests.slice(requests)[0]?.status, 200, 'fetched whole, no validators kept')
    await again.surrogate.close()
  }
})

t.test('two sources: one serving no HostIndex is refused', async (t) => {
  const a = await metadataServer(t)
  const b = await metadataServer(t)
  a.set('/index', { body: JSON.stringify(hostIndex('a.example', CLIENT)), ptype: 'MI.HostIndex' })
  b.set('/index', { body: JSON.stringify({ deliveryCriteria: [{ region: { subnet: CLIENT } }] }) })
  const s = await start(
    config({ follow: [`${a.url}/index`, `${b.url}/index`], followInterval: 300, rootLayout: 'per-host' }),
  )
  t.teardown(() => s.surrogate.close())
  t.ok(await until(async () => /serves no HostIndex/.test((await status(s)).following[1].lastError?.message ?? '')))
  b.set('/index', { body: JSON.stringify({ hosts: [{ host: 7 }, { host: 'not a host!' }] }) })
  t.ok(
    await until(async () => /^refused: \/hosts\/\d/.test((await status(s)).following[1].lastError?.message ?? '')),
    JSON.stringify((await status(s)).following[1]),
  )
})

t.test('mutual TLS: the client certificate is presented, the source checked against the CA given', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'cdni-mtls-'))
  const path = (name: string) => join(base, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=test CA',
  )
  for (const [name, extension] of [
    ['server', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.csr`),
      '-subj',
      `/CN=${name}`,
    )
    writeFileSync(path(`${name}.ext`), extension)
    openssl(
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path('ca.pem'),
      '-CAkey',
      path('ca.key'),
      '-CAcreateserial',
      '-out',
      path(`${name}.pem`),
      '-days',
      '1',
      '-extfile',
      path(`${name}.ext`),
    )
  }
  const peers: string[] = []
  const server = https.createServer(
    {
      key: readFileSync(path('server.key')),
      cert: readFileSync(path('server.pem')),
      ca: readFileSync(path('ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (request, response) => {
      peers.push(String((request.socket as TLSSocket).getPeerCertificate().subject.CN))
      response.writeHead(200, { 'content-type': 'application/cdni; ptype=MI.HostIndex' })
      response.end(JSON.stringify(hostIndex(HOST, CLIENT)))
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/index`
  const s = await follower(t, [url], {
    followCert: path('client.pem'),
    followKey: path('client.key'),
    followCa: path('ca.pem'),
  })
  t.ok(await until(async () => (await get(s)) === 200))
  t.equal(peers[0], 'client')
  const without = await follower(t, [url], { followCa: path('ca.pem') })
  t.ok(await until(async () => (await status(without)).following[0].lastError !== null))
  t.equal(await get(without), 403, 'no certificate, no metadata')
  const untrusted = await follower(t, [url], { followCert: path('client.pem'), followKey: path('client.key') })
  t.ok(
    await until(async () => /certificate/i.test((await status(untrusted)).following[0].lastError?.message ?? '')),
    'the source is checked',
  )
})
