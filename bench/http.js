// End to end over HTTP: bare Fastify against Fastify with the plugin and a million-prefix policy,
// each server in its own process on core 0, autocannon on core 1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnNode, startLoad, pinned } from './lib/run-load.js'
import { ipv4Prefixes, median } from './lib/data.js'

const seconds = Number(process.env.BENCH_HTTP_SECONDS ?? 4)
const rounds = Number(process.env.BENCH_HTTP_ROUNDS ?? 5)
const size = Number(process.env.BENCH_PREFIXES ?? 1_000_000)

// The same young-generation size for both servers: left to itself, V8 grows it in the plugin
// server while it builds the million-prefix policy, which then makes that server scavenge less
// under load than the bare one, a 10% difference that has nothing to do with the plugin.
const NODE_FLAGS = ['--min-semi-space-size=16', '--max-semi-space-size=16']

// The policy: a million random prefixes (none in 10/8, 127/8 or 198.51.100/24, so the misses in
// lib/load.js's mix really miss), the load balancer's own test network, and the handset rule.
const scratchDir = mkdtempSync(join(tmpdir(), 'cdni-authz-bench-'))
const policyFile = join(scratchDir, 'policy.json')
const RESERVED = [
  [0x0a000000, 8],
  [0x7f000000, 8],
  [0xc6336400, 24],
]
const overlaps = (a, aLength, b, bLength) => {
  const length = Math.min(aLength, bLength)
  return length === 0 || (a ^ b) >>> (32 - length) === 0
}
const reserved = (p) => RESERVED.some(([network, length]) => overlaps(p.network, p.length, network, length))
writeFileSync(
  policyFile,
  JSON.stringify({
    deliveryCriteria: [
      {
        region: {
          subnet: [
            '10.1.0.0/16',
            ...ipv4Prefixes(size)
              .filter((p) => !reserved(p))
              .map((p) => p.text),
          ],
        },
      },
      { region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } },
      { protocol: ['http', 'https'] },
    ],
  }),
)

async function serve(mode) {
  const script = new URL('./lib/http-server.js', import.meta.url).pathname
  const child = spawnNode(0, [...NODE_FLAGS, script, mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_POLICY: policyFile },
  })
  const url = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('\n')) resolve(out.trim())
    })
    child.on('exit', (code) => reject(new Error(`${mode} server exited ${code}`)))
  })
  const cpu = () =>
    new Promise((resolve) => {
      child.once('message', (usage) => resolve(usage.user + usage.system))
      child.send('cpu')
    })
  return { url, cpu, stop: () => child.kill() }
}

/** One measured phase: autocannon's figures plus the server's CPU microseconds per request. */
async function phase(server) {
  const before = await server.cpu()
  const result = await startLoad(`${server.url}/hello`, seconds).result
  const after = await server.cpu()
  return { ...result, cpuUsPerRequest: (after - before) / result.requests }
}

// Both servers share core 0 and are loaded at the same time, each by its own load generator on
// core 1, so whatever the machine's neighbours do in a window hits both alike. The ratio compares
// each server's CPU time per request over the same window (the throughput ratio at saturation);
// requests per second are reported beside it.
// BENCH_HTTP_SECOND=bare or empty-hook checks the method itself (expect 1.0); deny-hook gives the
// floor for denials (Fastify answering 403 from a hook, no decision made); mixed-hook the floor
// for the mixed traffic (the plugin's answers, told apart by a header value).
const servers = { bare: await serve('bare'), plugin: await serve(process.env.BENCH_HTTP_SECOND ?? 'plugin') }
try {
  await Promise.all(Object.values(servers).map((server) => startLoad(`${server.url}/hello`, 2).result))
  const runs = { bare: [], plugin: [] }
  const ratios = []
  const cpuRatios = []
  for (let r = 0; r < rounds; r++) {
    const [bareRun, pluginRun] = await Promise.all([phase(servers.bare), phase(servers.plugin)])
    runs.bare.push(bareRun)
    runs.plugin.push(pluginRun)
    ratios.push(pluginRun.rps / bareRun.rps)
    cpuRatios.push(bareRun.cpuUsPerRequest / pluginRun.cpuUsPerRequest)
  }
  const summary = (list) => ({
    rps: median(list.map((x) => x.rps)),
    latencyP50: median(list.map((x) => x.latencyP50)),
    latencyP99: median(list.map((x) => x.latencyP99)),
    cpuUsPerRequest: Math.round(median(list.map((x) => x.cpuUsPerRequest)) * 100) / 100,
    errors: list.reduce((s, x) => s + x.errors + x.timeouts, 0),
    status5xx: list.reduce((s, x) => s + x.status['5xx'], 0),
    status4xx: list.reduce((s, x) => s + x.status['4xx'], 0),
  })
  console.log(
    JSON.stringify({
      suite: 'http',
      pinned,
      prefixes: size,
      seconds,
      rounds,
      bare: summary(runs.bare),
      plugin: summary(runs.plugin),
      // bare/plugin server CPU per request over the same windows: the guarded ratio
      ratio: Math.round(median(cpuRatios) * 1000) / 1000,
      ratios: cpuRatios.map((x) => Math.round(x * 1000) / 1000),
      // plugin/bare requests per second in the same windows (each server had about half a core)
      rpsRatio: Math.round(median(ratios) * 1000) / 1000,
    }),
  )
} finally {
  for (const server of Object.values(servers)) server.stop()
  rmSync(scratchDir, { recursive: true, force: true })
}
