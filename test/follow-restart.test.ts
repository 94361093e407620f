import t from 'tap'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { config, start } from './helpers/surrogate.js'
import { metadataServer } from './helpers/metadata-server.js'
import { CLIENT, get, HOST, hostIndex, readyz, status, until, version } from './helpers/follow.js'

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

t.test('a restart serves a kept tree of Links, assembled, while fresh', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify({ hosts: [{ href: '/h' }] }),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=3600',
  })
  origin.set('/h', {
    body: JSON.stringify(hostIndex(HOST, CLIENT).hosts[0]),
    ptype: 'MI.HostMatch',
    cacheControl: 'max-age=3600',
  })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  await first.surrogate.close()
  const kept = JSON.parse(readFileSync(join(cfg.stateDir, 'follow.json'), 'utf8'))
  t.equal(kept.sources[`${origin.url}/index`].accepted.text, null, 'a tree of Links keeps no text of its own')
  await origin.close()
  const second = await start(cfg)
  t.teardown(() => second.surrogate.close())
  t.equal(await get(second), 200, 'served from the kept tree, the source down')
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
  // A change that cannot be stored: the next 304s are for a tree that is not live, and revalidate
  // nothing; once the disk allows, the change goes live.
  // The first refusal's error stays in the status (lastError is the last one, not a current one):
  // wait for a newer one.
  const before = (await status(s)).following[0].lastError?.at
  rmSync(join(cfg.stateDir, 'state.json'))
  mkdirSync(join(cfg.stateDir, 'state.json'))
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, '198.51.100.0/24')),
    ptype: 'MI.HostIndex',
    lastModified: 'Tue, 02 Jun 2026 00:00:00 GMT',
    noEtag: true,
  })
  t.ok(
    await until(async () => {
      const error = (await status(s)).following[0].lastError
      return error !== null && error.at !== before && /could not store/.test(error.message)
    }),
  )
  const lastSuccess = (await status(s)).following[0].lastSuccess
  const seen = origin.requests.length
  t.ok(
    await until(() => origin.requests.slice(seen).filter((r) => r.status === 304).length >= 2),
    '304s for the new tree',
  )
  t.equal((await status(s)).following[0].lastSuccess, lastSuccess, 'which revalidate nothing')
  t.ok(await until(async () => (await status(s)).following[0].staleSince !== null), 'so the old policy goes stale')
  t.equal(await get(s), 403)
  rmSync(join(cfg.stateDir, 'state.json'), { recursive: true })
  t.ok(await until(async () => (await get(s)) === 200), 'the change, once stored')
  t.equal(await version(s), 2)
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
    JSON.stringify({ ...kept, sources: { [url]: { ...kept.sources[url], resources: [null] } } }),
    JSON.stringify({ ...kept, sources: { [url]: { ...kept.sources[url], accepted: { text: 7 } } } }),
    JSON.stringify({ ...kept, sources: { [url]: { ...kept.sources[url], accepted: { document: {}, text: 7 } } } }),
    JSON.stringify({ ...kept, format: undefined }),
    ...[
      { body: 7 },
      { url: 'not a URL' },
      { freshUntil: 'soon' },
      { policy: {} },
      { policy: { v: 1, resh: 1 } },
      { policy: { ...kept.sources[url].resources[0].policy, rescc: undefined } },
    ].map((patch) =>
      JSON.stringify({
        ...kept,
        sources: { [url]: { ...kept.sources[url], resources: [{ ...kept.sources[url].resources[0], ...patch }] } },
      }),
    ),
    JSON.stringify({ ...kept, sources: { ...kept.sources, 'http://127.0.0.1:9/gone': kept.sources[url] } }),
  ]) {
    writeFileSync(join(cfg.stateDir, 'follow.json'), damaged)
    // The source failing until the first check: a first poll as fast as the start cannot serve it.
    origin.failWith = 503
    const requests = origin.requests.length
    const again = await start(cfg)
    t.equal(await get(again), 403, 'not served before a fetch')
    origin.failWith = null
    t.ok(await until(async () => (await get(again)) === 200))
    t.equal(await version(again), 1, 'the same document: not compiled again')
    const fetched = origin.requests.slice(requests).find((r) => r.status !== 503)
    t.match(fetched, { status: 200, headers: { 'if-none-match': undefined } }, 'fetched whole, no validators kept')
    await again.surrogate.close()
  }
})

t.test('a restart past its kept freshness denies until revalidated, whatever its max-stale', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=1',
  })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300, followMaxStale: 60_000 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  await first.surrogate.close()
  origin.failWith = 503
  await new Promise((resolve) => setTimeout(resolve, 1200))
  const second = await start(cfg)
  t.teardown(() => second.surrogate.close())
  t.equal(await get(second), 403, 'kept past its freshness: not served before a revalidation')
  origin.failWith = null
  t.ok(await until(async () => (await get(second)) === 200), 'revalidated')
})

t.test(
  "a restart following fewer sources than it kept fetches afresh: the dropped source's hosts are not served",
  async (t) => {
    const a = await metadataServer(t)
    const b = await metadataServer(t)
    for (const [server, host] of [
      [a, 'a.example'],
      [b, 'b.example'],
    ] as const) {
      server.set('/index', {
        body: JSON.stringify(hostIndex(host, CLIENT)),
        ptype: 'MI.HostIndex',
        cacheControl: 'max-age=3600',
      })
    }
    const cfg = config({ follow: [`${a.url}/index`, `${b.url}/index`], followInterval: 300, rootLayout: 'per-host' })
    for (const host of ['a.example', 'b.example']) {
      mkdirSync(join(cfg.root as string, host))
      writeFileSync(join(cfg.root as string, host, 'hello.txt'), host)
    }
    const first = await start(cfg)
    t.ok(await until(async () => (await get(first, 'a.example')) === 200 && (await get(first, 'b.example')) === 200))
    await first.surrogate.close()
    a.failWith = 503
    const second = await start({ ...cfg, follow: [`${a.url}/index`] })
    t.teardown(() => second.surrogate.close())
    t.equal(
      await get(second, 'b.example'),
      403,
      'b is no longer followed: nothing makes its part stale, so it is not served',
    )
    t.equal(await get(second, 'a.example'), 403, 'nor, until fetched, what a governs')
    t.equal((await readyz(second)).status, 503)
    a.failWith = null
    t.ok(await until(async () => (await get(second, 'a.example')) === 200))
    t.equal(await get(second, 'b.example'), 403, "once a's tree is live, b's hosts are gone from the policy")
  },
)

t.test('a part restored fresh goes stale as any other once its source cannot be reached', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify(hostIndex(HOST, CLIENT)),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=6',
  })
  const lines: Record<string, any>[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  const cfg = config({ follow: [`${origin.url}/index`], followInterval: 300 })
  const first = await start(cfg)
  t.ok(await until(async () => (await get(first)) === 200))
  // A revalidation after the first compile, kept: the restart then has most of six seconds.
  const seen = origin.requests.length
  t.ok(await until(() => origin.requests.slice(seen).some((r) => r.status === 304)))
  await first.surrogate.close()
  origin.failWith = 503
  const second = await start(cfg, { logger })
  t.teardown(() => second.surrogate.close())
  t.equal(await get(second), 200, 'served while fresh')
  t.ok(await until(async () => (await get(second)) === 403), 'then denied')
  t.ok(
    lines.some((line) => line.level === 50 && /stale and cannot be revalidated/.test(line.msg)),
    'logged as an error: it was tried and failed, not waiting for a first fetch',
  )
})
