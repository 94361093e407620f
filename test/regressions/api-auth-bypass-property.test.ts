// Generated request targets around the protected path, for the push API's token check: percent
// escapes in either hex case, case changes, doubled slashes, dot segments, absolute form, `;`
// parameters, encoded separators, queries and fragments, under random methods and wrong tokens.
// Each is written by hand on a socket, so the server sees the target exactly as generated.
import t from 'tap'
import fc from 'fast-check'
import { TOKEN } from '../helpers/surrogate.js'
import { LIVE, MARKER, OPEN, anonymous, api, is2xxOr3xx, snapshot, withToken } from '../helpers/push-api.js'

/** FUZZ_RUNS raises the counts. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 600)
const SEED = Number(process.env.FUZZ_SEED ?? 20261122)

const hex = (c: string): string => c.charCodeAt(0).toString(16)

/** A word spelled the ways the router decodes to the word itself: each letter as is or escaped, hex in either case. */
const routedWord = (word: string): fc.Arbitrary<string> =>
  fc
    .tuple(...[...word].map((c) => fc.constantFrom(c, `%${hex(c)}`, `%${hex(c).toUpperCase()}`)))
    .map((letters) => letters.join(''))

/** A word spelled any way: also upper case and double escapes, which the router does not decode. */
const anyWord = (word: string): fc.Arbitrary<string> =>
  fc
    .tuple(
      ...[...word].map((c) =>
        fc.constantFrom(c, c.toUpperCase(), `%${hex(c)}`, `%${hex(c).toUpperCase()}`, `%25${hex(c)}`),
      ),
    )
    .map((letters) => letters.join(''))

const ABSOLUTE = ['http://x', 'HTTP://X', 'https://127.0.0.1:9', 'http://cdni']
const QUERIES = ['', '?', '?x=1', '?a=%2F..%2Fhealthz', `?access_token=${TOKEN}`]

/** A target the router takes for /cdni/metadata. */
const routedTarget = fc
  .tuple(fc.constantFrom('', ...ABSOLUTE), routedWord('cdni'), routedWord('metadata'), fc.constantFrom(...QUERIES))
  .map(([lead, cdni, metadata, query]) => `${lead}/${cdni}/${metadata}${query}`)

/**
 * A target near /cdni/metadata. It never names a public route: the path's words are only ever
 * spellings of `cdni` and `metadata`, and the query comes after them.
 */
const nearTarget = fc
  .tuple(
    fc.constantFrom(
      '',
      '/',
      '//',
      '/.',
      '/x/..',
      '/healthz/..',
      '/metrics/%2e%2e',
      '/%2e',
      '%2f',
      ...ABSOLUTE,
      'http://x/.',
      'http://x/',
    ),
    fc.oneof(anyWord('cdni'), fc.constantFrom('', 'x', '..')),
    fc.constantFrom('/', '//', '/./', '/x/../', '/../', '%2f', '%2F', '/;x/', ';/', '\\', '/%2e/', '%5c'),
    anyWord('metadata'),
    fc.oneof(
      {
        arbitrary: fc.constantFrom(
          '',
          '/',
          '//',
          '/.',
          '/..',
          '/x',
          'x',
          ';',
          ';x=1',
          '%00',
          '%20',
          '%3f',
          '%23',
          '#f',
          '%c0%af',
        ),
        weight: 5,
      },
      // broken escapes: Fastify's 400
      { arbitrary: fc.constantFrom('%', '%2', '%zz'), weight: 1 },
    ),
    fc.constantFrom(...QUERIES, '?/../healthz'),
  )
  .map(([lead, cdni, separator, metadata, tail, query]) => `${lead}/${cdni}${separator}${metadata}${tail}${query}`)

const METHODS = [
  'GET',
  'HEAD',
  'PUT',
  'POST',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'CONNECT',
  'PROPFIND',
  'SEARCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'PURGE',
  'QUERY',
  'get',
  'Put',
]
/** Mostly methods Node parses; some random ones, which its parser refuses before Fastify. */
const method = fc.oneof(
  { arbitrary: fc.constantFrom(...METHODS), weight: 5 },
  { arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/), weight: 1 },
)

/** Authorization headers that are not the token. A trailing space is no such case: Node trims it. */
const wrongAuthorization = fc.constantFrom(
  undefined,
  '',
  'Bearer',
  'Bearer wrong',
  `bearer ${TOKEN}`,
  `Bearer ${TOKEN}x`,
  `Bearer ${TOKEN.slice(0, -1)}`,
  TOKEN,
  `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`,
  `Bearer  ${TOKEN}`,
  `Bearer ${encodeURIComponent(TOKEN).replace('t', '%74')}`,
)

t.test(
  'without the token, no generated target and method gets a 2xx or 3xx, shows the document or changes the state',
  async (t) => {
    const s = await api(t)
    const before = snapshot(s.stateDir)
    const statuses = new Map<number, number>()
    let cases = 0
    await fc.assert(
      fc.asyncProperty(
        method,
        fc.oneof(nearTarget, routedTarget),
        wrongAuthorization,
        async (verb, target, authorization) => {
          cases++
          const request = anonymous(verb, target)
          if (authorization !== undefined) request.headers = { ...request.headers, Authorization: authorization }
          const answer = await s.send(request)
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
          // 401 from the check; 400 for what the parser or router refuses; 0 where Node drops the
          // connection (CONNECT, which nothing here serves).
          return (
            !is2xxOr3xx(answer.status) &&
            [0, 400, 401].includes(answer.status) &&
            !answer.body.includes(MARKER) &&
            s.version() === 1 &&
            snapshot(s.stateDir) === before
          )
        },
      ),
      { numRuns: RUNS, seed: SEED },
    )
    t.equal(cases, RUNS, `${cases} generated requests`)
    t.ok(
      (statuses.get(401) ?? 0) > RUNS / 3,
      `a good share reached the token check (the rest, Node's or Fastify's parser): ${JSON.stringify(Object.fromEntries(statuses))}`,
    )
    t.equal(s.version(), 1)
    t.equal(snapshot(s.stateDir), before)
  },
)

t.test(
  'every generated spelling the router takes for /cdni/metadata: 401 without the token, and with it GET, HEAD and PUT work',
  async (t) => {
    const s = await api(t)
    let version = 1
    let cases = 0
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'HEAD', 'PUT'), routedTarget, async (verb, target) => {
        cases++
        const before = snapshot(s.stateDir)
        const refused = await s.send(anonymous(verb, target))
        if (refused.status !== 401 || s.version() !== version || snapshot(s.stateDir) !== before) return false
        const answer = await s.send(withToken(verb, target, verb === 'PUT' ? (version % 2 === 0 ? LIVE : OPEN) : ''))
        if (answer.status !== 200) return false
        if (verb === 'PUT') {
          return (
            JSON.parse(answer.body).version === ++version && s.version() === version && snapshot(s.stateDir) !== before
          )
        }
        const live = version % 2 === 1 ? LIVE : OPEN
        return answer.headers.etag !== undefined && (verb === 'HEAD' ? answer.body === '' : answer.body === live)
      }),
      { numRuns: Math.ceil(RUNS / 3), seed: SEED },
    )
    t.equal(cases, Math.ceil(RUNS / 3), `${cases} generated requests, each sent without and with the token`)
    t.ok(version > 1, `${version - 1} pushes accepted through generated spellings`)
  },
)
