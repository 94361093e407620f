// Sustained load while the policy is swapped back and forth: autocannon on 127.0.0.1 against a
// real server process, a pusher alternating two policies as fast as they are taken. No 5xx, no
// connection error, every answer consistent with one of the two policies, and the server's
// resident memory flat from the first swaps to the last (a policy leaked per swap would add the
// size of one compiled policy each time). SOAK_SECONDS sets the length (8 s in `npm test`).
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { spawnServer } from './helpers/process.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 8)
// 30,000 prefixes of filler in 12/8, none adjacent to another, make each compiled policy 60,000
// intervals: a policy kept alive per swap would add about 1.5 MB each time.
const FILLER = Array.from({ length: 30_000 }, (_, i) => `12.${i >> 7}.${(i & 127) * 2}.0/24`)
const policy = (own: string) => JSON.stringify({ deliveryCriteria: [{ region: { subnet: [own, '13.0.0.0/8', ...FILLER] } }] })
const A = policy('10.0.0.0/8')
const B = policy('11.0.0.0/8')
// What each source may get: allowed by A only, by B only, by both, by neither.
const SOURCES: Record<string, number[]> = { '10.1.1.1': [200, 403], '11.1.1.1': [200, 403], '13.1.1.1': [200], '14.1.1.1': [403] }

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number

t.test(`${SECONDS} s of load with policies swapped back and forth: nothing dropped, nothing inconsistent, no memory growth`, async (t) => {
  const s = await spawnServer(['--trusted-proxies', '127.0.0.1/32'])
  t.equal((await s.push(A)).status, 200)
  const seen: Record<string, Record<number, number>> = {}
  const load = autocannon({
    url: s.contentUrl,
    connections: 8,
    duration: SECONDS,
    requests: Object.keys(SOURCES).map((source) => ({
      method: 'GET',
      path: '/hello.txt',
      headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http' },
      onResponse: (status: number) => {
        const bySource = (seen[source] ??= {})
        bySource[status] = (bySource[status] ?? 0) + 1
      },
    })),
  })
  let running = true
  void load.then(() => (running = false))
  const rss: number[] = []
  let swaps = 0
  let refusedPushes = 0
  while (running) {
    const response = await s.push(swaps % 2 === 0 ? B : A)
    await response.arrayBuffer()
    if (response.status === 200) swaps++
    else refusedPushes++
    rss.push(s.rss())
  }
  const result = await load
  t.equal(await s.stop(), 0, 'the server drains and exits cleanly')
  t.ok(existsSync(join(s.stateDir, 'state.json')), 'its documents went to its own state directory, not ./state')
  t.equal(result.errors, 0, 'no connection errors')
  t.equal(result.timeouts, 0, 'no timeouts')
  t.equal(result['5xx'], 0, 'no 5xx')
  t.equal(refusedPushes, 0, 'every push taken')
  t.ok(swaps >= 10, `swapped ${swaps} times`)
  for (const [source, allowed] of Object.entries(SOURCES)) {
    const statuses = Object.keys(seen[source] ?? {}).map(Number)
    t.ok(statuses.length > 0 && statuses.every((status) => allowed.includes(status)), `${source}: ${JSON.stringify(seen[source])}, each one of ${allowed.join(' or ')}`)
  }
  const answered = Object.values(seen).reduce((sum, bySource) => sum + Object.values(bySource).reduce((a, b) => a + b, 0), 0)
  t.equal(answered, result.requests.total, 'every request answered')
  // Memory: the median over the second fifth of the swaps (the heap has grown to its working size
  // by then) against the median over the last fifth. A policy kept alive per swap would add about
  // 1.5 MB each time: 100 MB over an 8 s run (seen, with one injected), where a clean run moves
  // a few MB. The long form's hundreds of swaps would show a leak of a tenth of that.
  const fifth = Math.floor(rss.length / 5)
  const early = median(rss.slice(fifth, 2 * fifth))
  const late = median(rss.slice(-fifth))
  const growth = (late - early) / 2 ** 20
  t.ok(growth < 48, `resident memory flat: ${(early / 2 ** 20).toFixed(0)} MB after the first swaps, ${(late / 2 ** 20).toFixed(0)} MB at the end (${growth.toFixed(1)} MB over ${rss.length - 2 * fifth} swaps)`)
  t.comment(`requests: ${result.requests.total} (${Math.round(result.requests.average)}/s), swaps: ${swaps}, RSS early ${(early / 2 ** 20).toFixed(0)} MB, late ${(late / 2 ** 20).toFixed(0)} MB`)
})
