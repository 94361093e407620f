// `--workers N` in one process: the primary's pool and N workers (test/helpers/workers.ts), each
// worker a content listener of its own, so each is asked directly. The two-phase switch, a worker
// that fails either phase or vanishes, admission of a replacement, /readyz, /metrics, SIGHUP and
// the drain. test/workers-process.test.ts runs the same against the real cluster.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { allowing, AUTH, config } from './helpers/surrogate.js'
import { inProcessFork, type InProcessWorker } from './helpers/workers.js'
import { createSurrogate } from '../src/surrogate/server.js'
import { availableParallelism } from 'node:os'
import { ConfigError, loadConfig, type ServerConfig } from '../src/surrogate/config.js'
import { SNAPSHOT_FILE, STAGED_SNAPSHOT_FILE } from '../src/surrogate/state.js'
import type { PoolTimeouts } from '../src/surrogate/cluster.js'

const A = allowing('10.0.0.0/8')
const B = allowing('11.0.0.0/8')

const statusFrom = (url: string, source: string) =>
  fetch(`${url}/hello.txt`, { headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http' } }).then(async (r) => {
    await r.arrayBuffer()
    return r.status
  })

/** What each worker answers 10.1.1.1 and 11.1.1.1: "A" when A is live there, "B" for B. */
async function policies(workers: InProcessWorker[]): Promise<string[]> {
  return Promise.all(
    workers.map(async (worker) => {
      const [ten, eleven] = await Promise.all([
        statusFrom(worker.url as string, '10.1.1.1'),
        statusFrom(worker.url as string, '11.1.1.1'),
      ])
      return ten === 200 && eleven === 403 ? 'A' : ten === 403 && eleven === 200 ? 'B' : `${ten}/${eleven}`
    }),
  )
}

/** Allowed decisions in a metrics text, or in a scrape of the API at `apiUrl` (a URL or a pending fetch). */
async function allowedIn(scrape: string | Promise<Response>): Promise<number> {
  const response = await (typeof scrape === 'string' ? fetch(`${scrape}/metrics`) : scrape)
  return Number(/cdni_authz_decisions_total\{outcome="allow",reason="rule"\} (\d+)\n/.exec(await response.text())?.[1])
}

/** A surrogate of two in-process workers, not yet started, each given `intercept` as it is forked. */
async function unstartedPool(intercept: InProcessWorker['intercept'], timeouts: Partial<PoolTimeouts>) {
  const cfg = config({ workers: 2 })
  const { fork, started } = inProcessFork(cfg)
  const surrogate = await createSurrogate(cfg, {
    workers: {
      fork: () => {
        const worker = fork()
        ;(started.at(-1) as InProcessWorker).intercept = intercept
        return worker
      },
      timeouts,
    },
  })
  return { surrogate, started }
}

async function startPool(
  t: { teardown: (fn: () => unknown) => void },
  patch: Partial<ServerConfig> = {},
  timeouts: Partial<PoolTimeouts> = { load: 2000, restart: 10 },
  /** Called as each worker is forked, before the pool sends it anything. */
  onFork: (worker: InProcessWorker, index: number) => void = () => {},
) {
  const cfg = config({ workers: 2, ...patch })
  const { fork, started } = inProcessFork(cfg)
  const forkAndHook = () => {
    const worker = fork()
    onFork(started.at(-1) as InProcessWorker, started.length - 1)
    return worker
  }
  const surrogate = await createSurrogate(cfg, { workers: { fork: forkAndHook, timeouts } })
  const { contentUrl, apiUrl } = await surrogate.listen()
  t.teardown(() => surrogate.close())
  const push = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${apiUrl}/cdni/metadata`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...AUTH, ...headers },
      body: JSON.stringify(body),
    })
  const serving = () => started.filter((worker) => !worker.dead)
  const ready = async () => {
    for (;;) {
      const response = await fetch(`${apiUrl}/readyz`)
      if (response.status === 200) return response.json()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  return { cfg, surrogate, contentUrl, apiUrl, push, started, serving, ready }
}

t.test('the workers setting takes a count or auto (one per core), and refuses anything else', async (t) => {
  const workers = (flag: string | undefined, env: string | undefined, file?: unknown) => {
    const path = join(config().stateDir, '..', 'config.json')
    if (file !== undefined) writeFileSync(path, JSON.stringify({ workers: file }))
    return loadConfig({
      file: file === undefined ? null : path,
      env: env === undefined ? {} : { CDNI_WORKERS: env },
      flags: { root: '.', ...(flag === undefined ? {} : { workers: flag }) },
      cwd: process.cwd(),
    }).workers
  }
  t.equal(workers(undefined, undefined), 1, 'one by default: the single process')
  t.equal(workers('4', undefined), 4)
  t.equal(workers(undefined, 'auto'), availableParallelism())
  t.equal(workers(undefined, undefined, 3), 3)
  for (const bad of ['0', '-1', '2.5', 'all', '257']) {
    t.throws(() => workers(bad, undefined), ConfigError, `refuses ${bad}`)
  }
  t.throws(() => workers(undefined, undefined, '2'), /setting "workers".*must be auto or an integer 1–256, got "2"/)
})

t.test('every worker serves a push once it is answered 200, and the primary serves no content', async (t) => {
  const pool = await startPool(t)
  t.equal(pool.started.length, 2)
  t.same(await policies(pool.started), ['403/403', '403/403'], 'no policy yet: every request denied')
  t.equal((await pool.push(A)).status, 200)
  t.same(await policies(pool.started), ['A', 'A'])
  t.equal((await pool.push(B)).status, 200)
  t.same(await policies(pool.started), ['B', 'B'])
  t.ok(existsSync(join(pool.cfg.stateDir, SNAPSHOT_FILE)), 'the snapshot is beside the document')
  t.notOk(existsSync(join(pool.cfg.stateDir, STAGED_SNAPSHOT_FILE)), 'no staged snapshot left')
  t.same(await pool.ready(), { status: 'ready', version: 2 })
  t.equal(pool.surrogate.content.server.listening, false, 'the primary listens for no content')
})

t.test('a worker that cannot load a push refuses it with 503, and nothing changes anywhere', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  const document = readFileSync(join(pool.cfg.stateDir, 'metadata.json'), 'utf8')
  const snapshot = readFileSync(join(pool.cfg.stateDir, SNAPSHOT_FILE))
  const [first, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) =>
    message.cdni === 'load' ? { cdni: 'reply', id: message.id, ok: false, error: 'disk on fire' } : null
  const refused = await pool.push(B)
  t.equal(refused.status, 503)
  t.match(await refused.json(), { message: /worker \d+: disk on fire.*live policy is unchanged/ })
  t.ok(
    first.received.some((message) => message.cdni === 'abort'),
    'the worker that had loaded it dropped it',
  )
  t.same(await policies(pool.started), ['A', 'A'])
  t.equal(readFileSync(join(pool.cfg.stateDir, 'metadata.json'), 'utf8'), document, 'the document on disk is A')
  t.same(readFileSync(join(pool.cfg.stateDir, SNAPSHOT_FILE)), snapshot, 'so is the snapshot')
  t.notOk(existsSync(join(pool.cfg.stateDir, STAGED_SNAPSHOT_FILE)), 'the staged snapshot is removed')
  t.equal(pool.surrogate.content.cdniAuthz.version, 1, 'the primary did not switch either')
  const metrics = await (await fetch(`${pool.apiUrl}/metrics`)).text()
  t.match(metrics, /cdni_authz_push_total\{result="workers_unavailable"\} 1\n/, "counted as the workers' refusal")
  t.notMatch(metrics, /result="storage_error"/, "not as the disk's")
  second.intercept = () => null
  t.equal((await pool.push(B)).status, 200, 'the next push goes through')
  t.same(await policies(pool.started), ['B', 'B'])
})

t.test('a worker that does not answer the load in time refuses the push as well', async (t) => {
  const pool = await startPool(t, {}, { load: 200, restart: 10 })
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) => (message.cdni === 'load' ? 'silent' : null)
  const refused = await pool.push(A)
  t.equal(refused.status, 503)
  t.match(await refused.json(), { message: /did not answer "load" in 200 ms/ })
  t.same(await policies(pool.started), ['403/403', '403/403'])
})

t.test('a worker that fails to switch is replaced, and its replacement serves the new policy', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) =>
    message.cdni === 'commit' ? { cdni: 'reply', id: message.id, ok: false, error: 'cannot switch' } : null
  t.equal((await pool.push(B)).status, 200, 'the document was stored: the push is accepted')
  t.ok(second.dead, 'the worker that could not switch is gone')
  await pool.ready()
  t.equal(pool.started.length, 3)
  t.same(await policies(pool.serving()), ['B', 'B'])
})

t.test('a worker that crashes is replaced on the live version; a push while it is down reaches all', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  const [first] = pool.started as [InProcessWorker]
  await first.exit(null, 'SIGKILL')
  const response = await fetch(`${pool.apiUrl}/readyz`)
  t.equal(response.status, 503)
  t.match(await response.json(), { message: '1 of 2 workers serving' })
  t.equal((await pool.push(B)).status, 200, 'a push while a worker is down')
  await pool.ready()
  t.same(await policies(pool.serving()), ['B', 'B'], 'the replacement serves the policy pushed while it was down')
})

t.test('a worker that dies while it loads a push does not refuse it: its replacement serves it', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) => {
    if (message.cdni !== 'load') return null
    void second.exit(null, 'SIGKILL')
    return 'silent'
  }
  t.equal((await pool.push(B)).status, 200)
  await pool.ready()
  t.same(await policies(pool.serving()), ['B', 'B'])
})

t.test('a worker that does not answer the switch is replaced; meanwhile /readyz names it', async (t) => {
  const pool = await startPool(t, {}, { load: 2000, step: 1000, restart: 10 })
  t.equal((await pool.push(A)).status, 200)
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) => (message.cdni === 'commit' ? 'silent' : null)
  const pushed = pool.push(B)
  for (;;) {
    const body = (await (await fetch(`${pool.apiUrl}/readyz`)).json()) as { message?: string }
    if (body.message?.endsWith('serves version 1, not 2') === true) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal((await pushed).status, 200)
  t.ok(second.dead)
  await pool.ready()
  t.same(await policies(pool.serving()), ['B', 'B'])
})

t.test('a worker that fails to start is replaced', async (t) => {
  let refusals = 1
  // The first replacement (the third worker) refuses its first load, from the moment it is forked:
  // set later, the pool's message could reach it first.
  const pool = await startPool(t, {}, undefined, (worker, index) => {
    if (index === 2) {
      worker.intercept = (message) =>
        message.cdni === 'load' && refusals-- > 0 ? { cdni: 'reply', id: message.id, ok: false, error: 'no' } : null
    }
  })
  t.equal((await pool.push(A)).status, 200)
  const [first] = pool.started as [InProcessWorker]
  await first.exit(1, null)
  await pool.ready()
  while (pool.started.length < 4) await new Promise((resolve) => setTimeout(resolve, 5))
  const replacement = pool.started[2] as InProcessWorker
  await pool.ready()
  t.ok(replacement.dead)
  t.same(await policies(pool.serving()), ['A', 'A'])
})

t.test('a start that cannot admit a worker fails', async (t) => {
  const { surrogate } = await unstartedPool(
    (message) => (message.cdni === 'listen' ? { cdni: 'reply', id: message.id, ok: false, error: 'EADDRINUSE' } : null),
    { restart: 60_000 },
  )
  await t.rejects(surrogate.listen(), /EADDRINUSE/)
  await surrogate.close()
})

t.test('a stop while the workers start ends the start', async (t) => {
  // Never told to listen: the start is still under way when the stop comes.
  const { surrogate, started } = await unstartedPool((message) => (message.cdni === 'listen' ? 'silent' : null), {
    step: 60_000,
  })
  const listening = surrogate.listen()
  // Admissions take turns: the first is held at its listen, the second waits behind it.
  while (!started.some((worker) => worker.received.some((message) => message.cdni === 'listen'))) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const closed = surrogate.close()
  await t.rejects(listening, /stopped while starting/)
  await closed
  t.ok(
    started.every((worker) => worker.dead),
    'every worker drained',
  )
})

t.test('metrics add up the workers: decisions summed, the lowest and highest version served', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  await policies(pool.started)
  const text = await (await fetch(`${pool.apiUrl}/metrics`)).text()
  t.match(text, /cdni_authz_decisions_total\{outcome="allow",reason="rule"\} 2\n/)
  t.match(text, /cdni_authz_decisions_total\{outcome="deny",reason="no-rule-matched"\} 2\n/)
  t.match(text, /cdni_authz_workers_policy_version_min 1\n/)
  t.match(text, /cdni_authz_workers_policy_version_max 1\n/)
  const [first, second] = pool.started as [InProcessWorker, InProcessWorker]
  const allowed = () => allowedIn(pool.apiUrl)
  second.intercept = (message) => (message.cdni === 'metrics' ? 'silent' : null)
  t.equal(await allowed(), 2, 'a worker that does not answer is counted as last scraped')
  second.intercept = () => null
  await policies(pool.started)
  t.equal(await allowed(), 4)
  await first.exit(null, 'SIGKILL')
  t.equal(await allowed(), 4, 'the counts of a worker that died stay in the sum')
  await pool.ready()
  await policies(pool.serving())
  t.equal(await allowed(), 6, 'and its replacement adds to them')
  const [, , third] = pool.started as [InProcessWorker, InProcessWorker, InProcessWorker]
  await third.exit(null, 'SIGKILL')
  await pool.ready()
  t.equal(await allowed(), 6, 'two that died are folded into one entry')
  t.equal((await pool.surrogate.workers?.metrics())?.length, 3, 'two serving, one for the retired')
})

t.test('a worker that exits during a scrape is counted once', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  await policies(pool.started)
  await pool.surrogate.workers?.metrics()
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) => (message.cdni === 'metrics' ? 'silent' : null)
  const scrape = fetch(`${pool.apiUrl}/metrics`).then((response) => response.text())
  await new Promise((resolve) => setTimeout(resolve, 50))
  await second.exit(null, 'SIGKILL')
  t.match(await scrape, /cdni_authz_decisions_total\{outcome="allow",reason="rule"\} 2\n/)
})

t.test('a worker whose channel closed under a send is counted as last scraped', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  await policies(pool.started)
  await pool.surrogate.workers?.metrics()
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  // Exiting: its channel refuses messages, and its exit has not been seen yet.
  second.dead = true
  const text = await (await fetch(`${pool.apiUrl}/metrics`)).text()
  second.dead = false
  t.match(text, /cdni_authz_decisions_total\{outcome="allow",reason="rule"\} 2\n/)
  t.same(
    second.received.filter((message) => message.cdni === 'metrics').length,
    1,
    'the send was refused, not delivered',
  )
})

t.test('a worker that answers a scrape and then exits during it is counted once, then stays', async (t) => {
  const pool = await startPool(t, {}, { load: 2000, restart: 10, step: 1000 })
  t.equal((await pool.push(A)).status, 200)
  await policies(pool.started)
  t.equal(await allowedIn(pool.apiUrl), 2)
  const [first, second] = pool.started as [InProcessWorker, InProcessWorker]
  // The second holds the scrape open; the first has answered it when it exits.
  second.intercept = (message) => (message.cdni === 'metrics' ? 'silent' : null)
  const asked = () => first.received.filter((message) => message.cdni === 'metrics').length
  const before = asked()
  const scrape = fetch(`${pool.apiUrl}/metrics`)
  while (asked() === before) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 50))
  await first.exit(null, 'SIGKILL')
  t.equal(await allowedIn(scrape), 2, 'counted once in the scrape it left')
  second.intercept = () => null
  t.equal(await allowedIn(pool.apiUrl), 2, 'and once in the next')
})

t.test('a worker switched out and killed counts until its exit, and after', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  await policies(pool.started)
  const allowed = () => allowedIn(pool.apiUrl)
  t.equal(await allowed(), 2)
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  // Its commit fails: it is switched out and killed; the kill is held, so its exit comes later.
  const kill = second.process.kill
  second.process.kill = () => {}
  second.intercept = (message) =>
    message.cdni === 'commit' ? { cdni: 'reply', id: message.id, ok: false, error: 'cannot switch' } : null
  t.equal((await pool.push(B)).status, 200)
  const asked = second.received.filter((message) => message.cdni === 'metrics').length
  t.equal(await allowed(), 2, 'between its kill and its exit')
  t.equal(second.received.filter((message) => message.cdni === 'metrics').length, asked, 'not asked once switched out')
  second.process.kill = kill
  await second.exit(null, 'SIGKILL')
  t.equal(await allowed(), 2, 'and after it')
})

t.test("a stop while the start writes the restored policy's snapshot ends the start, forking nobody", async (t) => {
  const cfg = config({ workers: 2 })
  const first = inProcessFork(cfg)
  const before = await createSurrogate(cfg, { workers: { fork: first.fork, timeouts: { restart: 10 } } })
  const { apiUrl } = await before.listen()
  t.equal(
    (
      await fetch(`${apiUrl}/cdni/metadata`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...AUTH },
        body: JSON.stringify(A),
      })
    ).status,
    200,
  )
  await before.close()
  const { fork, started } = inProcessFork(cfg)
  const surrogate = await createSurrogate(cfg, { workers: { fork } })
  t.ok(surrogate.content.cdniAuthz.loaded, 'the stored policy is restored')
  const listening = surrogate.listen()
  const closed = surrogate.close()
  await t.rejects(listening, /stopped while starting/)
  await closed
  t.equal(started.length, 0, 'no worker forked')
})

t.test('SIGHUP reloads the databases of every worker', async (t) => {
  const pool = await startPool(t)
  const lines = await pool.surrogate.reloadWorkerDatabases()
  t.equal(lines.length, 2)
  t.match(lines[0], /^country .*iptoasn-country\.mmdb \(country ipvAll\), AS none$/)
  const [, second] = pool.started as [InProcessWorker, InProcessWorker]
  second.intercept = (message) =>
    message.cdni === 'reload' ? { cdni: 'reply', id: message.id, ok: false, error: 'unreadable' } : null
  t.match((await pool.surrogate.reloadWorkerDatabases())[1], 'failed: unreadable')
  t.match(second.reloadDatabases(), /^country /, 'a worker reloads on its own SIGHUP too')
})

t.test('staleness from the follower reaches every worker, and each one admitted later', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  const workers = pool.surrogate.workers
  workers?.markStale('all')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(await policies(pool.started), ['403/403', '403/403'])
  await (pool.started[0] as InProcessWorker).exit(null, 'SIGKILL')
  await pool.ready()
  t.same(await policies(pool.serving()), ['403/403', '403/403'], 'the replacement is stale too')
  const [, second] = pool.serving() as [InProcessWorker, InProcessWorker]
  second.intercept = (message) =>
    message.cdni === 'stale' ? { cdni: 'reply', id: message.id, ok: false, error: 'no' } : null
  workers?.markStale(null)
  await pool.ready()
  t.ok(second.dead, 'a worker that does not take the staleness is replaced')
  t.same(await policies(pool.serving()), ['A', 'A'])
})

t.test('staleness that changes while a worker is admitted reaches it before it serves', async (t) => {
  let changeBeforeAdmission: (() => void) | null = null
  let changeDuringAdmission: (() => void) | null = null
  const pool = await startPool(t, {}, undefined, (worker, index) => {
    // The replacement (the third forked): the staleness changes once before its admission (it is
    // not told then, and learns it as it is admitted), then while its admission tells it the
    // staleness of the moment, as the follower's timer could. Deferred, as a change would come
    // after the fork and after the message was sent.
    if (index !== 2) return
    if (changeBeforeAdmission !== null) setImmediate(changeBeforeAdmission)
    worker.intercept = (message) => {
      if (message.cdni === 'stale' && changeDuringAdmission !== null) {
        setImmediate(changeDuringAdmission)
        changeDuringAdmission = null
      }
      return null
    }
  })
  t.equal((await pool.push(A)).status, 200)
  const workers = pool.surrogate.workers
  changeBeforeAdmission = () => workers?.markStale(['other.example'])
  changeDuringAdmission = () => workers?.markStale('all')
  await (pool.started[0] as InProcessWorker).exit(null, 'SIGKILL')
  await pool.ready()
  t.same(await policies(pool.serving()), ['403/403', '403/403'], 'the replacement took the change too')
  const told = (pool.started[2] as InProcessWorker).received.map((message) => message.cdni)
  t.same(
    told.filter((name) => name === 'stale' || name === 'listen'),
    ['stale', 'stale', 'listen'],
    'the first at its admission, the change as it came, both before its listen',
  )
  t.match(
    (pool.started[2] as InProcessWorker).received.find((message) => message.cdni === 'stale'),
    { cdni: 'stale', hosts: ['other.example'] },
    'told at admission what changed before it',
  )
})

t.test('a follower marks the workers stale through the pool', async (t) => {
  // A source that cannot be reached and no kept cache: everything it governs is denied.
  const pool = await startPool(t, { follow: ['http://127.0.0.1:9/metadata'] })
  t.same(await policies(pool.started), ['403/403', '403/403'])
  t.ok(
    pool.started.every((worker) => worker.received.some((message) => message.cdni === 'stale')),
    'each worker was told',
  )
})

t.test('a snapshot the workers cannot be given refuses the push: a storage error', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  // A folder where the staged file goes: the write fails, before any worker is asked.
  mkdirSync(join(pool.cfg.stateDir, STAGED_SNAPSHOT_FILE))
  const refused = await pool.push(B)
  t.equal(refused.status, 503)
  t.match(await refused.json(), { message: /could not store the document/ })
  t.same(await policies(pool.started), ['A', 'A'])
})

t.test('a document that cannot be stored after the workers loaded it switches nobody', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  // state.json as a folder: the store's rename onto it fails, after the workers have loaded B.
  rmSync(join(pool.cfg.stateDir, 'state.json'))
  mkdirSync(join(pool.cfg.stateDir, 'state.json', 'x'), { recursive: true })
  const refused = await pool.push(B)
  t.equal(refused.status, 503)
  t.ok(
    pool.started.every((worker) => worker.received.some((message) => message.cdni === 'abort')),
    'every worker dropped it',
  )
  t.same(await policies(pool.started), ['A', 'A'])
})

t.test('a snapshot that cannot be moved into place leaves the staged one committed, for replacements', async (t) => {
  const pool = await startPool(t)
  t.equal((await pool.push(A)).status, 200)
  // A folder in the snapshot's place: the rename onto it fails once the document is stored.
  rmSync(join(pool.cfg.stateDir, SNAPSHOT_FILE))
  mkdirSync(join(pool.cfg.stateDir, SNAPSHOT_FILE, 'x'), { recursive: true })
  t.equal((await pool.push(B)).status, 200)
  t.same(await policies(pool.started), ['B', 'B'])
  await (pool.started[0] as InProcessWorker).exit(null, 'SIGKILL')
  await pool.ready()
  t.same(await policies(pool.serving()), ['B', 'B'], 'the replacement loaded the staged snapshot')
})

t.test('a restart with a damaged snapshot compiles the document and serves its policy', async (t) => {
  const first = await startPool(t)
  t.equal((await first.push(A)).status, 200)
  await first.surrogate.close()
  const path = join(first.cfg.stateDir, SNAPSHOT_FILE)
  const good = readFileSync(path)
  const intact = await startPool(t, { stateDir: first.cfg.stateDir })
  t.same(await policies(intact.started), ['A', 'A'], 'an intact snapshot: its policy, at its version')
  t.equal(intact.surrogate.content.cdniAuthz.version, 1)
  await intact.surrogate.close()
  for (const [what, bytes] of [
    ['truncated', good.subarray(0, good.length >> 1)],
    ['corrupt', Buffer.from(good.map((byte, i) => (i === good.length - 9 ? byte ^ 0xff : byte)))],
    ['not a snapshot', Buffer.from('{"deliveryCriteria":[]}')],
  ] as const) {
    writeFileSync(path, bytes)
    const again = await startPool(t, { stateDir: first.cfg.stateDir })
    t.same(await policies(again.started), ['A', 'A'], `${what}: the document's policy`)
    t.same(readFileSync(path), good, `${what}: the snapshot is written anew`)
    await again.surrogate.close()
  }
})

t.test('a restart with a snapshot of another document compiles the document', async (t) => {
  const other = await startPool(t)
  t.equal((await other.push(B)).status, 200)
  await other.surrogate.close()
  const first = await startPool(t)
  t.equal((await first.push(A)).status, 200)
  await first.surrogate.close()
  writeFileSync(join(first.cfg.stateDir, SNAPSHOT_FILE), readFileSync(join(other.cfg.stateDir, SNAPSHOT_FILE)))
  const again = await startPool(t, { stateDir: first.cfg.stateDir })
  t.same(await policies(again.started), ['A', 'A'])
})

t.test('a worker ignores messages that are not the primary’s, and refuses a switch it did not load', async (t) => {
  const pool = await startPool(t)
  const [first] = pool.started as [InProcessWorker]
  first.send({ cdni: 'commit', id: 99, etag: '"sha256-x"' }, () => undefined)
  const reply = await new Promise((resolve) =>
    first.on('message', (message: { id?: number }) => message.id === 99 && resolve(message)),
  )
  t.match(reply, { ok: false, error: /no snapshot of "sha256-x" is loaded/ })
  ;(first as unknown as { deliver: (message: unknown) => void }).deliver({ type: 'prom-client:getMetricsReq' })
  ;(first as unknown as { deliver: (message: unknown) => void }).deliver(null)
  t.same(await policies([first]), ['403/403'], 'still serving')
})
