import t from 'tap'
import { Agent } from 'undici'
import {
  DEFAULT_LIMITS,
  fetchTree,
  LEAST_FRESHNESS,
  type CachedResource,
  type FetchContext,
} from '../src/follow/tree.js'
import { metadataServer } from './helpers/metadata-server.js'

const agent = new Agent()
t.teardown(() => agent.close())

function context(patch: Partial<FetchContext['limits']> = {}, token: string | null = null): FetchContext {
  return { dispatcher: agent, token, limits: { ...DEFAULT_LIMITS, ...patch }, interval: 30_000, now: Date.now }
}

const match = (host: string, metadata: unknown = { metadata: [] }) => ({ host, 'host-metadata': metadata })

t.test('Links resolve against the resource holding them, and each resource is fetched once', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/a/index', {
    body: JSON.stringify({ hosts: [{ href: 'h1' }, { href: '../b/h2', type: 'MI.HostMatch' }] }),
  })
  origin.set('/a/h1', { body: JSON.stringify(match('one.example', { href: '/shared' })), ptype: 'MI.HostMatch' })
  origin.set('/b/h2', { body: JSON.stringify(match('two.example', { href: '/shared#x' })), ptype: 'MI.HostMatch' })
  origin.set('/shared', { body: JSON.stringify({ metadata: [] }), ptype: 'MI.HostMetadata' })
  const tree = await fetchTree(`${origin.url}/a/index`, new Map(), context())
  t.same(tree.document, { hosts: [match('one.example', { metadata: [] }), match('two.example', { metadata: [] })] })
  t.equal(tree.rootText, null, 'a root with Links is assembled, not kept as it came')
  t.equal(tree.changed, true)
  t.same(
    origin.requests.map((r) => r.path).sort(),
    ['/a/h1', '/a/index', '/b/h2', '/shared'],
    'the shared HostMetadata once, the fragment dropped',
  )
  t.match(origin.requests[0]?.headers.accept, /application\/cdni; ptype=MI\.HostIndex/)
})

t.test('a cached tree is revalidated with its validators, and 304s change nothing', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [{ href: '/h' }] }), ptype: 'MI.HostIndex' })
  origin.set('/h', {
    body: JSON.stringify(match('one.example')),
    ptype: 'MI.HostMatch',
    lastModified: 'Mon, 01 Jun 2026 00:00:00 GMT',
  })
  const first = await fetchTree(`${origin.url}/index`, new Map(), context(), true)
  const second = await fetchTree(`${origin.url}/index`, first.resources, context(), true)
  t.equal(second.changed, false)
  t.equal(second.requests, 2)
  t.equal(second.notModified, 2)
  t.ok(
    origin.requests.slice(2).every((r) => typeof r.headers['if-none-match'] === 'string'),
    'If-None-Match sent',
  )
  t.equal(origin.requests.at(-1)?.headers['if-modified-since'], 'Mon, 01 Jun 2026 00:00:00 GMT')
  origin.set('/h', { body: JSON.stringify(match('two.example')), ptype: 'MI.HostMatch' })
  const third = await fetchTree(`${origin.url}/index`, second.resources, context(), true)
  t.equal(third.changed, true)
  t.equal(third.notModified, 1)
  t.match(third.document, { hosts: [{ host: 'two.example' }] })
})

t.test('a resource fresh by max-age is not asked for again; one without freshness lives one interval', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', {
    body: JSON.stringify({ hosts: [{ href: '/h' }] }),
    ptype: 'MI.HostIndex',
    cacheControl: 'max-age=3600, stale-if-error=600',
  })
  origin.set('/h', { body: JSON.stringify(match('one.example')), ptype: 'MI.HostMatch' })
  const now = Date.now()
  const first = await fetchTree(`${origin.url}/index`, new Map(), { ...context(), now: () => now })
  const index = first.resources.get(`${origin.url}/index`) as CachedResource
  const host = first.resources.get(`${origin.url}/h`) as CachedResource
  t.ok(Math.abs(index.freshUntil - (now + 3_600_000)) < 1000, 'max-age')
  t.equal(index.staleIfError, 600_000)
  t.equal(host.freshUntil, now + 30_000, 'the interval')
  const later = await fetchTree(`${origin.url}/index`, first.resources, { ...context(), now: () => now + 25_000 })
  t.equal(later.requests, 1, 'only the resource past 80% of its freshness')
  t.equal(origin.requests.at(-1)?.path, '/h')
})

t.test('a fetch fails whole, naming the resource, on anything the tree cannot be', async (t) => {
  const origin = await metadataServer(t)
  const root = `${origin.url}/index`
  const fails = async (message: RegExp, patch: Partial<FetchContext['limits']> = {}) =>
    t.rejects(fetchTree(root, new Map(), context(patch)), message)
  const index = (...hosts: unknown[]) =>
    origin.set('/index', { body: JSON.stringify({ hosts }), ptype: 'MI.HostIndex' })

  index({ href: '/missing' })
  await fails(/\/missing: answered 404/)
  index({ href: 'http://other.example/h' })
  await fails(/links to http:\/\/other\.example\/h, outside the source/)
  index({ href: 7 })
  await fails(/"href" is not a string/)
  index({ href: 'http://[' })
  await fails(/which is no URL/)
  index({ href: '/h', type: 'MI.PathMatch' })
  await fails(/Link of type MI\.PathMatch where an MI\.HostMatch is expected/)
  index({ href: '/h' })
  origin.set('/h', { body: JSON.stringify(match('one.example')), ptype: 'MI.PathMatch' })
  await fails(
    /\/h: is application\/cdni; ptype=MI\.PathMatch, where application\/cdni; ptype=MI\.HostMatch is expected/,
  )
  origin.set('/h', { body: '<html>', contentType: 'text/html' })
  await fails(/is text\/html/)
  origin.set('/h', { body: '{ not json', ptype: 'MI.HostMatch' })
  await fails(/\/h: is not JSON/)
  origin.set('/h', { body: JSON.stringify(match('one.example', { paths: [{ href: '/p' }] })), ptype: 'MI.HostMatch' })
  origin.set('/p', {
    body: JSON.stringify({ 'path-pattern': { pattern: '/*' }, 'path-metadata': { href: '/pm' } }),
    ptype: 'MI.PathMatch',
  })
  origin.set('/pm', { body: JSON.stringify({ paths: [{ href: '/p' }] }), ptype: 'MI.PathMetadata' })
  await fails(/links back to .*\/p, which links here: a loop/)
  origin.set('/pm', { body: JSON.stringify({ metadata: [] }), ptype: 'MI.PathMetadata' })
  await fails(/more than 2 Links deep/, { depth: 2 })
  await fails(/one resource more than the 3/, { objects: 3 })
  await fails(/: is larger than the 20 bytes/, { resourceBytes: 20 })
  origin.set('/pm', { body: JSON.stringify({ metadata: [] }), ptype: 'MI.PathMetadata', delay: 2500 })
  await fails(/\/pm: cannot be fetched: .*time ?out/i, { timeout: 100 })
  origin.set('/pm', { body: JSON.stringify({ metadata: [] }), drip: 50 })
  await fails(/\/pm: broke off: .*abort/i, { timeout: 100 })
  origin.set('/pm', { body: JSON.stringify({ metadata: [] }), ptype: 'MI.PathMetadata' })
  origin.set('/index', { body: JSON.stringify({ hosts: [{ href: '/h' }] }), status: 301 })
  await fails(/index: answered 301/)
  await origin.close()
  await fails(/index: cannot be fetched: /)
})

t.test('a resource linked many times counts against the tree limit each time', async (t) => {
  const origin = await metadataServer(t)
  const links = Array.from({ length: 5 }, () => ({ href: '/h' }))
  origin.set('/index', { body: JSON.stringify({ hosts: links }), ptype: 'MI.HostIndex' })
  origin.set('/h', { body: JSON.stringify(match('one.example')), ptype: 'MI.HostMatch' })
  const tree = await fetchTree(`${origin.url}/index`, new Map(), context())
  t.equal((tree.document as { hosts: unknown[] }).hosts.length, 5)
  t.equal(origin.requests.length, 2, 'fetched once')
  await t.rejects(
    fetchTree(`${origin.url}/index`, new Map(), context({ treeBytes: 300 })),
    /\/h: takes the tree past 300 bytes/,
  )
  await t.rejects(fetchTree(`${origin.url}/index`, new Map(), context({ objects: 4 })), /one Link more than the 4/)
})

t.test('a resource that goes backwards (an older Last-Modified) is refused', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [] }), lastModified: 'Tue, 02 Jun 2026 00:00:00 GMT' })
  const first = await fetchTree(`${origin.url}/index`, new Map(), context())
  origin.set('/index', {
    body: JSON.stringify({ hosts: [match('old.example')] }),
    lastModified: 'Mon, 01 Jun 2026 00:00:00 GMT',
  })
  await t.rejects(fetchTree(`${origin.url}/index`, first.resources, context(), true), /went backwards/)
})

t.test('the token goes to the source, in Authorization', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [] }) })
  const tree = await fetchTree(`${origin.url}/index`, new Map(), context({}, 'source-token'))
  t.equal(origin.requests[0]?.headers.authorization, 'Bearer source-token')
  t.equal(tree.rootText, JSON.stringify({ hosts: [] }), 'a root without Links is kept as it came')
})

t.test('what a source answers that is no metadata resource', async (t) => {
  const origin = await metadataServer(t)
  const root = `${origin.url}/index`
  origin.set('/index', { body: JSON.stringify({ hosts: [{ href: '/h' }] }), ptype: 'MI.HostIndex' })
  origin.set('/h', { body: JSON.stringify(match('one.example')), contentType: '' })
  await t.rejects(
    fetchTree(root, new Map(), context()),
    /\/h: is sent without a media type, where application\/cdni; ptype=MI\.HostMatch/,
  )
  origin.set('/h', { body: JSON.stringify(match('one.example')), contentType: 'application/cdni' })
  await t.rejects(
    fetchTree(root, new Map(), context()),
    /\/h: is application\/cdni, where/,
    'a CDNI type without its ptype',
  )
  origin.set('/h', {
    body: JSON.stringify(match('one.example', { metadata: [{ href: '/acl' }] })),
    ptype: 'MI.HostMatch',
  })
  origin.set('/acl', { body: '<html>', contentType: 'text/html' })
  await t.rejects(fetchTree(root, new Map(), context()), /\/acl: is text\/html, where CDNI metadata is expected/)
  origin.set('/acl', { body: JSON.stringify({ 'generic-metadata-type': 'MI.LocationACL' }), truncate: true })
  await t.rejects(fetchTree(root, new Map(), context()), /\/acl: broke off/)
})

t.test('a 304 for another representation than the one held fails the fetch', async (t) => {
  const origin = await metadataServer(t)
  origin.set('/index', { body: JSON.stringify({ hosts: [] }) })
  const first = await fetchTree(`${origin.url}/index`, new Map(), context())
  origin.set('/index', { body: '', status: 304, headers: { etag: '"another"' } })
  await t.rejects(
    fetchTree(`${origin.url}/index`, first.resources, context(), true),
    /answered 304 for a representation other than/,
  )
})

t.test(
  'values that are no objects are left for validation, and a resource gone from the tree is a change',
  async (t) => {
    const origin = await metadataServer(t)
    origin.set('/index', { body: JSON.stringify({ hosts: [7, match('one.example', 'text')] }) })
    const stale = { url: `${origin.url}/gone` } as CachedResource
    const tree = await fetchTree(`${origin.url}/index`, new Map(), context())
    t.same(tree.document, { hosts: [7, match('one.example', 'text')] })
    const again = await fetchTree(`${origin.url}/index`, new Map([...tree.resources, [stale.url, stale]]), context())
    t.equal(again.changed, true)
    t.equal(again.requests, 0, 'the root still fresh')
  },
)

t.test('no more requests than the concurrency limit are in flight', async (t) => {
  const origin = await metadataServer(t)
  const hosts = Array.from({ length: 6 }, (_, i) => ({ href: `/h${i}` }))
  origin.set('/index', { body: JSON.stringify({ hosts }), ptype: 'MI.HostIndex' })
  for (let i = 0; i < 6; i++) {
    origin.set(`/h${i}`, { body: JSON.stringify(match(`h${i}.example`)), ptype: 'MI.HostMatch', delay: 50 })
  }
  const counting = context({ concurrency: 2 })
  const tree = await fetchTree(`${origin.url}/index`, new Map(), counting)
  t.equal((tree.document as { hosts: unknown[] }).hosts.length, 6)
  t.equal(origin.mostInFlight, 2, 'two at once, never more')
})

t.test('freshness is what the source states: none, zero, Expires, kept across 304s, bounded', async (t) => {
  const origin = await metadataServer(t)
  const root = `${origin.url}/index`
  const body = JSON.stringify({ hosts: [] })
  const now = Date.now()
  const at = { ...context(), now: () => now }
  const freshFor = async (resource: Record<string, string>, cache = new Map<string, CachedResource>()) => {
    origin.set('/index', { body, ...resource })
    const tree = await fetchTree(root, cache, at, true)
    const held = tree.resources.get(root) as CachedResource
    return { ms: held.freshUntil - now, staleIfError: held.staleIfError, tree }
  }
  t.equal((await freshFor({})).ms, 30_000, 'none stated: the interval')
  for (const stated of ['max-age=0', 'no-cache', 'no-store', 'max-age=10, no-cache']) {
    t.equal(
      (await freshFor({ cacheControl: stated })).ms,
      LEAST_FRESHNESS,
      `${stated}: stale at once, not the interval`,
    )
  }
  t.equal(
    (await freshFor({ expires: new Date(now - 60_000).toUTCString() })).ms,
    LEAST_FRESHNESS,
    'an Expires past: stale at once',
  )
  const expires = await freshFor({ expires: new Date(now + 120_000).toUTCString() })
  t.ok(Math.abs(expires.ms - 120_000) <= 2000, `an Expires two minutes on (${expires.ms} ms)`)
  const stated = await freshFor({ cacheControl: 'max-age=600' })
  // The 304 repeats no Cache-Control: the freshness the 200 gave holds (RFC 9111 section 4.3.4).
  const held = (stated.tree.resources.get(root) as CachedResource).policy.resh.etag as string
  origin.set('/index', { body, status: 304, headers: { etag: held } })
  const revalidated = await fetchTree(root, stated.tree.resources, at, true)
  t.equal(revalidated.notModified, 1)
  t.ok(
    Math.abs((revalidated.resources.get(root) as CachedResource).freshUntil - now - 600_000) <= 2000,
    'max-age kept across a 304 without one',
  )
  t.equal((await freshFor({ cacheControl: 'max-age=60, stale-if-error=30' })).staleIfError, 30_000)
  t.equal(
    (await freshFor({ cacheControl: 'max-age=60, stale-if-error=30, must-revalidate' })).staleIfError,
    0,
    'must-revalidate: no stale use',
  )
  t.equal(
    (await freshFor({ cacheControl: 'max-age=60, stale-if-error=99999999' })).staleIfError,
    7 * 24 * 3600 * 1000,
    'stale-if-error at most a week, as followMaxStale',
  )
})

t.test('the first failure ends the fetch: nothing queued behind it is requested', async (t) => {
  const origin = await metadataServer(t)
  const hosts = [{ href: '/missing' }, ...Array.from({ length: 20 }, (_, i) => ({ href: `/h${i}` }))]
  origin.set('/index', { body: JSON.stringify({ hosts }), ptype: 'MI.HostIndex' })
  for (let i = 0; i < 20; i++) {
    origin.set(`/h${i}`, { body: JSON.stringify(match(`h${i}.example`)), ptype: 'MI.HostMatch', delay: 200 })
  }
  await t.rejects(fetchTree(`${origin.url}/index`, new Map(), context({ concurrency: 2 })), /\/missing: answered 404/)
  // Let anything still running show itself: the requests in flight end aborted, none follows.
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.ok(origin.requests.length <= 3, `the root, the failure and at most one in flight (${origin.requests.length})`)
})

t.test('errors name a resource without its query, which may carry a credential', async (t) => {
  const origin = await metadataServer(t)
  const message = await fetchTree(`${origin.url}/index?key=secret-of-the-ucdn`, new Map(), context()).then(
    () => 'fetched',
    (err: Error) => err.message,
  )
  t.equal(message, `${origin.url}/index: answered 404; a metadata resource must answer 200 or 304`)
})
