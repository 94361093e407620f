// The HostMatch is chosen by the host the content is served for: the Host header (HTTP/2's
// :authority) as Node gives it, never X-Forwarded-Host or Forwarded: host=, whatever Fastify's own
// trustProxy says; a request naming two hosts names none.
import t from 'tap'
import Fastify from 'fastify'
import http2 from 'node:http2'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import cdniAuthz from '../src/index.js'
import { requestHost } from '../src/policy/request-target.js'

const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
const denyAll = acl('MI.LocationACL', { locations: [] })
/** video.example.com denies /secret/*; free.example.com allows everything. */
const METADATA = {
  hosts: [
    {
      host: 'video.example.com',
      'host-metadata': {
        metadata: [],
        paths: [{ 'path-pattern': { pattern: '/secret/*' }, 'path-metadata': { metadata: [denyAll] } }],
      },
    },
    { host: 'free.example.com', 'host-metadata': { metadata: [] } },
  ],
}

t.test('requestHost: the Host header or :authority, and nothing when two are named', async (t) => {
  t.equal(requestHost({ host: 'a.example' }, ['Host', 'a.example']), 'a.example')
  t.equal(
    requestHost({ host: 'a.example', 'x-forwarded-host': 'b.example', forwarded: 'host=b.example' }, [
      'Host',
      'a.example',
      'X-Forwarded-Host',
      'b.example',
      'Forwarded',
      'host=b.example',
    ]),
    'a.example',
  )
  t.equal(
    requestHost({ host: 'a.example' }, ['Host', 'a.example', 'HOST', 'b.example']),
    undefined,
    'two Host lines (RFC 9112 section 3.2)',
  )
  t.equal(requestHost({}, []), undefined)
  t.equal(requestHost({ ':authority': 'a.example' }, [':authority', 'a.example']), 'a.example')
  t.equal(
    requestHost({ ':authority': 'a.example', host: 'A.Example' }, [':authority', 'a.example', 'host', 'A.Example']),
    'a.example',
    'the same host',
  )
  t.equal(
    requestHost({ ':authority': 'a.example', host: 'b.example' }, [':authority', 'a.example', 'host', 'b.example']),
    undefined,
    'a Host that is not the :authority',
  )
})

t.test("with Fastify's trustProxy, X-Forwarded-Host and Forwarded: host= select nothing", async (t) => {
  const app = Fastify({ trustProxy: true })
  await app.register(cdniAuthz, { metadata: METADATA })
  app.get('/*', async (request) => `served for ${request.host}`)
  app.get('/why/*', async (request) => app.cdniAuthz.explain(request))
  t.teardown(() => app.close())
  const get = (url: string, headers: Record<string, string>) => app.inject({ url, headers })
  const spoofed = await get('/secret/x.txt', { host: 'video.example.com', 'x-forwarded-host': 'free.example.com' })
  t.equal(spoofed.statusCode, 403, "video.example.com's /secret/* applies, whatever X-Forwarded-Host says")
  t.equal(
    (await get('/secret/x.txt', { host: 'video.example.com', forwarded: 'host=free.example.com' })).statusCode,
    403,
    'nor Forwarded: host=',
  )
  t.equal(
    (
      await get('/secret/x.txt', {
        host: 'video.example.com',
        'x-forwarded-host': 'free.example.com, free.example.com',
        forwarded: 'for=1.2.3.4;host=free.example.com',
      })
    ).statusCode,
    403,
  )
  // The other way round: free.example.com's content, whatever host the client claims to forward.
  const free = await get('/secret/x.txt', { host: 'free.example.com', 'x-forwarded-host': 'video.example.com' })
  t.equal(free.statusCode, 200)
  t.equal(
    free.body,
    'served for video.example.com',
    "Fastify's request.host is the forwarded one: the plugin did not use it",
  )
  t.match(
    (await get('/why/x', { host: 'free.example.com', 'x-forwarded-host': 'video.example.com' })).json(),
    { selected: '/hosts/1' },
    'explain() reads the host the same way',
  )
})

t.test('two Host lines name no host: denied, and never from a cache entry of either', async (t) => {
  const app = Fastify()
  await app.register(cdniAuthz, { metadata: METADATA })
  app.get('/*', async () => 'content')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const raw = (hostLines: string) =>
    new Promise<number>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(`GET /secret/x.txt HTTP/1.1\r\n${hostLines}Connection: close\r\n\r\n`),
      )
      let data = ''
      socket.on('data', (chunk) => (data += String(chunk)))
      socket.on('end', () => resolve(Number(data.slice(9, 12))))
    })
  t.equal(await raw('Host: free.example.com\r\n'), 200, 'cached for free.example.com')
  t.equal(await raw('Host: free.example.com\r\nHost: video.example.com\r\n'), 403)
  t.equal(await raw('Host: video.example.com\r\nHost: free.example.com\r\n'), 403)
  t.equal(app.cdniAuthz.counts.denied['no-host-matched'], 2)
})

t.test('HTTP/2: the :authority, and a Host that differs from it names no host', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(cdniAuthz, { metadata: METADATA })
  app.get('/*', async () => 'content')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = http2.connect(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  t.teardown(() => session.close())
  const get = (headers: http2.OutgoingHttpHeaders) =>
    new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':method': 'GET', ...headers })
      stream.on('response', (response) => resolve(response[':status'] as number))
      stream.on('error', reject)
      stream.resume()
    })
  t.equal(await get({ ':path': '/secret/x.txt', ':authority': 'free.example.com' }), 200)
  t.equal(await get({ ':path': '/secret/x.txt', ':authority': 'video.example.com' }), 403)
  t.equal(await get({ ':path': '/public/x.txt', ':authority': 'video.example.com' }), 200)
  t.equal(await get({ ':path': '/secret/x.txt', ':authority': 'free.example.com', host: 'video.example.com' }), 403)
  t.equal(
    await get({ ':path': '/secret/x.txt', ':authority': 'free.example.com', 'x-forwarded-host': 'video.example.com' }),
    200,
  )
})
