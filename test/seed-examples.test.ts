import t from 'tap'
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import cdniAuthz from '../src/index.js'

const example = (n: number): unknown =>
  JSON.parse(readFileSync(new URL(`../examples/seed-example-${n}.json`, import.meta.url), 'utf8'))

const gateway = { name: 'china-mobile', cidrs: ['203.0.113.0/28'], countryCode: '86' }

async function app(metadata: unknown) {
  const fastify = Fastify()
  await fastify.register(cdniAuthz, { metadata, gateways: [gateway] })
  fastify.get('/video', async () => 'content')
  return fastify
}

t.test('example 1: source subnet 10.1.0.54/18 (masked to 10.1.0.0/18) over http', async (t) => {
  const fastify = await app(example(1))
  const inside = await fastify.inject({ url: '/video', remoteAddress: '10.1.63.255' })
  t.equal(inside.statusCode, 200, 'an address inside 10.1.0.0/18 is served')
  t.equal(inside.body, 'content')
  const outside = await fastify.inject({ url: '/video', remoteAddress: '10.1.64.0' })
  t.equal(outside.statusCode, 403, 'the first address past the /18 is denied')
  t.same(outside.json(), { statusCode: 403, error: 'Forbidden', message: 'Access denied' })
  const forged = await fastify.inject({
    url: '/video',
    remoteAddress: '198.51.100.7',
    headers: { 'x-forwarded-for': '10.1.2.3' },
  })
  t.equal(forged.statusCode, 403, 'a client-written X-Forwarded-For does not change the source')
})

t.test('example 2: handset subnet from the gateway-appended X-Forwarded-For entry', async (t) => {
  const fastify = await app(example(2))
  const viaGateway = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-forwarded-for': '10.5.31.77' },
  })
  t.equal(viaGateway.statusCode, 200, 'handset 10.5.31.77 behind the gateway is served')
  const otherHandset = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-forwarded-for': '10.5.32.1' },
  })
  t.equal(otherHandset.statusCode, 403, 'a handset outside 10.5.31.0/24 is denied')
  const spoofedLeft = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-forwarded-for': '10.5.31.77, 10.9.9.9' },
  })
  t.equal(spoofedLeft.statusCode, 403, 'an entry left of the one the gateway appended decides nothing')
  const direct = await fastify.inject({
    url: '/video',
    remoteAddress: '198.51.100.7',
    headers: { 'x-forwarded-for': '10.5.31.77' },
  })
  t.equal(direct.statusCode, 403, 'the same header from a non-gateway peer is not believed')
})

t.test('example 3: MSISDN prefix 135038 in national form', async (t) => {
  const fastify = await app(example(3))
  const subscriber = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-up-calling-line-id': '8613503812345' },
  })
  t.equal(subscriber.statusCode, 200, 'a home subscriber whose national number starts 135038 is served')
  const seedHeader = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-up-calling-line-id': '8613912345678' },
  })
  t.equal(seedHeader.statusCode, 403, "the seed's own example number (139...) is outside the prefix")
  const direct = await fastify.inject({
    url: '/video',
    remoteAddress: '198.51.100.7',
    headers: { 'x-up-calling-line-id': '8613503812345' },
  })
  t.equal(direct.statusCode, 403, 'an MSISDN header from a non-gateway peer is not believed')
  const https = await fastify.inject({
    url: '/video',
    remoteAddress: '203.0.113.10',
    headers: { 'x-up-calling-line-id': '8613503812345', 'x-forwarded-proto': 'https' },
  })
  t.equal(https.statusCode, 200, 'X-Forwarded-Proto from a non-proxy is ignored: the socket said http')
})
