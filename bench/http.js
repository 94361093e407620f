// End to end over HTTP: bare Fastify against Fastify with the plugin and a million-prefix policy,
// each server in its own process on core 0, autocannon on core 1, alternated to share the noise.
import { spawn, spawnSync } from 'node:child_process'
import { startLoad, pinned } from './lib/run-load.js'
import { median } from './lib/data.js'

const seconds = Number(process.env.BENCH_HTTP_SECONDS ?? 4)
const rounds = Number(process.env.BENCH_HTTP_ROUNDS ?? 7)
const size = Number(process.env.BENCH_PREFIXES ?? 1_000_000)
const hasTaskset = spawnSync('taskset', ['-V']).status === 0

async function serve(mode) {
  const script = new URL('./lib/http-server.js', import.meta.url).pathname
  const child = hasTaskset
    ? spawn('taskset', ['-c', '0', process.execPath, script, mode], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_PREFIXES: String(size) } })
    : spawn(process.execPath, [script, mode], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_PREFIXES: String(size) } })
  const url = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('\n')) resolve(out.trim())
    })
    child.on('exit', (code) => reject(new Error(`${mode} server exited ${code}`)))
  })
  return { url, stop: () => child.kill() }
}

// Both servers stay up (idle costs nothing); the load alternates between them in short phases and
// each ratio compares neighbouring phases, so drift in the machine's speed cancels out.
const servers = { bare: await serve('bare'), plugin: await serve('plugin') }
try {
  for (const server of Object.values(servers)) await startLoad(`${server.url}/hello`, 2).result
  const runs = { bare: [], plugin: [] }
  const ratios = []
  for (let r = 0; r < rounds; r++) {
    const bareRun = await startLoad(`${servers.bare.url}/hello`, seconds).result
    const pluginRun = await startLoad(`${servers.plugin.url}/hello`, seconds).result
    runs.bare.push(bareRun)
    runs.plugin.push(pluginRun)
    ratios.push(pluginRun.rps / bareRun.rps)
  }
  const summary = (list) => ({
    rps: median(list.map((x) => x.rps)),
    latencyP50: median(list.map((x) => x.latencyP50)),
    latencyP99: median(list.map((x) => x.latencyP99)),
    errors: list.reduce((s, x) => s + x.errors + x.timeouts, 0),
    status5xx: list.reduce((s, x) => s + x.status['5xx'], 0),
    status4xx: list.reduce((s, x) => s + x.status['4xx'], 0),
  })
  console.log(JSON.stringify({
    suite: 'http',
    pinned,
    prefixes: size,
    seconds,
    rounds,
    bare: summary(runs.bare),
    plugin: summary(runs.plugin),
    ratio: Math.round(median(ratios) * 1000) / 1000,
    ratios: ratios.map((x) => Math.round(x * 1000) / 1000),
  }))
} finally {
  for (const server of Object.values(servers)) server.stop()
}
