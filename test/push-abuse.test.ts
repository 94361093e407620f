// Push API abuse over real HTTP: racing pushes with and without If-Match, a slow body, a stalled
// body, a push during shutdown. After each, the live policy is exactly one accepted document:
// GET returns the text of one document that got a 200, its ETag, and requests are judged by it.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { createHash } from 'node:crypto'
import { AUTH, config, start, type Running } from './helpers/surrogate.js'

const doc = (n: number) => JSON.stringify({ deliveryCriteria: [{ region: { subnet: `10.${n}.0.0/16` } }] })
const etagOf = (text: string) => `"sha256-${createHash('sha256').update(text).digest('base64url')}"`

async function live(s: Running): Promise<{ text: string; etag: string | null }> {
  const response = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
  return { text: await response.text(), etag: response.headers.get('etag') }
}

/** The live policy is exactly `text`: served back byte for byte, and enforced. */
async function assertLive(t: Test, s: Running, n: number, others: number[]) {
  const now = await live(s)
  t.equal(now.text, doc(n), `document ${n} is the one served back`)
  t.equal(await s.fetchAs(`10.${n}.1.1`), 200, `and its subnet is allowed`)
  for (const m of others) {
    if (m !== n) t.equal(await s.fetchAs(`10.${m}.1.1`), 403, `another push's subnet (${m}) is not`)
  }
}

t.test('racing pushes with the same If-Match: exactly one wins, the rest get 412', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(doc(1))).status, 200)
  const { etag } = await live(s)
  t.ok(etag)
  const racers = [2, 3, 4, 5, 6, 7, 8, 9]
  const answers = await Promise.all(
    racers.map((n) => s.push(doc(n), { 'if-match': etag as string }).then((r) => ({ n, status: r.status }))),
  )
  const winners = answers.filter((a) => a.status === 200)
  t.equal(winners.length, 1, 'one winner')
  t.same(
    answers.filter((a) => a.status !== 200).map((a) => a.status),
    Array(racers.length - 1).fill(412),
    'every other one: 412',
  )
  await assertLive(t, s, (winners[0] as { n: number }).n, [1, ...racers])
  t.equal((await live(s)).etag, etagOf(doc((winners[0] as { n: number }).n)))
})

t.test('racing pushes without If-Match: all accepted one after the other, the last one is live', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  const racers = [1, 2, 3, 4, 5, 6, 7, 8]
  const answers = await Promise.all(
    racers.map((n) =>
      s.push(doc(n)).then(async (r) => ({ n, status: r.status, body: (await r.json()) as { version: number } })),
    ),
  )
  t.same(
    answers.map((a) => a.status),
    Array(racers.length).fill(200),
  )
  t.same(
    answers.map((a) => a.body.version).sort((a, b) => a - b),
    racers,
    'versions 1..8, none skipped or repeated',
  )
  const last = answers.find((a) => a.body.version === racers.length) as { n: number }
  await assertLive(t, s, last.n, racers)
})

/** Sends a PUT by hand, its body in pieces `gapMs` apart; resolves with the status line. */
function slowPush(apiUrl: string, body: string, pieces: number, gapMs: number): Promise<string> {
  const { hostname, port } = new URL(apiUrl)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    let answer = ''
    socket.on('data', (chunk) => (answer += chunk))
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''))
    socket.on('error', () => resolve(answer.split('\r\n')[0] ?? ''))
    socket.write(
      `PUT /cdni/metadata HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.authorization}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    )
    const size = Math.ceil(body.length / pieces)
    let at = 0
    const next = () => {
      if (socket.destroyed) return
      if (at < body.length && pieces > 0) {
        socket.write(body.slice(at, (at += size)))
        setTimeout(next, gapMs)
      }
    }
    next()
  })
}

t.test(
  'a slow body is taken when it completes in time, and blocks no other push; a stalled one is cut off',
  async (t) => {
    const s = await start(config({ requestTimeout: 1500 }))
    t.teardown(() => s.surrogate.close())
    t.equal((await s.push(doc(1))).status, 200)
    const slow = slowPush(s.apiUrl, doc(2), 5, 150)
    t.equal((await s.push(doc(3))).status, 200, 'a push meanwhile is not held up')
    t.match(await slow, /^HTTP\/1\.1 200/, 'the slow one is accepted once whole')
    await assertLive(t, s, 2, [1, 3])
    const started = Date.now()
    const stalled = await slowPush(s.apiUrl, doc(4), 0, 0)
    t.match(stalled, /^HTTP\/1\.1 408/, 'a body that never comes: 408')
    t.ok(Date.now() - started < 10_000, "within the request timeout, not Node's five minutes")
    await assertLive(t, s, 2, [1, 3, 4])
  },
)

t.test('a push during shutdown is refused or never answered, and what was acknowledged comes back', async (t) => {
  const cfg = config()
  const s = await start(cfg)
  t.equal((await s.push(doc(1))).status, 200)
  const closing = s.surrogate.close()
  const during = await s.push(doc(2)).then(
    (r) => r.status,
    () => 'connection refused',
  )
  await closing
  t.ok(during === 503 || during === 'connection refused', `refused while closing (${during})`)
  const again = await start(cfg)
  t.teardown(() => again.surrogate.close())
  await assertLive(t, again, 1, [2])
})
