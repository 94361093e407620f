import t from 'tap'
import { writeFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import https from 'node:https'
import { pino } from 'pino'
import { AUTH, TOKEN, allowing, config, start, workspace } from './helpers/surrogate.js'
import { buildApi } from '../src/surrogate/api.js'
import type { CdniAuthz } from '../src/plugin/plugin.js'
import { Publisher } from '../src/surrogate/publisher.js'
import { StateStore } from '../src/surrogate/state.js'
import { createSurrogate } from '../src/surrogate/server.js'

t.test('PUT, GET and HEAD /cdni/metadata with ETags, over real HTTP', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  const nothing = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
  t.equal(nothing.status, 404, 'nothing accepted yet')
  t.equal(
    await nothing.text(),
    JSON.stringify({ statusCode: 404, error: 'Not Found', message: 'no metadata has been accepted yet' }),
  )
  const unmet = await s.push(allowing('10.0.0.0/8'), { 'if-match': '"sha256-x"' })
  t.equal(unmet.status, 412, 'If-Match with nothing live')
  t.equal(
    await unmet.text(),
    JSON.stringify({ statusCode: 412, error: 'Precondition Failed', message: "the live document's ETag is (none)" }),
  )
  t.equal((await s.push(allowing('10.0.0.0/8'), { 'if-match': '*' })).status, 412, 'If-Match: * with nothing live')
  t.equal(await s.fetchAs('10.1.1.1'), 403, 'no policy: deny')

  const first = await s.push(allowing('10.0.0.0/8'), { 'if-none-match': '*' })
  t.equal(first.status, 200, 'If-None-Match: * creates')
  const body = (await first.json()) as {
    version: number
    etag: string
    warnings: unknown[]
    summary: { ipv4Prefixes: number }
  }
  t.match(body, { version: 1, etag: /^"sha256-[\w-]+"$/, warnings: [], summary: { ipv4Prefixes: 1, rules: 1 } })
  t.equal(first.headers.get('etag'), body.etag)
  t.equal(await s.fetchAs('10.1.1.1'), 200)

  const got = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
  t.equal(got.headers.get('etag'), body.etag)
  t.same(await got.json(), allowing('10.0.0.0/8'), 'the live document as pushed')
  const head = await fetch(`${s.apiUrl}/cdni/metadata`, { method: 'HEAD', headers: AUTH })
  t.equal(head.status, 200)
  t.equal(head.headers.get('etag'), body.etag)
  t.equal((await fetch(`${s.apiUrl}/cdni/metadata`, { headers: { ...AUTH, 'if-none-match': body.etag } })).status, 304)
  t.equal(
    (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: { ...AUTH, 'if-none-match': '"sha256-other"' } })).status,
    200,
  )

  const stale = await s.push(allowing('11.0.0.0/8'), { 'if-match': '"sha256-stale"' })
  t.equal(stale.status, 412, 'a stale If-Match loses nothing')
  t.match(await stale.json(), { message: new RegExp(body.etag.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')) })
  t.equal((await s.push(allowing('11.0.0.0/8'), { 'if-none-match': '*' })).status, 412, 'If-None-Match: * only creates')
  const next = await s.push(allowing('11.0.0.0/8'), {
    'if-match': `"sha256-other", ${body.etag}`,
    'if-none-match': '"sha256-other"',
  })
  t.equal(next.status, 200, 'the current ETag wins')
  t.match(await next.json(), { version: 2 })
  t.equal(await s.fetchAs('10.1.1.1'), 403)
  t.equal(await s.fetchAs('11.1.1.1'), 200)
  t.equal((await s.push(allowing('12.0.0.0/8'), { 'if-match': '*' })).status, 200, 'If-Match: * with a live document')
  const metrics = await (await fetch(`${s.apiUrl}/metrics`)).text()
  for (const line of [
    'cdni_authz_push_total{result="precondition_failed"} 4',
    'cdni_authz_push_total{result="accepted"} 3',
  ]) {
    t.ok(metrics.includes(line), line)
  }
})

t.test('refusals: 400 with every error, 401, 413, 415, and the live policy untouched', async (t) => {
  const s = await start(config({ bodyLimit: 4096 }))
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(allowing('10.0.0.0/8'))).status, 200)

  const invalid = await s.push({ deliveryCriteria: [{ region: { subnet: '10.0.0.0/33' } }, { protocol: 'ftp' }] })
  t.equal(invalid.status, 400)
  const refusal = (await invalid.json()) as object
  t.same(Object.keys(refusal), ['statusCode', 'error', 'message', 'errors', 'warnings'])
  t.match(refusal, {
    statusCode: 400,
    error: 'Bad Request',
    message: 'metadata refused; the live policy is unchanged',
    errors: [{ pointer: '/deliveryCriteria/1/protocol' }],
  })
  const syntax = await s.push('{ "deliveryCriteria": [ }')
  t.match(await syntax.json(), { errors: [{ pointer: '', message: /line 1, column 25/ }] })
  for (const headers of [
    { authorization: 'Bearer wrong' },
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: TOKEN },
    { authorization: `bearer ${TOKEN}` },
  ]) {
    const denied = await s.push(allowing('11.0.0.0/8'), headers)
    t.equal(denied.status, 401, `refuses ${headers.authorization.slice(0, 12)}...`)
    t.equal(denied.headers.get('www-authenticate'), 'Bearer realm="cdni-authz"')
  }
  const anonymous = await fetch(`${s.apiUrl}/cdni/metadata`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  })
  t.equal(anonymous.status, 401)
  t.equal((await fetch(`${s.apiUrl}/cdni/metadata`)).status, 401, 'reading needs the token too')
  t.equal((await s.push(allowing('11.0.0.0/8'), { 'content-type': 'text/plain' })).status, 415)
  const huge = {
    deliveryCriteria: [{ region: { subnet: Array.from({ length: 400 }, (_, i) => `10.${i % 250}.0.0/16`) } }],
  }
  t.equal((await s.push(huge)).status, 413)
  const elsewhere = await fetch(`${s.apiUrl}/cdni/other`, {
    method: 'PUT',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify(huge),
  })
  t.equal(elsewhere.status, 413, 'too large on another path too, where it is no push: too_large below stays 1')
  t.equal(await s.fetchAs('10.1.1.1'), 200, 'the first policy is still live')
  t.equal(await s.fetchAs('11.1.1.1'), 403)
  const metrics = await (await fetch(`${s.apiUrl}/metrics`)).text()
  for (const line of [
    'cdni_authz_push_total{result="accepted"} 1',
    'cdni_authz_push_total{result="invalid"} 2',
    'cdni_authz_push_total{result="unauthorized"} 6',
    'cdni_authz_push_total{result="too_large"} 1',
    'cdni_authz_push_total{result="unsupported_media_type"} 1',
    'cdni_authz_decisions_total{outcome="allow",reason="rule"} 1',
    'cdni_authz_decisions_total{outcome="deny",reason="no-rule-matched"} 1',
    'cdni_authz_policy_version 1',
    'cdni_authz_policy_prefixes{kind="ipv4"} 1',
  ]) {
    t.ok(metrics.includes(line), line)
  }
  t.match(metrics, /cdni_authz_policy_compile_seconds \d/)
})

t.test('/healthz is alive at once, /readyz only once a policy is loaded', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  t.equal((await fetch(`${s.apiUrl}/healthz`)).status, 200)
  const unready = await fetch(`${s.apiUrl}/readyz`)
  t.equal(unready.status, 503)
  t.equal(
    await unready.text(),
    JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'no policy loaded yet' }),
  )
  const empty = await (await fetch(`${s.apiUrl}/metrics`)).text()
  t.ok(
    empty.includes('cdni_authz_policy_version 0') &&
      empty.includes('cdni_authz_policy_compile_seconds 0') &&
      empty.includes('cdni_authz_policy_prefixes{kind="ipv4"} 0'),
    'metrics before any policy',
  )
  await s.push(allowing('10.0.0.0/8'))
  t.match(await (await fetch(`${s.apiUrl}/readyz`)).json(), { status: 'ready', version: 1 })
})

t.test('an accepted document survives a restart; a later start prefers it to the metadata file', async (t) => {
  const cfg = config()
  const metadataFile = join(cfg.stateDir, '..', 'initial.json')
  writeFileSync(metadataFile, JSON.stringify(allowing('12.0.0.0/8')))
  const first = await start({ ...cfg, metadata: metadataFile })
  t.equal(await first.fetchAs('12.1.1.1'), 200, 'the metadata file when there is no state')
  const pushed = (await (await first.push(allowing('10.0.0.0/8'))).json()) as { etag: string; version: number }
  t.equal(pushed.version, 2)
  await first.surrogate.close()
  const second = await start({ ...cfg, metadata: metadataFile })
  t.teardown(() => second.surrogate.close())
  t.equal(await second.fetchAs('10.1.1.1'), 200, 'the pushed document, not the file')
  t.equal(await second.fetchAs('12.1.1.1'), 403)
  t.equal((await fetch(`${second.apiUrl}/cdni/metadata`, { headers: AUTH })).headers.get('etag'), pushed.etag)
  t.match(await (await second.push(allowing('11.0.0.0/8'))).json(), { version: 3 }, 'the version count continues')
})

t.test('a corrupt state, an unreadable or invalid metadata file, or no token: a clear start error', async (t) => {
  const corrupt = config()
  mkdirSync(corrupt.stateDir, { recursive: true })
  writeFileSync(join(corrupt.stateDir, 'metadata.json'), '{ "deliveryCriteria": [ ')
  await t.rejects(createSurrogate(corrupt), {
    name: 'StateError',
    message: /state file .*metadata\.json is not valid metadata.*refusing to start/,
  })
  writeFileSync(join(corrupt.stateDir, 'metadata.json'), JSON.stringify({ deliveryCriteria: [] }))
  await t.rejects(createSurrogate(corrupt), { message: /\/deliveryCriteria must not be empty/ })
  await t.rejects(createSurrogate(config({ metadata: '/nonexistent/metadata.json' })), {
    name: 'StateError',
    message: /cannot read metadata file/,
  })
  await t.rejects(createSurrogate(config({ apiToken: null })), {
    name: 'ConfigError',
    message: /refusing to run it open/,
  })
  await t.rejects(createSurrogate(config({ tlsCert: '/nonexistent/cert.pem', tlsKey: '/nonexistent/key.pem' })), {
    name: 'ConfigError',
    message: /"tlsCert": cannot read/,
  })
})

t.test('a state directory that cannot be written: 503, and the live policy keeps serving', async (t) => {
  const cfg = config()
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  // The directory disappears under the running server and a file takes its place.
  rmSync(cfg.stateDir, { recursive: true, force: true })
  writeFileSync(cfg.stateDir, 'a file where the directory should be')
  const refused = await s.push(allowing('10.0.0.0/8'))
  t.equal(refused.status, 503)
  const body = (await refused.json()) as object
  t.same(Object.keys(body), ['statusCode', 'error', 'message'])
  t.match(body, {
    statusCode: 503,
    error: 'Service Unavailable',
    message: /could not store the document \((ENOTDIR|EEXIST)\); the live policy is unchanged/,
  })
  t.ok(
    (await (await fetch(`${s.apiUrl}/metrics`)).text()).includes('cdni_authz_push_total{result="storage_error"} 1'),
    'counted as a storage error',
  )
  t.equal(await s.fetchAs('10.1.1.1'), 403, 'still no policy: nothing was swapped in')
  t.equal(readFileSync(cfg.stateDir, 'utf8'), 'a file where the directory should be')
})

t.test('proxy mode: allowed requests reach the origin, denied ones never do; close drains', async (t) => {
  const { default: Fastify } = await import('fastify')
  const origin = Fastify()
  let hits = 0
  origin.get('/*', async (request) => {
    hits++
    if (request.url === '/slow') await new Promise((resolve) => setTimeout(resolve, 300))
    return 'from origin'
  })
  const originUrl = await origin.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => origin.close())
  const s = await start(config({ root: null, origin: originUrl }))
  await s.push(allowing('10.0.0.0/8'))
  const allowed = await fetch(`${s.contentUrl}/video/1`, {
    headers: { 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'http' },
  })
  t.equal(await allowed.text(), 'from origin')
  t.equal(await s.fetchAs('11.1.1.1'), 403)
  t.equal(hits, 1)
  const slow = fetch(`${s.contentUrl}/slow`, {
    headers: { 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'http' },
  })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const closed = s.surrogate.close()
  const response = await slow
  t.equal(await response.text(), 'from origin', 'the in-flight request completes')
  t.equal(response.headers.get('connection'), 'close', 'and ends its connection so the close can finish')
  await closed
})

t.test('TLS: content and push API both speak HTTPS, and the protocol fact is https', async (t) => {
  const { base } = workspace()
  const key = join(base, 'key.pem')
  const cert = join(base, 'cert.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
    ],
    { stdio: 'ignore' },
  )
  const s = await start(config({ tlsCert: cert, tlsKey: key, trustedProxies: [] }))
  t.teardown(() => s.surrogate.close())
  t.match(s.contentUrl, /^https:/)
  t.match(s.apiUrl, /^https:/, 'the token never crosses the network in clear')
  const body = JSON.stringify({ deliveryCriteria: [{ protocol: 'https' }] })
  const pushed = await new Promise<number>((resolve, reject) => {
    const request = https.request(
      `${s.apiUrl}/cdni/metadata`,
      { method: 'PUT', rejectUnauthorized: false, headers: { ...AUTH, 'content-type': 'application/json' } },
      (response) => {
        response.resume()
        resolve(response.statusCode as number)
      },
    )
    request.on('error', reject)
    request.end(body)
  })
  t.equal(pushed, 200)
  const status = await new Promise<number>((resolve, reject) => {
    https
      .get(`${s.contentUrl}/hello.txt`, { rejectUnauthorized: false }, (response) => {
        response.resume()
        resolve(response.statusCode as number)
      })
      .on('error', reject)
  })
  t.equal(status, 200)
})

t.test('an unexpected failure inside a push is a logged 500, and changes nothing', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) })
  const authz = {
    prepare: () => Promise.reject(new Error('worker vanished')),
    version: 0,
    loaded: false,
    summary: null,
    counts: { allowed: 0, denied: { 'no-policy': 0, 'no-rule-matched': 0, 'deny-rule': 0 } },
  } as unknown as CdniAuthz
  const api = buildApi({
    authz,
    publisher: new Publisher(authz, new StateStore(workspace().stateDir), logger, null, () => null),
    token: TOKEN,
    bodyLimit: 4096,
    requestTimeout: 30_000,
    logger,
  })
  const response = await api.inject({
    method: 'PUT',
    url: '/cdni/metadata',
    headers: { ...AUTH, 'content-type': 'application/json' },
    payload: '{}',
  })
  t.equal(response.statusCode, 500)
  t.match(lines.join(''), /worker vanished/)
  t.notMatch(
    (await api.inject({ url: '/metrics' })).body,
    /cdni_authz_push_total\{/,
    'a failure of ours is no push result',
  )
})

t.test('an origin that is down: the allowed request fails upstream, and the failure is logged', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(line) })
  const { default: Fastify } = await import('fastify')
  const gone = Fastify()
  const goneUrl = await gone.listen({ host: '127.0.0.1', port: 0 })
  await gone.close()
  const surrogate = await createSurrogate(config({ root: null, origin: goneUrl, metadata: null }), { logger })
  t.teardown(() => surrogate.close())
  surrogate.content.cdniAuthz.update(allowing('10.0.0.0/8'))
  const response = await surrogate.content.inject({
    url: '/x',
    remoteAddress: '127.0.0.1',
    headers: { 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'http' },
  })
  t.ok(response.statusCode >= 500, `upstream failure answered ${response.statusCode}`)
  t.match(lines.join(''), /request failed/)
})
