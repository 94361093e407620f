// The work of selecting a request's HostMatch / PathMatch is bounded whatever the document and the
// path: documents that could exceed SELECTION_BUDGET comparisons are refused at load, naming the
// pattern and the limit; paths longer than MAX_PATH_LENGTH are refused per request. Work is
// counted (matchWork), never timed.
import t from 'tap'
import fc from 'fast-check'
import { loadSiteModel } from '../src/load/rfc8006.js'
import { compileSite, selectNode } from '../src/policy/site.js'
import { MAX_PATH_LENGTH, matchWork, SELECTION_BUDGET } from '../src/policy/path-pattern.js'

/** The generated cases are the same on every run (CI must not fail on a new draw); FUZZ_SEED picks others.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261205)

type Paths = { 'path-pattern': { pattern: string }; 'path-metadata': { metadata: never[]; paths?: Paths } }[]
const level = (patterns: string[], below: (i: number) => Paths | undefined = () => undefined): Paths =>
  patterns.map((pattern, i) => ({
    'path-pattern': { pattern },
    'path-metadata': { metadata: [], ...(below(i) ? { paths: below(i) } : {}) },
  }))
const site = (paths: Paths) => ({ hosts: [{ host: 'video.example.com', 'host-metadata': { metadata: [], paths } }] })

/** Comparisons selectNode made for one request. */
function selectionWork(doc: unknown, path: string): number {
  const loaded = loadSiteModel(doc)
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors[0]))
  const compiled = compileSite(loaded.site)
  const before = matchWork()
  selectNode(compiled, 'video.example.com', path)
  return matchWork() - before
}

// A middle part that almost matches everywhere in a path of "a": the costliest search there is.
const COSTLY = `*${'a'.repeat(20)}b*`
const WORST_PATH = `/${'a'.repeat(MAX_PATH_LENGTH - 1)}`

t.test(
  '2,000 unindexable patterns with a middle part: refused at load, naming the pattern and the limit',
  async (t) => {
    const loaded = loadSiteModel(site(level(Array.from({ length: 2000 }, (_, i) => `*/v${i}/*.m3u8`))))
    t.equal(loaded.ok, false)
    // `*/v0/*.m3u8` costs 2 × 5 + 8,192 × 4 = 32,778 (its last part walked back and compared, its
    // middle part searched for); from /v10/ on, 40,970: the 28th pattern is where it crosses.
    t.match(loaded.errors, [
      {
        pointer: '/hosts/0/host-metadata/paths/27/path-pattern/pattern',
        message:
          /could take 1,065,240 comparisons by this pattern .* for a path of 8,192 characters\), more than the 1,048,576 allowed per request: index such patterns by a literal first segment/,
      },
    ])
    t.equal(loaded.errors.length, 1)
    // The same with a literal first segment: indexed, a path tries its own few.
    t.ok(loadSiteModel(site(level(Array.from({ length: 2000 }, (_, i) => `/v${i}/*.m3u8`)))).ok)
    // An index does not help patterns that share their first segment.
    t.match(loadSiteModel(site(level(Array.from({ length: 2000 }, (_, i) => `/v/*${i}*.m3u8`)))).errors, [
      { pointer: /\/paths\/\d+\/path-pattern\/pattern$/, message: /more than the 1,048,576/ },
    ])
  },
)

t.test('the worst accepted document against the worst path stays within the budget, counted', async (t) => {
  // Six costly patterns at one level are accepted, a seventh is not.
  const six = site(level(Array(6).fill(COSTLY)))
  const spent = selectionWork(six, WORST_PATH)
  t.ok(
    spent <= SELECTION_BUDGET && spent > SELECTION_BUDGET * 0.9,
    `six costly patterns, ${MAX_PATH_LENGTH} characters: ${spent} comparisons (budget ${SELECTION_BUDGET})`,
  )
  t.match(loadSiteModel(site(level(Array(7).fill(COSTLY)))).errors, [
    { pointer: '/hosts/0/host-metadata/paths/6/path-pattern/pattern' },
  ])
  // Along a chain of levels the costs add up: three above (and the "/*" leading down), three below.
  const chain = (below: number) =>
    site(level([...Array(3).fill(COSTLY), '/*'], (i) => (i === 3 ? level(Array(below).fill(COSTLY)) : undefined)))
  const chained = selectionWork(chain(3), WORST_PATH)
  t.ok(
    chained <= SELECTION_BUDGET && chained > SELECTION_BUDGET * 0.9,
    `three and three, nested: ${chained} comparisons`,
  )
  t.match(loadSiteModel(chain(4)).errors, [
    { pointer: '/hosts/0/host-metadata/paths/3/path-metadata/paths/3/path-pattern/pattern' },
  ])
  // A longer path is no request target: nothing is compared.
  const compiled = compileSite((loadSiteModel(six) as { site: Parameters<typeof compileSite>[0] }).site)
  const before = matchWork()
  t.equal(selectNode(compiled, 'video.example.com', `${WORST_PATH}a`), null)
  t.equal(matchWork(), before)
})

t.test('generated documents and paths: accepted ones never exceed the budget on any path (counted)', async (t) => {
  const pattern = fc.oneof(
    {
      arbitrary: fc
        .array(fc.constantFrom('*', 'a', 'a', 'a', '?', '/', '/', 'b', '%C3'), { maxLength: 30 })
        .map((parts) => parts.join('')),
      weight: 6,
    },
    { arbitrary: fc.constantFrom(COSTLY, '/a/*', '/*', '*a*', `*${'a'.repeat(60)}*`), weight: 1 },
  )
  const paths: fc.Arbitrary<Paths> = fc.letrec<{ level: Paths }>((tie) => ({
    level: fc
      .array(fc.tuple(pattern, fc.option(tie('level'), { nil: undefined, freq: 3, maxDepth: 3 })), { maxLength: 10 })
      .map((nodes) =>
        level(
          nodes.map(([p]) => p),
          (i) => nodes[i]?.[1],
        ),
      ),
  })).level
  const path = fc.oneof(
    fc.constant(WORST_PATH),
    fc
      .tuple(fc.constantFrom('a', 'a/', 'b', '%C3'), fc.nat(MAX_PATH_LENGTH / 4))
      .map(([unit, n]) => `/${unit.repeat(n)}`.slice(0, MAX_PATH_LENGTH)),
  )
  let accepted = 0
  let refused = 0
  let worst = 0
  fc.assert(
    fc.property(paths, fc.array(path, { minLength: 1, maxLength: 3 }), (tree, requests) => {
      const loaded = loadSiteModel(site(tree))
      if (!loaded.ok) {
        refused++
        return loaded.errors.every(
          (error) =>
            /\/path-pattern\/pattern$/.test(error.pointer) && /more than the 1,048,576 allowed/.test(error.message),
        )
      }
      accepted++
      const compiled = compileSite(loaded.site)
      return requests.every((request) => {
        const before = matchWork()
        selectNode(compiled, 'video.example.com', request)
        worst = Math.max(worst, matchWork() - before)
        return matchWork() - before <= SELECTION_BUDGET
      })
    }),
    { numRuns: 300, seed: SEED },
  )
  t.ok(
    accepted > 100 && refused > 10,
    `${accepted} documents accepted, ${refused} refused; the costliest request took ${worst} comparisons`,
  )
})
