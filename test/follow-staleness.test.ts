import t from 'tap'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AUTH, config, start, TOKEN } from './helpers/surrogate.js'
import { metadataServer } from './helpers/metadata-server.js'
import { CLIENT, follower, get, handedOn, HOST, hostIndex, readyz, status, until, version } from './helpers/follow.js'

t.test(
  'a stale policy denies (metadata-stale) once past freshness and stale-if-error, and recovers at once',
  async (t) => {
    const origin = await metadataServer(t)
    origin.set('/index', {
      body: JSON.stringify(hostIndex(HOST, CLIENT)),
      ptype: 'MI.HostIndex',
      cacheControl: 'max-age=2, stale-if-error=1',
    })
    const s = await follower(t, origin, { followMaxStale: 0 })
    t.ok(await until(async () => (await get(s)) === 200))
    // A revalidation after the first compile, so that the last success is recent: on a loaded
    // machine the compile alone can take most of the freshness, and the policy would go stale
    // before the source ever failed (it did, in CI).
    const seen = origin.requests.length
    t.ok(await until(() => origin.requests.slice(seen).some((r) => r.status === 304)))
    origin.failWith = 503
    const failed = Date.now()
    t.ok(await until(async () => (await get(s)) === 403), 'denied once stale')
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
    t.ok(await until(async () => (await get(s)) === 403), 'then denied')
    t.ok(Date.now() - closed >= 3500, 'not before its interval and max-stale ran out')
    await origin.reopen()
    t.ok(await until(async () => (await get(s)) === 200, 15_000), 'back once it returns')
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
  t.ok(await until(async () => (await status(s)).following[0].lastError !== null))
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
  t.ok(await until(async () => (await get(s, 'b.example')) === 403), "b's hosts denied once stale")
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
  t.match(
    await fetch(`${s.apiUrl}/metrics`).then((r) => r.text()),
    new RegExp(`cdni_authz_follow_polls_total\\{source="${b.url}/index",result="refused"\\} [1-9]`),
    'counted as a refusal',
  )
  // a keeps succeeding, and keeps the caches: b's kept part is the one accepted, with the
  // resources it came from, not the refused tree b now serves (a restart would take that for live).
  const refusedAt = Date.parse((await status(s)).following[1].lastError.at)
  const file = join(cfg.stateDir, 'follow.json')
  t.ok(await until(() => statSync(file).mtimeMs > refusedAt + 50), 'saved again since the refusal')
  const kept = JSON.parse(readFileSync(file, 'utf8')).sources[`${b.url}/index`]
  t.equal(kept.resources[0].body, JSON.stringify(hostIndex('b.example', CLIENT)), 'the accepted tree kept')
})

t.test('down a tree of surrogates: the middle hands on its freshness, and once stale, nothing', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=2',
  })
  const middle = await follower(t, origin, { followMaxStale: 0 })
  t.ok(await until(async () => (await get(middle)) === 200))
  const seen = origin.requests.length
  t.ok(await until(() => origin.requests.slice(seen).some((r) => r.status === 304)))
  t.match(
    (await handedOn(middle)).headers.get('cache-control'),
    /^max-age=[0-2]$/,
    'no fresher than the middle holds it',
  )
  const leaf = await follower(t, [`${middle.apiUrl}/cdni/metadata`], { followToken: TOKEN, followMaxStale: 0 })
  t.ok(await until(async () => (await get(leaf)) === 200))
  origin.failWith = 503
  t.ok(await until(async () => (await get(middle)) === 403), 'the middle fails closed')
  const stale = await fetch(`${middle.apiUrl}/cdni/metadata`, { headers: AUTH })
  t.equal(stale.status, 503, 'and hands on no stale metadata')
  t.match(await stale.json(), { message: /followed metadata is stale/ })
  t.ok(await until(async () => (await get(leaf)) === 403), 'so the leaf fails closed too')
  t.match(await readyz(leaf), { status: 503 })
  origin.failWith = null
  t.ok(await until(async () => (await get(leaf)) === 200), 'both recover with the source')
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

for (const cacheControl of ['max-age=2, must-revalidate, stale-if-error=600', 'no-cache, stale-if-error=600']) {
  t.test(`${cacheControl}: not served stale at all, whatever followMaxStale allows, and handed on so`, async (t) => {
    const origin = await metadataServer(t)
    origin.set('/index', { body: JSON.stringify(hostIndex(HOST, CLIENT)), ptype: 'MI.HostIndex', cacheControl })
    const s = await follower(t, origin, { followMaxStale: 600_000 })
    t.ok(await until(async () => (await get(s)) === 200))
    t.match(
      (await handedOn(s)).headers.get('cache-control'),
      /^max-age=\d, must-revalidate$/,
      'a surrogate following this one is told',
    )
    origin.failWith = 503
    t.ok(await until(async () => (await get(s)) === 403), 'denied once past its freshness')
    t.match((await status(s)).following[0], { staleSince: String })
  })
}

t.test('a surrogate serving on its allowance hands on nothing: the allowances of a tree do not add up', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  const middle = await follower(t, origin, { followMaxStale: 600_000 })
  t.ok(await until(async () => (await get(middle)) === 200))
  origin.failWith = 503
  const fetchDocument = () => fetch(`${middle.apiUrl}/cdni/metadata`, { headers: AUTH })
  let refusal: Response | null = null
  t.ok(
    await until(async () => {
      refusal = await fetchDocument()
      return refusal.status === 503
    }),
    'not handed on once past its freshness',
  )
  t.match(await (refusal as unknown as Response).json(), { message: /past its freshness and not yet revalidated/ })
  t.equal(await get(middle), 200, 'while it still serves its own requests on its allowance')
  origin.failWith = null
  t.ok(await until(async () => (await fetchDocument()).status === 200), 'handed on again once revalidated')
})
