// The push API once let anyone read and replace the document: the token check looked at the URL
// text (`startsWith('/cdni/')`) while the router decoded and normalized it, so `/%63dni/metadata`
// or `http://x/cdni/metadata` reached PUT /cdni/metadata unchecked. Every request here is written
// by hand on a socket, so the server sees each spelling exactly as an attacker would send it.
import t from 'tap'
import { AUTH } from '../helpers/surrogate.js'
import { rawRequest } from '../helpers/raw-http.js'
import { LIVE, MARKER, OPEN, anonymous, api, is2xxOr3xx, snapshot, withToken } from '../helpers/push-api.js'
import { PUBLIC_ROUTES } from '../../src/surrogate/api.js'

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH']

/** Spellings of the protected path, and of paths next to it, that a server might take for it. */
const TARGETS = [
  '/cdni/metadata',
  // percent-encoded letters, hex in either case
  '/%63dni/metadata',
  '/c%64ni/metadata',
  '/cd%6ei/metadata',
  '/cd%6Ei/metadata',
  '/cdni/%6detadata',
  '/cdni/%6Detadata',
  '/%63%64%6e%69/%6d%65%74%61%64%61%74%61',
  '/%63%64%6E%69/%6D%65%74%61%64%61%74%61',
  '/%43dni/metadata',
  '/%2563dni/metadata',
  // doubled slashes
  '//cdni/metadata',
  '/cdni//metadata',
  '///cdni/metadata',
  '/cdni/metadata//',
  // dot segments, plain and encoded
  '/x/../cdni/metadata',
  '/./cdni/metadata',
  '/cdni/./metadata',
  '/cdni/x/../metadata',
  '/%2e/cdni/metadata',
  '/x/%2e%2e/cdni/metadata',
  '/healthz/../cdni/metadata',
  '/metrics/%2e%2e/cdni/metadata',
  '/cdni/metadata/.',
  '/cdni/metadata/x/..',
  // case
  '/CDNI/metadata',
  '/cdni/METADATA',
  '/Cdni/Metadata',
  // trailing slash, and the path's parents and children
  '/cdni/metadata/',
  '/cdni',
  '/cdni/',
  '/cdni/metadata/x',
  '/cdni/metadatax',
  // absolute-form
  'http://x/cdni/metadata',
  'http://127.0.0.1/cdni/metadata',
  'HTTP://X/cdni/metadata',
  'https://x/%63dni/metadata',
  'http://x:1/cdni/metadata?x=1',
  'http://x//cdni/metadata',
  // query, fragment
  '/cdni/metadata?',
  '/cdni/metadata?x=1',
  '/%63dni/metadata?token=1',
  '/cdni/metadata?/../healthz',
  '/cdni/metadata#x',
  // `;` parameters
  '/cdni/metadata;x',
  '/cdni;x/metadata',
  '/cdni/metadata;',
  '/%63dni/metadata;x=1',
  // encoded separators and controls
  '/cdni%2fmetadata',
  '/cdni%2Fmetadata',
  '%2fcdni/metadata',
  '/cdni/metadata%00',
  '/cdni/metadata%20',
  '/cdni/metadata%3f',
  '/cdni/metadata%23',
  '/cdni\\metadata',
  '*',
]

/** Spellings the router takes for /cdni/metadata itself. */
const ROUTED = [
  '/cdni/metadata',
  '/%63dni/metadata',
  '/c%64ni/metadata',
  '/cdni/%6detadata',
  '/cdni/%6Detadata',
  '/%63%64%6E%69/%6d%65%74%61%64%61%74%61',
  'http://x/cdni/metadata',
  'HTTP://X/cdni/metadata',
  'https://x/%63dni/metadata',
  '/cdni/metadata?x=1',
  'http://x:1/cdni/metadata?x=1',
]

// One server for the tests that change nothing (each checks so); the one that pushes has its own.
const shared = api(t)

t.test(
  'without the token, no spelling of /cdni/metadata gets a 2xx or 3xx from any method, nor shows or changes the document',
  async (t) => {
    const s = await shared
    const before = snapshot(s.stateDir)
    // What each answer was: the usual 401, whether the path exists or not, or something else.
    const seen = new Map<string, string[]>()
    for (const method of METHODS) {
      for (const target of TARGETS) {
        const answer = await s.send(anonymous(method, target))
        t.notOk(is2xxOr3xx(answer.status) || answer.body.includes(MARKER), `${method} ${target}: ${answer.status}`)
        let kind = `${answer.status}`
        if (answer.status === 401) {
          const shaped =
            answer.headers['www-authenticate'] === 'Bearer realm="cdni-authz"' &&
            (method === 'HEAD' ||
              answer.body ===
                JSON.stringify({ statusCode: 401, error: 'Unauthorized', message: 'a valid bearer token is required' }))
          kind = shaped ? '401' : '401 of another shape'
        }
        seen.set(kind, [...(seen.get(kind) ?? []), `${method} ${target}`])
      }
      t.equal(s.version(), 1, `after every ${method}, the live version is still 1`)
      t.equal(snapshot(s.stateDir), before, `after every ${method}, the state directory is as it was`)
    }
    t.same([...seen.keys()].sort(), ['400', '401'], 'every answer the usual 401, or a 400')
    // A target in none of the request-target forms: the router refuses it before any route or hook.
    t.same(
      seen.get('400'),
      METHODS.map((method) => `${method} %2fcdni/metadata`),
      'the 400s: a target without its leading slash',
    )
    const read = await s.send(withToken('GET', '/cdni/metadata'))
    t.equal(read.body, LIVE, 'and the live document is the one pushed with the token')
  },
)

t.test(
  'the router takes these spellings for /cdni/metadata: with the token they read and replace the document, so the 401s come from the route itself',
  async (t) => {
    const s = await api(t)
    let version = 1
    for (const target of ROUTED) {
      t.equal((await s.send(anonymous('GET', target))).status, 401, `GET ${target} without the token: 401`)
      const read = await s.send(withToken('GET', target))
      t.equal(read.status, 200, `GET ${target} with the token: 200`)
      t.ok(read.body.includes(MARKER), 'and the document')
      t.equal((await s.send(withToken('HEAD', target))).status, 200, `HEAD ${target} with the token: 200`)
      t.equal((await s.send(anonymous('PUT', target))).status, 401, `PUT ${target} without the token: 401`)
      t.equal(s.version(), version, 'and nothing changed')
      const replaced = await s.send(withToken('PUT', target, LIVE))
      t.equal(replaced.status, 200, `PUT ${target} with the token: 200`)
      t.match(JSON.parse(replaced.body), { version: ++version })
      t.equal(s.version(), version)
    }
  },
)

t.test(
  'unknown paths and methods answer 401 without the token and a plain 404 with it, neither showing the document',
  async (t) => {
    const s = await shared
    for (const [method, target] of [
      ['GET', '/nope'],
      ['GET', '/cdni/metadata/'],
      ['DELETE', '/cdni/metadata'],
      ['POST', '/cdni/metadata'],
      ['PUT', '/healthz'],
      ['OPTIONS', '/metrics'],
      ['GET', '/%68ealthz/'],
    ] as const) {
      const denied = await s.send(anonymous(method, target))
      t.equal(denied.status, 401, `${method} ${target} without the token: 401`)
      const missing = await s.send(withToken(method, target, OPEN))
      t.equal(missing.status, 404, `${method} ${target} with the token: 404`)
      t.notOk(missing.body.includes(MARKER), 'with nothing of the document')
      t.same(Object.keys(JSON.parse(missing.body)).sort(), ['error', 'message', 'statusCode'])
    }
    t.equal(s.version(), 1)
  },
)

t.test(
  'the public routes are exactly GET and HEAD of /healthz, /readyz and /metrics, and they answer without the token',
  async (t) => {
    const s = await shared
    t.same([...PUBLIC_ROUTES].sort(), [
      'GET /healthz',
      'GET /metrics',
      'GET /readyz',
      'HEAD /healthz',
      'HEAD /metrics',
      'HEAD /readyz',
    ])
    for (const route of PUBLIC_ROUTES) {
      const [method = '', path = ''] = route.split(' ')
      t.equal((await s.send({ method, target: path })).status, 200, `${route}: 200`)
      t.equal(
        (await s.send({ method, target: `http://x${path}?x` })).status,
        200,
        `${route} in absolute form with a query: 200`,
      )
    }
    // Being public by the route, not by the text: a spelling of /healthz is as open as /healthz,
    // and /healthz's text in front of another path opens nothing.
    t.equal((await s.send({ method: 'GET', target: '/%68ealthz' })).status, 200)
    t.equal((await s.send({ method: 'GET', target: '/healthz/../cdni/metadata' })).status, 401)
  },
)

t.test('a refused spelling counts as an unauthorized push in the metrics', async (t) => {
  const s = await shared
  const unauthorized = async () =>
    Number(
      /cdni_authz_push_total\{result="unauthorized"\} (\d+)/.exec(
        (await s.send({ method: 'GET', target: '/metrics' })).body,
      )?.[1] ?? 0,
    )
  const before = await unauthorized()
  for (const target of ['/%63dni/metadata', 'http://x/cdni/metadata', '/c%64ni/metadata']) {
    await s.send(anonymous('PUT', target))
  }
  t.equal(await unauthorized(), before + 3)
})

t.test(
  'the content listener has no route under /cdni/, and no spelling reads or replaces the document there, token or not',
  async (t) => {
    const s = await shared
    const content = s.surrogate.content
    t.notMatch(content.printRoutes({ commonPrefix: false }), /cdni/, 'no route of its own')
    t.notOk(content.hasRoute({ method: 'PUT', url: '/cdni/metadata' }))
    const port = Number(new URL(s.contentUrl).port)
    const before = snapshot(s.stateDir)
    // An allowed client (10.77.x through our trusted proxy), so the plugin lets each request by.
    const client = { 'X-Forwarded-For': '10.77.1.1', 'X-Forwarded-Proto': 'http', 'Content-Type': 'application/json' }
    for (const method of ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      for (const target of [...ROUTED, '//cdni/metadata', '/x/../cdni/metadata', '/cdni/metadata/']) {
        for (const headers of [client, { ...client, Authorization: AUTH.authorization }]) {
          const answer = await rawRequest(port, { method, target, headers, body: OPEN })
          t.notOk(
            is2xxOr3xx(answer.status) || answer.body.includes(MARKER),
            `${method} ${target}${headers === client ? '' : ' (token)'}: ${answer.status}`,
          )
        }
      }
    }
    t.equal(
      (await rawRequest(port, { method: 'GET', target: '/hello.txt', headers: client })).status,
      200,
      'while content is served',
    )
    t.equal(s.version(), 1)
    t.equal(snapshot(s.stateDir), before)
  },
)
