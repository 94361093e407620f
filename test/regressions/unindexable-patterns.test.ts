// Regression: a level of more than 32 patterns that cannot be indexed was tried pattern by
// pattern, 2,000 patterns like */v123/*.m3u8 against an 8 KB path costing about 90 ms per request
// that missed the selection cache. Such a document is now refused; what is accepted is bounded.
import t from 'tap'
import Fastify from 'fastify'
import cdniAuthz from '../../src/index.js'
import { MAX_PATH_LENGTH, matchWork, SELECTION_BUDGET } from '../../src/policy/path-pattern.js'

const site = (patterns: string[]) => ({
  hosts: [
    {
      host: 'h.example',
      'host-metadata': {
        metadata: [],
        paths: patterns.map((pattern) => ({ 'path-pattern': { pattern }, 'path-metadata': { metadata: [] } })),
      },
    },
  ],
})

t.test(
  '2,000 unindexable patterns with a middle part: refused with the pattern and the limit; the live policy stays',
  async (t) => {
    const app = Fastify()
    await app.register(cdniAuthz, { metadata: site(Array.from({ length: 2000 }, (_, i) => `/v${i}/*.m3u8`)) })
    app.get('/*', async () => 'content')
    t.teardown(() => app.close())
    t.throws(() => app.cdniAuthz.update(site(Array.from({ length: 2000 }, (_, i) => `*/v${i}/*.m3u8`))), {
      statusCode: 400,
      errors: [
        {
          pointer: '/hosts/0/host-metadata/paths/27/path-pattern/pattern',
          message: /more than the 1,048,576 allowed per request/,
        },
      ],
    })
    t.equal(app.cdniAuthz.version, 1)
    // The live policy, indexed: a request of the longest path tries a handful of patterns.
    const before = matchWork()
    t.equal(
      (await app.inject({ url: `/v1999/${'a'.repeat(MAX_PATH_LENGTH - 13)}.m3u8`, headers: { host: 'h.example' } }))
        .statusCode,
      200,
    )
    t.ok(matchWork() - before < 100, `${matchWork() - before} comparisons`)
    // Unindexable patterns of one star load, and cost their own length whatever the path.
    app.cdniAuthz.update(site(Array.from({ length: 2000 }, (_, i) => `*/v${i}.m3u8`)))
    const after = matchWork()
    t.equal(
      (await app.inject({ url: `/${'v'.repeat(MAX_PATH_LENGTH - 1)}`, headers: { host: 'h.example' } })).statusCode,
      200,
    )
    t.ok(
      matchWork() - after < SELECTION_BUDGET / 10,
      `2,000 one-star patterns, ${MAX_PATH_LENGTH} characters: ${matchWork() - after} comparisons`,
    )
  },
)
