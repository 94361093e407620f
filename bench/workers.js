// `serve --workers N`: the real program (dist/surrogate/cli.js) with 1 worker (the single process)
// and with 2, each in turn: the time from a push to its 200 (idle, and under load), the resident
// memory of each process before and after a policy of BENCH_WORKERS_PREFIXES prefixes is live,
// and the CPU each process spends per request under the same load (from /proc: user + system
// time over requests answered). The load generator (bench/lib/load.js, pinned to core 1 when
// taskset is there) shares the cores with the workers: on a 2-core box the throughput of 2
// workers is bounded by it, so compare the CPU per request, not the requests per second.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ipv4Prefixes } from './lib/data.js'
import { startLoad } from './lib/run-load.js'

const size = Number(process.env.BENCH_WORKERS_PREFIXES ?? 200_000)
const seconds = Number(process.env.BENCH_WORKERS_SECONDS ?? 8)
const TOKEN = 'bench-token-0123456789abcdef'
const CLI = new URL('../dist/surrogate/cli.js', import.meta.url).pathname
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const policy = (own) =>
  JSON.stringify({
    deliveryCriteria: [{ region: { subnet: [own, ...ipv4Prefixes(size).map((prefix) => prefix.text)] } }],
  })
const documents = [policy('10.0.0.0/8'), policy('11.0.0.0/8')]

/** Resident memory (MB) and CPU time (s, user + system) of a process, from /proc. */
function usage(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return {
    rssMb: Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 102.4) / 10,
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICK,
  }
}

const childrenOf = (pid) =>
  execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(Number)

async function start(workers) {
  const base = mkdtempSync(join(tmpdir(), 'cdni-bench-workers-'))
  mkdirSync(join(base, 'content'))
  writeFileSync(join(base, 'content', 'hello.txt'), 'hello')
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      ...['--port', '0', '--api-port', '0', '--log-level', 'error', '--root', join(base, 'content')],
      ...['--state-dir', join(base, 'state'), '--trusted-proxies', '127.0.0.1/32', '--workers', String(workers)],
      ...['--body-limit', String(256 * 1024 * 1024)],
    ],
    { env: { ...process.env, CDNI_API_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  child.stdout.on('data', (chunk) => (out += chunk))
  let urls
  while ((urls = /serving content on (\S+)\ncdni-authz: push API on (\S+)\/cdni\/metadata/.exec(out)) === null) {
    if (child.exitCode !== null) throw new Error(`the server did not start:\n${out}`)
    await sleep(20)
  }
  // With workers, the serving processes are the primary's children; alone, the process itself.
  const servers = workers === 1 ? [child.pid] : childrenOf(child.pid)
  return { base, child, contentUrl: urls[1], apiUrl: urls[2], servers }
}

async function push(apiUrl, text) {
  const started = performance.now()
  const response = await fetch(`${apiUrl}/cdni/metadata`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: text,
  })
  await response.arrayBuffer()
  if (response.status !== 200) throw new Error(`push answered ${response.status}`)
  return performance.now() - started
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const round = (value, places = 1) => Math.round(value * 10 ** places) / 10 ** places

for (const workers of [1, 2]) {
  const server = await start(workers)
  const { base, child, contentUrl, apiUrl, servers } = server
  const before = servers.map(usage)
  const primaryBefore = usage(child.pid)
  // The first push compiles the document in the primary; five more switch between two documents.
  await push(apiUrl, documents[0])
  const idle = []
  for (let i = 1; i <= 5; i++) idle.push(await push(apiUrl, documents[i % 2]))
  await sleep(1000)
  const after = servers.map(usage)
  const primaryAfter = usage(child.pid)

  // A push under load, then a load of its own for the CPU: every request answered in it, over
  // the CPU each server spent from before it started to after it ended (idle costs next to none).
  const pushLoad = startLoad(`${contentUrl}/hello.txt`, 4, { LOAD_ONLY: '0,1' })
  await sleep(1500)
  const underLoad = await push(apiUrl, documents[0])
  await pushLoad.result
  const cpuStart = servers.map(usage)
  const primaryStart = usage(child.pid)
  const result = await startLoad(`${contentUrl}/hello.txt`, seconds, { LOAD_ONLY: '0,1' }).result
  const cpuEnd = servers.map(usage)
  const primaryEnd = usage(child.pid)
  const cpuPerProcess = cpuEnd.map((end, i) => end.cpuSeconds - cpuStart[i].cpuSeconds)
  const totalCpu = cpuPerProcess.reduce((sum, cpu) => sum + cpu, 0)
  console.log(
    JSON.stringify({
      suite: 'workers',
      workers,
      prefixes: size,
      pushToOkMsIdleMedian: Math.round(median(idle)),
      pushToOkMsUnderLoad: Math.round(underLoad),
      serverRssMbEmpty: before.map((u) => u.rssMb),
      serverRssMbWithPolicy: after.map((u) => u.rssMb),
      policyMbPerServer: round(median(after.map((u, i) => u.rssMb - before[i].rssMb))),
      primaryRssMb: workers === 1 ? null : { empty: primaryBefore.rssMb, withPolicy: primaryAfter.rssMb },
      rps: result.rps,
      requests: result.requests,
      cpuSecondsPerServer: cpuPerProcess.map((cpu) => round(cpu, 2)),
      primaryCpuSeconds: workers === 1 ? null : round(primaryEnd.cpuSeconds - primaryStart.cpuSeconds, 2),
      cpuUsPerRequest: round((totalCpu / result.requests) * 1e6),
    }),
  )
  child.kill('SIGTERM')
  await new Promise((resolve) => child.on('exit', resolve))
  rmSync(base, { recursive: true, force: true })
}
