// Faults: the server killed with SIGKILL at random points while pushes are in flight, a state
// directory that fills up, one that turns read-only. After each, what is live (and what a restart
// serves) is the last document acknowledged or a later one, never a torn one, never nothing
// after something, and never an open door. KILL_RUNS sets how many kills (6 in `npm test`).
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AUTH, config, start } from './helpers/surrogate.js'
import { spawnServer, type ServerProcess } from './helpers/process.js'

const KILLS = Number(process.env.KILL_RUNS ?? 6)

// Filler shared by every document (4,000 prefixes in 12/8, about 80 KB), so each push takes some
// milliseconds to parse, compile and write, and kills land in every phase of it.
const FILLER = Array.from({ length: 4000 }, (_, i) => `12.${i >> 8}.${i & 255}.0/24`)
/** Document n allows 11.(n>>8).(n&255).0/24, which no other document does. */
const doc = (n: number) =>
  JSON.stringify({ deliveryCriteria: [{ region: { subnet: [`11.${n >> 8}.${n & 255}.0/24`, ...FILLER] } }] })
const sourceOf = (n: number) => `11.${n >> 8}.${n & 255}.1`

async function liveDocument(s: ServerProcess): Promise<number | null> {
  const response = await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })
  if (response.status === 404) return null
  const text = await response.text()
  const n = Number(
    /"11\.(\d+)\.(\d+)\.0\/24"/
      .exec(text)
      ?.slice(1)
      .reduce((high, low) => String(Number(high) * 256 + Number(low))),
  )
  if (text !== doc(n)) throw new Error(`the live document is none of the pushed ones: ${text.slice(0, 120)}…`)
  return n
}

const versionOf = async (s: ServerProcess) =>
  ((await (await fetch(`${s.apiUrl}/readyz`)).json()) as { version?: number }).version

/** Nothing but the two state files: no temporary survives a restart. */
function assertClean(t: Test, stateDir: string) {
  t.ok(
    readdirSync(stateDir).every((name) => name === 'metadata.json' || name === 'state.json'),
    `state directory holds only its two files (${readdirSync(stateDir).join(', ')})`,
  )
}

t.test(
  `SIGKILL at random points during pushes, ${KILLS} times: each restart serves the last acknowledged document or the one after`,
  async (t) => {
    const stateDir = join(mkdtempSync(join(tmpdir(), 'cdni-authz-kill-')), 'state')
    let acked = 0 // the newest document a 200 was received for (0: none yet)
    let ackedVersion = 0
    let next = 0
    const outcomes = { nothingYet: 0, lastAcknowledged: 0, committedUnacknowledged: 0 }
    let pushesAcknowledged = 0
    for (let round = 0; round <= KILLS; round++) {
      const s = await spawnServer(['--state-dir', stateDir, '--trusted-proxies', '127.0.0.1/32'])
      const n = await liveDocument(s)
      if (n === null) {
        t.equal(acked, 0, 'no document after one was acknowledged would be a loss')
        outcomes.nothingYet++
      } else {
        t.ok(
          n === acked || (n === acked + 1 && n === next),
          `restart ${round}: document ${n}, last acknowledged ${acked}, last sent ${next}`,
        )
        t.equal(await versionOf(s), n === acked ? ackedVersion : ackedVersion + 1, 'and its version')
        if (n === acked) outcomes.lastAcknowledged++
        else outcomes.committedUnacknowledged++
        acked = n
        ackedVersion = (await versionOf(s)) as number
        t.equal(await s.fetchAs(sourceOf(n)), 200, 'the document is enforced')
        if (n > 1) t.equal(await s.fetchAs(sourceOf(n - 1)), 403, 'the one before is not')
        assertClean(t, stateDir)
      }
      t.equal(await s.fetchAs('13.1.1.1'), 403, 'never open')
      if (round === KILLS) {
        t.equal(await s.stop(), 0)
        break
      }
      // A push's life is parse, compile (in a worker), two durable writes, then the answer. After one
      // to three acknowledged pushes, the kill is armed at a random point of the next push's life, as
      // long as the last one took (and up to half again, so some land between two pushes).
      const armAfter = 1 + Math.floor(Math.random() * 3)
      let timer: NodeJS.Timeout | undefined
      try {
        for (let sent = 0; ; sent++) {
          const began = performance.now()
          const response = await s.push(doc(++next))
          await response.arrayBuffer().catch(() => undefined)
          t.equal(response.status, 200, `push ${next}`)
          acked = next
          ackedVersion++
          pushesAcknowledged++
          if (sent + 1 === armAfter) {
            timer = setTimeout(() => s.child.kill('SIGKILL'), Math.random() * 1.5 * (performance.now() - began))
          }
        }
      } catch {
        // The kill: the push in flight lost its connection.
      }
      clearTimeout(timer)
      t.match(await s.exited, { signal: 'SIGKILL' })
    }
    t.comment(
      `kills: ${KILLS}; pushes acknowledged: ${pushesAcknowledged}; restarts with nothing yet: ${outcomes.nothingYet}, with the last acknowledged document: ${outcomes.lastAcknowledged}, with a document committed but not yet acknowledged: ${outcomes.committedUnacknowledged}`,
    )
  },
)

t.test(
  'a full state directory: the push fails with a clear 503, the live policy keeps serving, a restart serves it',
  async (t) => {
    const stateDir = join(mkdtempSync(join(tmpdir(), 'cdni-authz-full-')), 'state')
    // Files may not grow past 16 KB: the small document fits, doc(1) (about 80 KB) does not.
    const small = JSON.stringify({ deliveryCriteria: [{ region: { subnet: '10.1.0.0/16' } }] })
    const s = await spawnServer(['--state-dir', stateDir, '--trusted-proxies', '127.0.0.1/32'], { fileSizeLimitKb: 16 })
    t.equal((await s.push(small)).status, 200)
    const refused = await s.push(doc(1))
    t.equal(refused.status, 503)
    t.match(await refused.json(), { message: 'could not store the document (EFBIG); the live policy is unchanged' })
    t.equal(await s.fetchAs('10.1.1.1'), 200, 'the live policy keeps serving')
    t.equal(await s.fetchAs(sourceOf(1)), 403, 'the refused document is not live')
    t.equal(await (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })).text(), small)
    assertClean(t, stateDir)
    t.equal(await s.stop(), 0)
    const again = await spawnServer(['--state-dir', stateDir, '--trusted-proxies', '127.0.0.1/32'])
    t.equal(
      await (await fetch(`${again.apiUrl}/cdni/metadata`, { headers: AUTH })).text(),
      small,
      'a restart serves the document acknowledged',
    )
    t.equal(await versionOf(again), 1, 'with its version, though the refused push left its record')
    t.equal((await again.push(doc(1))).status, 200, 'with room again, the same push is taken')
    t.equal(await versionOf(again), 2)
    t.equal(await again.stop(), 0)
  },
)

// chmod does not stop root; the immutable attribute does (ext4, xfs, btrfs).
const lock = (dir: string, on: boolean) =>
  process.getuid?.() === 0
    ? execFileSync('chattr', [on ? '+i' : '-i', dir], { stdio: 'ignore' })
    : chmodSync(dir, on ? 0o500 : 0o700)

/** Why this machine cannot make a directory read-only, or false when it can. */
function cannotLock(): string | false {
  const dir = mkdtempSync(join(tmpdir(), 'cdni-authz-lock-'))
  try {
    lock(dir, true)
  } catch (err) {
    return `cannot make a directory read-only here: ${(err as Error).message}`
  }
  try {
    writeFileSync(join(dir, 'probe'), '')
    return 'a directory made read-only here still takes writes'
  } catch {
    return false
  } finally {
    lock(dir, false)
  }
}

t.test(
  'a state directory turned read-only: the push fails with a clear 503, the live policy keeps serving',
  { skip: cannotLock() },
  async (t) => {
    const cfg = config()
    const s = await start(cfg)
    t.teardown(() => s.surrogate.close())
    t.equal((await s.push(doc(1))).status, 200)
    lock(cfg.stateDir, true)
    t.teardown(() => lock(cfg.stateDir, false))
    const refused = await s.push(doc(2))
    t.equal(refused.status, 503)
    t.match(await refused.json(), {
      message: /^could not store the document \((EPERM|EACCES|EROFS)\); the live policy is unchanged$/,
    })
    t.equal(await s.fetchAs(sourceOf(1)), 200, 'the live policy keeps serving')
    t.equal(await s.fetchAs(sourceOf(2)), 403)
    lock(cfg.stateDir, false)
    t.equal((await s.push(doc(2))).status, 200, 'writable again: the same push is taken')
    t.equal(await s.fetchAs(sourceOf(2)), 200)
  },
)
