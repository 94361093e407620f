// Regression: patterns were compared as written while request paths were made canonical, so
// /%7Ealice/* and /caf%c3%a9/* (case-sensitive) never matched, and /~alice/a.txt was served past
// a pattern that denied it.
import t from 'tap'
import Fastify from 'fastify'
import cdniAuthz from '../../src/index.js'

const deny = { 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': { locations: [] } }
const path = (pattern: string, caseSensitive?: boolean) => ({
  'path-pattern': { pattern, ...(caseSensitive ? { 'case-sensitive': true } : {}) },
  'path-metadata': { metadata: [deny] },
})

t.test('a pattern written with percent-encodings denies every spelling of what it names', async (t) => {
  const app = Fastify()
  await app.register(cdniAuthz, {
    metadata: {
      hosts: [
        {
          host: 'h.example',
          'host-metadata': { metadata: [], paths: [path('/%7Ealice/*'), path('/caf%c3%a9/*', true)] },
        },
      ],
    },
  })
  app.get('/*', async () => 'content')
  t.teardown(() => app.close())
  const status = async (url: string) => (await app.inject({ url, headers: { host: 'h.example' } })).statusCode
  for (const url of ['/~alice/a.txt', '/%7Ealice/a.txt', '/%7ealice/a.txt', '/caf%C3%A9/x', '/caf%c3%a9/x']) {
    t.equal(await status(url), 403, url)
  }
  t.equal(await status('/bob/a.txt'), 200)
  t.equal(await status('/CAF%C3%A9/x'), 200, 'the second pattern is case-sensitive')
})
