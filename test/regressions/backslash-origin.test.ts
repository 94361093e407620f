// Regression: in origin mode GET /secret\x.txt passed a /secret/* deny and the origin received
// /secret/x.txt (the proxy's WHATWG URL parser reads "\" as "/").
import t from 'tap'
import { config, echoOrigin, rawGet, start } from '../helpers/surrogate.js'

t.test('a backslash is a bad request target, and the origin never sees the path', async (t) => {
  const origin = await echoOrigin(t)
  const s = await start(config({ root: null, origin: origin.url }))
  t.teardown(() => s.surrogate.close())
  const deny = { 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': { locations: [] } }
  t.equal(
    (
      await s.push({
        hosts: [
          {
            host: 'video.example.com',
            'host-metadata': {
              metadata: [],
              paths: [{ 'path-pattern': { pattern: '/secret/*' }, 'path-metadata': { metadata: [deny] } }],
            },
          },
        ],
      })
    ).status,
    200,
  )
  for (const target of [
    '/secret\\x.txt',
    '/secret%5Cx.txt',
    '/secret%5cx.txt',
    '/secret//../secret/x.txt',
    '/secret//..\\x.txt',
  ]) {
    t.equal((await rawGet(s.contentUrl, target, 'video.example.com')).status, 403, target)
  }
  t.equal(s.surrogate.content.cdniAuthz.counts.denied['bad-request-target'], 5)
  t.equal((await rawGet(s.contentUrl, '/public\\x.txt', 'video.example.com')).status, 403, 'refused wherever it is')
  t.same(origin.seen, [])
  t.equal((await rawGet(s.contentUrl, '/public/x.txt', 'video.example.com')).status, 200)
})
