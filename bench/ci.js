// The CI guard: a short run of the lookup and HTTP comparisons that fails only on a gross
// regression. Ratios only, measured in the same run: the machines are shared and noisy, so no
// absolute time is ever compared, and the floors in bench/thresholds.json sit far enough below
// what the slowest runner measures that noise cannot cross them. A suite below its floor is run
// once more and fails the guard only when both runs are below: one bad window is noise, two in a
// row are the code. The targets themselves are measured by `npm run bench` (docs/BENCHMARKS.md).
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

const here = new URL('.', import.meta.url)
const thresholds = JSON.parse(readFileSync(new URL('thresholds.json', here), 'utf8'))
const run = (script, env) =>
  execFileSync(process.execPath, [new URL(script, here).pathname], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  })
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))

const OURS = 'cdni-authz range table'
const BASELINE = 'sorted array (baseline)'
const mean = (row) => (row.hitNs + row.missNs) / 2

/** One lookup run: our time over the fastest npm peer's, at 100,000 IPv4 prefixes. */
function lookupRun() {
  const rows = run('peers.js', { BENCH_FAMILY: '4', BENCH_SIZE: '100000', BENCH_BUDGET_MS: '800' })
  for (const row of rows) {
    console.log(
      `  lookup 100k IPv4  ${row.peer.padEnd(26)} hit ${String(row.hitNs).padStart(9)} ns  miss ${String(row.missNs).padStart(9)} ns${row.tooSlow ? '  (too slow to finish the budget)' : ''}${row.disagreements ? `  ${row.disagreements} DISAGREEMENTS` : ''}`,
    )
  }
  const ours = rows.find((row) => row.peer === OURS)
  const fastest = rows
    .filter((row) => row.peer !== OURS && row.peer !== BASELINE)
    .reduce((best, row) => (mean(row) < mean(best) ? row : best))
  const ratio = Math.round((mean(ours) / mean(fastest)) * 1000) / 1000
  const disagreements = rows
    .filter((row) => row.disagreements > 0)
    .map((row) => `${row.peer} disagrees with cdni-authz on ${row.disagreements} sampled addresses`)
  return { ratio, fastest: fastest.peer, disagreements }
}

/** One HTTP run: bare Fastify's CPU per request over the plugin's, and over a hook that gives
 * the same answers while deciding nothing (the floor Fastify itself sets for this traffic). */
function httpRun() {
  const env = { BENCH_HTTP_ROUNDS: '5', BENCH_HTTP_SECONDS: '3', BENCH_PREFIXES: '1000000' }
  const [plugin] = run('http.js', env)
  const [floor] = run('http.js', { ...env, BENCH_HTTP_SECOND: 'mixed-hook' })
  console.log(
    `  http: plugin/bare ${plugin.ratio} (rounds ${plugin.ratios.join(', ')}; bare ${plugin.bare.cpuUsPerRequest} us CPU per request), decides-nothing hook/bare ${floor.ratio} (rounds ${floor.ratios.join(', ')})`,
  )
  const errors = [plugin, floor].reduce(
    (sum, r) => sum + r.bare.errors + r.plugin.errors + r.bare.status5xx + r.plugin.status5xx,
    0,
  )
  return { ratio: plugin.ratio, floor: floor.ratio, errors }
}

/**
 * Runs `measure` and checks it with `passes`; below the floor, runs it once more. Returns the
 * failure message, or null.
 */
function guarded(name, measure, passes, describe) {
  const runs = []
  for (let attempt = 1; attempt <= 2; attempt++) {
    console.log(`${name}, run ${attempt}:`)
    const result = measure()
    runs.push(`run ${attempt} ${describe(result)}`)
    console.log(`${name}: ${runs.at(-1)}${passes(result) ? '' : ' BELOW THE FLOOR'}`)
    if (passes(result)) return null
  }
  return `${name}: ${runs.join('; ')}`
}

const failures = []
const lookup = thresholds.lookupVsFastestPeer.max
failures.push(
  guarded(
    'lookup',
    lookupRun,
    (r) => r.disagreements.length === 0 && r.ratio <= lookup,
    (r) =>
      `ours / fastest npm peer (${r.fastest}) = ${r.ratio} (max ${lookup})${r.disagreements.length ? `; ${r.disagreements.join('; ')}` : ''}`,
  ),
)
const http = thresholds.httpPluginOverBare.min
failures.push(
  guarded(
    'http',
    httpRun,
    (r) => r.errors === 0 && r.ratio >= http,
    (r) =>
      `plugin/bare ${r.ratio} (min ${http}), decides-nothing hook/bare ${r.floor}${r.errors ? `, ${r.errors} errors or 5xx` : ''}`,
  ),
)

const failed = failures.filter((failure) => failure !== null)
if (failed.length > 0) {
  console.log(`bench:ci FAILED (both runs below the floor)\n- ${failed.join('\n- ')}`)
  process.exit(1)
}
console.log('bench:ci passed')
