import t from 'tap'
import fc from 'fast-check'
import Fastify from 'fastify'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import cdniAuthz from '../src/index.js'
import { canonicalPath } from '../src/request-target.js'

t.test('canonicalPath: the path the router and the file server read', async (t) => {
  const host = 'video.example.com'
  const cases: [string, string | null][] = [
    ['/movies/a.mp4', '/movies/a.mp4'],
    ['/movies/a.mp4?x=%2F..&y#frag', '/movies/a.mp4'],
    ['/%6Dovies/%41.mp4', '/movies/A.mp4'],
    ['/movies/%7e%2d%5F%2E', '/movies/~-_.'],
    ['/a%20b/%c3%a9', '/a%20b/%C3%A9'],
    ['/a%2fb', '/a/b'],
    ['/a%2Fb', '/a/b'],
    ['/a%25%2F', '/a%25/'],
    ['/a%zz%', '/a%25zz%25'],
    ['/%%41a', '/%25Aa'],
    ['/./a/./b/.', '/a/b/'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/../../a', '/a'],
    ['/a/%2e%2E/b', '/b'],
    ['/a/.b/..c/...', '/a/.b/..c/...'],
    ['//a///b//', '/a/b/'],
    ['/', '/'],
    ['http://video.example.com/a/b', '/a/b'],
    ['HTTPS://Video.Example.COM/a/../b', '/b'],
    ['http://video.example.com', '/'],
    ['http://video.example.com?q', '/'],
    ['http://video.example.com:80/a', null],
    ['http://other.example/a', null],
    ['http://user@video.example.com/a', null],
    ['ftp://video.example.com/a', null],
    ['video.example.com:443', null],
    ['*', null],
    ['', null],
  ]
  for (const [url, expected] of cases) t.equal(canonicalPath(url, host), expected, url)
  t.equal(canonicalPath('http://[2001:db8::1]:8080/a', '[2001:DB8:0::1]:8080'), '/a', 'IPv6 literals compare in any spelling')
  t.equal(canonicalPath('http://video.example.com/a', undefined), null, 'absolute form and no Host header')
  t.equal(canonicalPath('http://bad host/a', 'bad host'), null, 'an authority that is no host')
  t.equal(canonicalPath('/a', undefined), '/a', 'origin form needs no Host')
})

t.test('no spelling of a protected path reaches the content behind the plugin', async (t) => {
  const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
  const metadata = {
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': { metadata: [], paths: [{ 'path-pattern': { pattern: '/secret/*' }, 'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] } }] },
      },
    ],
  }
  const app = Fastify()
  await app.register(cdniAuthz, { metadata })
  const served: string[] = []
  app.get('/*', async (request) => {
    served.push((request.params as Record<string, string>)['*'] as string)
    return 'content'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const get = (target: string, host = 'video.example.com') =>
    new Promise<number>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`))
      let data = ''
      socket.on('data', (chunk) => (data += String(chunk)))
      socket.on('end', () => resolve(Number(data.slice(9, 12))))
    })
  // Each of these reached the route as secret/x before (Fastify decodes, strips the absolute form).
  for (const target of ['/secret/x', '/%73ecret/x', '/./secret/x', '/free/../secret/x', '//secret/x', '/secret%2Fx', '/%2e%2e/secret/x', 'http://video.example.com/secret/x', '/SECRET/x']) {
    t.equal(await get(target), 403, target)
  }
  t.equal(await get('http://other.example/free/x'), 403, 'an absolute form naming another host')
  t.equal(await get('*'), 403, 'the asterisk form')
  t.equal(await get('/free/x'), 200)
  t.equal(await get('http://video.example.com/free/x'), 200, 'an absolute form naming this host is read as its path')
  t.same(served, ['free/x', 'free/x'], 'only the allowed requests reached the route')
  t.match(app.cdniAuthz.counts.denied, { 'no-rule-matched': 9, 'bad-request-target': 2 })
})

t.test('canonicalPath on any string: no throw, and a path with nothing left to make canonical', async (t) => {
  const piece = fc.constantFrom('/', '.', '..', '%', '%2e', '%2F', '%2f', '%41', '%zz', 'a', 'B', '?', '#', '//', 'http://', 'h', ':', '@', '*', '~', '%25')
  let paths = 0
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.array(piece, { maxLength: 12 }).map((parts) => parts.join('')), fc.array(piece, { maxLength: 12 }).map((parts) => `/${parts.join('')}`)), (url) => {
      const path = canonicalPath(url, 'h')
      if (path === null) return true
      paths++
      // Canonical means a fixed point: made canonical again, it does not change.
      return path.startsWith('/') && !/\/\.\.?(\/|$)|\/\/|%2F|%2f|[?#]/.test(path) && canonicalPath(path, 'h') === path
    }),
    { numRuns: 5000 },
  )
  t.ok(paths > 1000, `most inputs gave a path (${paths})`)
})
