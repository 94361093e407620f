// The surrogate serves the content of the host whose HostMatch allowed the request: the origin
// gets the client's Host (originHost "forward"), a folder per host (rootLayout "per-host"); where
// content does not depend on the host, a document naming more than one host is refused.
import t from 'tap'
import fc from 'fast-check'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createSurrogate } from '../src/surrogate/server.js'
import { canonicalPath } from '../src/policy/request-target.js'
import { AUTH, config, echoOrigin, rawGet as raw, start } from './helpers/surrogate.js'

const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
/** video.example.com denies /secret/* (and /secret itself); free.example.com allows everything. */
const TWO_HOSTS = {
  hosts: [
    {
      host: 'video.example.com',
      'host-metadata': {
        metadata: [],
        paths: ['/secret/*', '/secret'].map((pattern) => ({
          'path-pattern': { pattern },
          'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] },
        })),
      },
    },
    { host: 'free.example.com', 'host-metadata': { metadata: [] } },
  ],
}
const ONE_HOST = { hosts: [TWO_HOSTS.hosts[0]] }

t.test('origin mode: the origin is sent the Host the request was authorized for', async (t) => {
  const origin = await echoOrigin(t)
  const s = await start(config({ root: null, origin: origin.url }))
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(TWO_HOSTS)).status, 200)
  const free = await raw(s.contentUrl, '/secret/x.txt', 'free.example.com')
  t.equal(free.status, 200)
  t.same(
    JSON.parse(free.body),
    { host: 'free.example.com', url: '/secret/x.txt' },
    "free.example.com's content, as the origin serves by Host",
  )
  t.equal((await raw(s.contentUrl, '/secret/x.txt', 'video.example.com')).status, 403)
  t.same(
    JSON.parse((await raw(s.contentUrl, '/public/x.txt', 'Video.Example.COM')).body),
    { host: 'Video.Example.COM', url: '/public/x.txt' },
    'as the client wrote it',
  )
  t.equal(origin.seen.length, 2, 'the denied request never reached the origin')
  // Where every host is allowed, a request naming two hosts is let through with the origin's own.
  t.equal((await s.push({ deliveryCriteria: [{ protocol: 'http' }] })).status, 200)
  t.same(JSON.parse((await raw(s.contentUrl, '/x', 'free.example.com\r\nHost: video.example.com')).body), {
    host: new URL(origin.url).host,
    url: '/x',
  })
})

t.test('origin mode with originHost "origin": the origin URL\'s Host, so one host per document', async (t) => {
  const origin = await echoOrigin(t)
  const s = await start(config({ root: null, origin: origin.url, originHost: 'origin' }))
  t.teardown(() => s.surrogate.close())
  const refused = await s.push(TWO_HOSTS)
  t.equal(refused.status, 400)
  t.match(await refused.json(), {
    message: 'metadata refused; the live policy is unchanged',
    errors: [
      {
        pointer: '/hosts/1/host',
        message:
          /a document may name one host here: every request goes to the origin with its own Host \(setting "originHost" is "origin"\)/,
      },
    ],
  })
  t.equal((await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })).status, 404, 'nothing live')
  t.equal((await s.push(ONE_HOST)).status, 200)
  t.same(JSON.parse((await raw(s.contentUrl, '/public/x', 'video.example.com')).body), {
    host: new URL(origin.url).host,
    url: '/public/x',
  })
})

t.test('static, one folder: a document naming two hosts is refused, at push and at start', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(ONE_HOST)).status, 200)
  const refused = await s.push(TWO_HOSTS, { 'content-type': 'application/cdni; ptype=MI.HostIndex' })
  t.equal(refused.status, 400)
  t.match(await refused.json(), {
    errors: [
      {
        pointer: '/hosts/1/host',
        message: /this surrogate serves one folder \(setting "root"\) for every host.*set rootLayout "per-host"/,
      },
    ],
    warnings: [],
  })
  t.same(
    await (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })).json(),
    ONE_HOST,
    'the live document is the one before',
  )
  t.equal(s.surrogate.content.cdniAuthz.version, 1)
  t.equal(
    (await raw(s.contentUrl, '/hello.txt', 'free.example.com')).status,
    403,
    'free.example.com is still no HostMatch',
  )
  t.equal((await raw(s.contentUrl, '/hello.txt', 'video.example.com')).status, 200)
  // Duplicates of one host are one host.
  t.equal((await s.push({ hosts: [...ONE_HOST.hosts, ...ONE_HOST.hosts] })).status, 200)
  const dir = t.testdir({ 'two.json': JSON.stringify(TWO_HOSTS) })
  await t.rejects(createSurrogate(config({ metadata: join(dir, 'two.json') })), {
    name: 'StateError',
    message: /two\.json is not valid metadata \(\/hosts\/1\/host a document may name one host here.*refusing to start/,
  })
})

t.test('static, a folder per host: root/<host>/, as HostMatch compares hosts', async (t) => {
  const cfg = config({ rootLayout: 'per-host' })
  const root = cfg.root as string
  for (const host of ['video.example.com', 'free.example.com']) {
    mkdirSync(join(root, host, 'secret'), { recursive: true })
    writeFileSync(join(root, host, 'secret', 'x.txt'), `${host} secret`)
    writeFileSync(join(root, host, 'secret', 'index.html'), `${host} index`)
  }
  mkdirSync(join(root, '.hidden'))
  writeFileSync(join(root, '.hidden', 'hello.txt'), 'hidden')
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(TWO_HOSTS)).status, 200)
  t.same(await raw(s.contentUrl, '/secret/x.txt', 'free.example.com'), { status: 200, body: 'free.example.com secret' })
  t.equal((await raw(s.contentUrl, '/secret/x.txt', 'video.example.com')).status, 403)
  t.equal(
    (await raw(s.contentUrl, '/secret/', 'free.example.com')).status,
    403,
    'no index file is served: a file only under its own path',
  )
  t.equal((await raw(s.contentUrl, '/secret', 'free.example.com')).status, 404)
  t.equal((await raw(s.contentUrl, '/hello.txt', 'free.example.com')).status, 404, 'the root itself is no host')
  // Under the seed format every host is allowed: the host still picks the folder, and no host leaves the root.
  t.equal((await s.push({ deliveryCriteria: [{ protocol: 'http' }] })).status, 200)
  t.same(await raw(s.contentUrl, '/secret/x.txt', 'FREE.example.com'), { status: 200, body: 'free.example.com secret' })
  t.equal(
    (await raw(s.contentUrl, '/secret/x.txt', 'free.example.com\r\nHost: free.example.com')).status,
    404,
    'two Host lines name no folder',
  )
  for (const host of ['..', '.', '.hidden', 'elsewhere.example', 'a b']) {
    t.equal((await raw(s.contentUrl, '/hello.txt', host)).status, 404, `Host: ${host}`)
  }
  t.equal(
    (await raw(s.contentUrl, `/${'..%2F'.repeat(3)}hello.txt`, 'free.example.com')).status,
    403,
    'nor any path (the file server refuses it)',
  )
})

t.test('static, one folder: the index of a protected folder is not served under the folder name', async (t) => {
  const cfg = config()
  mkdirSync(join(cfg.root as string, 'secret'))
  writeFileSync(join(cfg.root as string, 'secret', 'index.html'), 'SECRET')
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.equal(
    (
      await s.push({
        hosts: [
          {
            host: 'video.example.com',
            'host-metadata': {
              metadata: [],
              paths: [
                {
                  'path-pattern': { pattern: '/secret/*' },
                  'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] },
                },
              ],
            },
          },
        ],
      })
    ).status,
    200,
  )
  const folder = await raw(s.contentUrl, '/secret', 'video.example.com')
  t.not(folder.body, 'SECRET', '/secret is not /secret/*, and served secret/index.html before')
  t.equal(folder.status, 404)
})

// Request targets built to be read differently by the plugin and by what serves the content: a
// spelling of "secret", then of a separator, around pieces of every kind.
const piece = fc.constantFrom(
  '/',
  'x.txt',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2f',
  '%5c',
  '\\',
  '%25',
  '%',
  ';',
  '//',
  'free',
  '#',
  '?',
  '%3F',
  '"',
  '|',
  '%00',
  '%09',
)
const secret = fc.constantFrom(
  'secret',
  'SECRET',
  '%73ecret',
  'sec%72et',
  'secret%2F',
  'secret/.',
  'free/../secret',
  'free%2F..%2Fsecret',
)
const separator = fc.constantFrom(
  '/',
  '\\',
  '%5c',
  '%5C',
  '%2f',
  '//',
  '/./',
  '#/',
  ';/',
  '%09/',
  '/x/..',
  '//..',
  '',
  '/%2e%2e/secret/',
)
const target = fc
  .tuple(
    fc.constantFrom('/', '//', 'http://video.example.com/', '/./'),
    fc.array(piece, { maxLength: 2 }),
    secret,
    separator,
    fc.array(piece, { maxLength: 3 }),
  )
  .map(([start, before, name, between, after]) => `${start}${before.join('')}${name}${between}${after.join('')}`)

t.test('generated targets: nothing under /secret/ reaches the origin or leaves the folder (black box)', async (t) => {
  const deny = {
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [],
          paths: [
            {
              'path-pattern': { pattern: '/secret/*' },
              'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] },
            },
          ],
        },
      },
    ],
  }
  const origin = await echoOrigin(t)
  const proxy = await start(config({ root: null, origin: origin.url }))
  t.teardown(() => proxy.surrogate.close())
  const cfg = config()
  mkdirSync(join(cfg.root as string, 'secret'))
  writeFileSync(join(cfg.root as string, 'secret', 'x.txt'), 'SECRET')
  writeFileSync(join(cfg.root as string, 'secret', 'index.html'), 'SECRET')
  writeFileSync(join(cfg.root as string, 'x.txt'), 'public')
  const folder = await start(cfg)
  t.teardown(() => folder.surrogate.close())
  t.equal((await proxy.push(deny)).status, 200)
  t.equal((await folder.push(deny)).status, 200)
  let served = 0
  await fc.assert(
    fc.asyncProperty(target, async (request) => {
      const before = origin.seen.length
      const [viaProxy, fromFolder] = await Promise.all([
        raw(proxy.contentUrl, request, 'video.example.com'),
        raw(folder.contentUrl, request, 'video.example.com'),
      ])
      if (fromFolder.status === 200 || viaProxy.status === 200) served++
      const reached = origin.seen.slice(before).map((seen) => canonicalPath(seen.url, 'h') ?? seen.url)
      return fromFolder.body !== 'SECRET' && reached.every((path) => !path.toLowerCase().startsWith('/secret/'))
    }),
    { numRuns: 300 },
  )
  t.ok(served > 10, `targets served by one or the other (${served} of 300)`)
})
