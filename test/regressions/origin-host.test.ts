// Regression: @fastify/http-proxy replaced Host with the origin's, so a request for
// Host: free.example.com at /secret/x.txt got the content video.example.com denies, from an
// origin that serves by Host.
import t from 'tap'
import { config, echoOrigin, rawGet, start } from '../helpers/surrogate.js'

t.test('the origin receives the Host the metadata authorized', async (t) => {
  const origin = await echoOrigin(t)
  const s = await start(config({ root: null, origin: origin.url }))
  t.teardown(() => s.surrogate.close())
  const deny = { 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': { locations: [] } }
  const video = {
    host: 'video.example.com',
    'host-metadata': {
      metadata: [],
      paths: [{ 'path-pattern': { pattern: '/secret/*' }, 'path-metadata': { metadata: [deny] } }],
    },
  }
  t.equal(
    (await s.push({ hosts: [video, { host: 'free.example.com', 'host-metadata': { metadata: [] } }] })).status,
    200,
  )
  t.equal((await rawGet(s.contentUrl, '/secret/x.txt', 'free.example.com')).status, 200)
  t.equal((await rawGet(s.contentUrl, '/secret/x.txt', 'video.example.com')).status, 403)
  t.same(
    origin.seen,
    [{ host: 'free.example.com', url: '/secret/x.txt' }],
    "free.example.com's own /secret/x.txt, not video.example.com's",
  )
})
