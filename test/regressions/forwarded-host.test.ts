// Regression: request.host follows Fastify's own trustProxy, so with Fastify({ trustProxy: true })
// a client's X-Forwarded-Host: free.example.com selected the free host's ACLs while the handler
// served the Host it asked for.
import t from 'tap'
import Fastify from 'fastify'
import cdniAuthz from '../../src/index.js'

t.test('X-Forwarded-Host and Forwarded: host= never choose the HostMatch', async (t) => {
  const deny = { 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': { locations: [] } }
  const app = Fastify({ trustProxy: true })
  await app.register(cdniAuthz, {
    metadata: {
      hosts: [
        { host: 'video.example.com', 'host-metadata': { metadata: [deny] } },
        { host: 'free.example.com', 'host-metadata': { metadata: [] } },
      ],
    },
  })
  app.get('/*', async () => 'content')
  t.teardown(() => app.close())
  const status = async (headers: Record<string, string>) => (await app.inject({ url: '/a.mp4', headers })).statusCode
  t.equal(await status({ host: 'video.example.com', 'x-forwarded-host': 'free.example.com' }), 403)
  t.equal(await status({ host: 'video.example.com', forwarded: 'host=free.example.com' }), 403)
  t.equal(await status({ host: 'free.example.com', 'x-forwarded-host': 'video.example.com' }), 200)
})
