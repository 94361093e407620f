import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { pino } from 'pino'
import { AUTH, config, start } from './helpers/surrogate.js'
import { metadataServer } from './helpers/metadata-server.js'
import {
  CLIENT,
  follower,
  get,
  handedOn,
  HOST,
  hostIndex,
  location,
  OTHER,
  readyz,
  status,
  until,
  version,
} from './helpers/follow.js'

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
  const s = await follower(t, [`${origin.url}/index?key=secret-of-the-ucdn`], { followMaxStale: 0 })
  t.ok(await until(async () => (await get(s)) === 200))
  origin.failWith = 500
  t.ok(await until(async () => (await readyz(s)).status === 503))
  const open = (await readyz(s)).body + (await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()))
  t.match(open, `${origin.url}/index`)
  t.notMatch(open, 'secret-of-the-ucdn')
})

t.test('pushes answer 409 naming the source; GET serves the followed document', async (t) => {
  const origin = await metadataServer(t)
  const text = JSON.stringify(hostIndex(HOST, CLIENT))
  origin.set('/index', { body: text, ptype: 'MI.HostIndex' })
  const s = await follower(t, origin, { followInterval: 2000 })
  t.ok(await until(async () => (await get(s)) === 200))
  const push = await s.push(hostIndex(HOST, OTHER))
  t.equal(push.status, 409)
  t.match(await push.json(), { message: `this surrogate follows ${origin.url}/index; its policy changes only there` })
  // Handed on only while fresh: freshness counts from the fetch, and on a loaded machine the first
  // compile can outlast it, until the next revalidation.
  const doc = await handedOn(s)
  t.equal(await doc.text(), text, 'as the source sent it')
  t.equal(await get(s), 200, 'the push changed nothing')
  t.equal((await fetch(`${s.apiUrl}/cdni/status`)).status, 401, 'the status needs the token')
  t.match(await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()), /cdni_authz_push_total\{result="following"\} 1/)
})

t.test('a surrogate follows another surrogate, with the token, in either format', async (t) => {
  const upstream = await start(config())
  t.teardown(() => upstream.surrogate.close())
  t.equal((await upstream.push({ deliveryCriteria: [{ region: { subnet: CLIENT } }] })).status, 200)
  t.match(await fetch(`${upstream.apiUrl}/cdni/status`, { headers: AUTH }).then((r) => r.json()), {
    version: 1,
    etag: /^"sha256-/,
    following: null,
  })
  const s = await follower(t, [`${upstream.apiUrl}/cdni/metadata`], {
    followToken: AUTH.authorization.slice(7),
    followInterval: 2000,
  })
  t.ok(await until(async () => (await get(s, 'any.example')) === 200))
  t.equal(
    (await handedOn(s)).headers.get('etag'),
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

t.test('the log says what a change changed: versions, hosts and resources, the source without its query', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [{ href: '/h' }] }), ptype: 'MI.HostIndex' })
  origin.set('/h', { body: JSON.stringify(hostIndex(HOST, CLIENT).hosts[0]), ptype: 'MI.HostMatch' })
  const lines: Record<string, any>[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  const s = await follower(t, [`${origin.url}/index?key=secret-of-the-ucdn`], {}, { logger })
  t.ok(await until(async () => (await get(s)) === 200))
  origin.set('/h', { body: JSON.stringify(hostIndex('other.example', CLIENT).hosts[0]), ptype: 'MI.HostMatch' })
  t.ok(await until(() => lines.filter((line) => line.msg === 'cdni-authz: followed metadata changed').length === 2))
  const [first, second] = lines.filter((line) => line.msg === 'cdni-authz: followed metadata changed')
  t.match(first?.cdniAuthz, {
    source: `${origin.url}/index`,
    from: { version: 0, etag: null },
    to: { version: 1, etag: /^"sha256-/ },
    hosts: { added: { count: 1, names: [HOST] }, removed: { count: 0, names: [] } },
    resources: { changed: { count: 2 }, removed: { count: 0 } },
  })
  t.match(second?.cdniAuthz, {
    from: { version: 1, etag: first?.cdniAuthz.to.etag },
    to: { version: 2 },
    hosts: { added: { names: ['other.example'] }, removed: { names: [HOST] } },
    resources: { changed: { count: 1, names: [`${origin.url}/h`] }, removed: { count: 0 } },
  })
  t.notMatch(JSON.stringify(lines), 'secret-of-the-ucdn', 'no log line holds the query')
})

t.test('a year of freshness is one poll, not a timer that fires at once', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=31536000',
  })
  const s = await follower(t, origin)
  t.ok(await until(async () => (await get(s)) === 200))
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const metrics = await fetch(`${s.apiUrl}/metrics`).then((r) => r.text())
  const polls = [...metrics.matchAll(/cdni_authz_follow_polls_total\{[^}]*\} (\d+)/g)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  )
  t.equal(polls, 1, 'one poll in a second')
  t.equal(origin.requests.length, 1)
})

t.test('a failing source is polled again after exponential backoff, jittered by the dice', async (t) => {
  const origin = await metadataServer(t)
  origin.failWith = 503
  const dice: number[] = []
  // A fixed throw of 0.05: the waits are 5% of 2, 4, 8 and 16 s (100, 200, 400 and 800 ms).
  const random = () => {
    dice.push(0.05)
    return 0.05
  }
  await follower(t, origin, { followInterval: 60_000 }, { follower: { random } })
  t.ok(await until(() => origin.requests.length >= 5, 10_000))
  const at = origin.requests.slice(0, 5).map((r) => r.at)
  const waits = at.slice(1).map((time, i) => time - (at[i] as number))
  waits.forEach((wait, i) => t.ok(wait >= 100 * 2 ** i - 5, `wait ${i + 1}: ${wait} ms, at least ${100 * 2 ** i}`))
  t.ok(dice.length >= 4, 'each wait thrown anew')
})

t.test('a token sent over plain http to another machine is warned of; to this one it is not', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex' })
  const warnings = async (url: string) => {
    const lines: Record<string, any>[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) })
    const s = await follower(t, [url], { followToken: 'source-token' }, { logger })
    await s.surrogate.close()
    return lines.filter((line) => /over plain http/.test(line.msg)).map((line) => line.cdniAuthz.source)
  }
  // TEST-NET-1 (RFC 5737): never answers; the warning comes before any request.
  t.same(await warnings('http://192.0.2.1:9/index?key=secret'), ['http://192.0.2.1:9/index'])
  t.same(await warnings(`${origin.url}/index`), [], '127.0.0.1: this machine')
})
