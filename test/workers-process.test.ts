// `serve --workers 2`: the built program, its primary and two worker processes (node:cluster),
// spawned as in production. The primary runs the built code too: one running the TypeScript
// sources would write snapshots the built workers rightly refuse (another build).
// Load is plain HTTP/1.1, one connection per request, so node:cluster's round robin spreads it
// over both workers.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import http from 'node:http'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer } from './helpers/process.js'
import { allowing } from './helpers/surrogate.js'
import { SNAPSHOT_FILE } from '../src/surrogate/state.js'

const A = allowing('10.0.0.0/8')
const B = allowing('11.0.0.0/8')
/** What each policy answers the two sources of the load. */
const EXPECTED: Record<string, Record<string, number>> = {
  A: { '10.1.1.1': 200, '11.1.1.1': 403 },
  B: { '10.1.1.1': 403, '11.1.1.1': 200 },
}

/** One GET on a connection of its own: its status, or 0 when the connection failed. */
const getOnce = (url: string, source: string): Promise<number> =>
  new Promise((resolve) => {
    const request = http.get(
      `${url}/hello.txt`,
      { agent: false, headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http' } },
      (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode as number))
      },
    )
    request.setTimeout(5000, () => request.destroy())
    request.on('error', () => resolve(0))
  })

interface Answer {
  started: number
  ended: number
  source: string
  status: number
}

/** Clients sending requests back to back until stopped; every answer kept with its start time. */
function load(url: string, clients = 4): { answers: Answer[]; stop(): Promise<void> } {
  const answers: Answer[] = []
  let running = true
  const loops = Array.from({ length: clients }, async (_, i) => {
    let n = i
    // eslint-disable-next-line no-unmodified-loop-condition -- stop() ends it
    while (running) {
      const source = n++ % 2 === 0 ? '10.1.1.1' : '11.1.1.1'
      const started = performance.now()
      const status = await getOnce(url, source)
      answers.push({ started, ended: performance.now(), source, status })
    }
  })
  return {
    answers,
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test(
  'two worker processes under load: pushes, a worker SIGKILLed, a push while one is down, SIGHUP, SIGTERM',
  async (t) => {
    const s = await spawnServer(['--trusted-proxies', '127.0.0.1/32', '--workers', '2'])
    t.teardown(() => s.child.kill('SIGKILL'))
    const ready = async () => {
      for (;;) {
        if ((await fetch(`${s.apiUrl}/readyz`)).status === 200) return
        await sleep(20)
      }
    }
    const workerPids = () =>
      execFileSync('pgrep', ['-P', String(s.child.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map(Number)

    const traffic = load(s.contentUrl)
    /** Each accepted push: when it was sent, and when its 200 arrived. */
    const answered: { sent: number; at: number; policy: 'A' | 'B' }[] = []
    const push = async (policy: 'A' | 'B') => {
      const sent = performance.now()
      const response = await s.push(policy === 'A' ? A : B)
      if (response.status === 200) answered.push({ sent, at: performance.now(), policy })
      return response.status
    }
    for (let i = 0; i < 6; i++) t.equal(await push(i % 2 === 0 ? 'A' : 'B'), 200, `push ${i + 1} under load`)

    // SIGKILL one worker under load; push while it is down; its replacement must come back on B.
    const before = workerPids()
    t.equal(before.length, 2)
    process.kill(before[0] as number, 'SIGKILL')
    const killedAt = performance.now()
    t.equal(await push('A'), 200, 'a push while a worker is down')
    t.equal(await push('B'), 200)
    await ready()
    const after = workerPids()
    t.equal(after.length, 2)
    t.notOk(after.includes(before[0] as number), 'the killed worker was replaced')
    await sleep(500)
    await traffic.stop()

    // A request sent after a push's 200 gets that push's policy, or that of a push sent after it
    // and switched while the request ran; never an older one.
    const wrong = traffic.answers.filter((answer) => {
      const live = answered.filter((push) => push.at < answer.started).at(-1)
      if (live === undefined || answer.status === 0) return false
      const possible = [live, ...answered.filter((push) => push.at >= answer.started && push.sent < answer.ended)]
      return !possible.some((push) => EXPECTED[push.policy]?.[answer.source] === answer.status)
    })
    t.same(wrong, [], `${traffic.answers.length} answers, each the policy live when it was sent`)
    // Only requests in flight on the killed worker may fail; the other worker answered throughout.
    const failed = traffic.answers.filter((answer) => answer.status === 0)
    t.ok(failed.length <= 4, `${failed.length} requests failed`)
    t.ok(
      failed.every((answer) => answer.started < killedAt + 100),
      'none sent after the kill failed',
    )
    t.ok(
      traffic.answers.some((answer) => answer.started > killedAt && answer.status !== 0),
      'answers went on after the kill',
    )
    t.match(await (await fetch(`${s.apiUrl}/metrics`)).text(), /cdni_authz_workers_policy_version_min 8\n/)

    s.child.kill('SIGHUP')
    while ((s.output().match(/worker databases reloaded/g) ?? []).length < 2) await sleep(20)
    t.pass('SIGHUP reloaded the databases of both workers')

    t.equal(await s.stop(), 0, 'SIGTERM: drained and stopped')
    t.same(
      after.filter((pid) => {
        try {
          process.kill(pid, 0)
          return true
        } catch {
          return false
        }
      }),
      [],
      'no worker is left',
    )
  },
)

t.test('the real program: a restart with a damaged snapshot serves the document, never the snapshot', async (t) => {
  const first = await spawnServer(['--trusted-proxies', '127.0.0.1/32', '--workers', '2'])
  t.teardown(() => first.child.kill('SIGKILL'))
  t.equal((await first.push(A)).status, 200)
  t.equal(await first.fetchAs('10.1.1.1'), 200)
  // A crash is logged, with the worker's pid, and the worker replaced.
  const pid = Number(execFileSync('pgrep', ['-P', String(first.child.pid)], { encoding: 'utf8' }).split('\n')[0])
  process.kill(pid, 'SIGKILL')
  while (!first.output().includes('a worker exited; starting another')) await sleep(20)
  t.match(first.output(), `"pid":${pid},"code":null,"signal":"SIGKILL"`)
  while ((await fetch(`${first.apiUrl}/readyz`)).status !== 200) await sleep(20)
  t.equal(await first.stop(), 0)
  // The snapshot of another document (B's), renamed into place: loading it would serve B.
  const other = await spawnServer(['--trusted-proxies', '127.0.0.1/32', '--workers', '2'])
  t.teardown(() => other.child.kill('SIGKILL'))
  t.equal((await other.push(B)).status, 200)
  t.equal(await other.stop(), 0)
  const path = join(first.stateDir, SNAPSHOT_FILE)
  const good = readFileSync(path)
  for (const [what, bytes] of [
    ['truncated', good.subarray(0, 100)],
    ['of another document', readFileSync(join(other.stateDir, SNAPSHOT_FILE))],
  ] as const) {
    writeFileSync(path, bytes)
    const again = await spawnServer([
      '--trusted-proxies',
      '127.0.0.1/32',
      '--workers',
      '2',
      '--state-dir',
      first.stateDir,
    ])
    t.teardown(() => again.child.kill('SIGKILL'))
    const statuses = await Promise.all(
      Array.from({ length: 6 }, (_, i) => again.fetchAs(i % 2 === 0 ? '10.1.1.1' : '11.1.1.1')),
    )
    t.same(statuses, [200, 403, 200, 403, 200, 403], `${what}: A's policy on every worker`)
    t.equal(await again.stop(), 0)
  }
})
