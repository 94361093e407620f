// The CI guard: a short run of the lookup and HTTP comparisons that fails when a ratio falls past
// the thresholds in bench/thresholds.json. Ratios only, measured in the same run: this machine is
// shared and noisy, so no absolute time is ever compared.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

const here = new URL('.', import.meta.url)
const thresholds = JSON.parse(readFileSync(new URL('thresholds.json', here), 'utf8'))
const run = (script, env) =>
  execFileSync(process.execPath, [new URL(script, here).pathname], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))

const failures = []
const peers = run('peers.js', { BENCH_FAMILY: '4', BENCH_SIZE: '100000', BENCH_BUDGET_MS: '800' })
for (const row of peers) {
  console.log(`lookup 100k IPv4  ${row.peer.padEnd(26)} hit ${String(row.hitNs).padStart(9)} ns  miss ${String(row.missNs).padStart(9)} ns${row.tooSlow ? '  (too slow to finish the budget)' : ''}${row.disagreements ? `  ${row.disagreements} DISAGREEMENTS` : ''}`)
  if (row.disagreements > 0) failures.push(`${row.peer} disagrees with cdni-authz on ${row.disagreements} sampled addresses`)
}
const mean = (row) => (row.hitNs + row.missNs) / 2
const ours = peers.find((row) => row.peer === 'cdni-authz range table')
const npmPeers = peers.filter((row) => row.peer !== 'cdni-authz range table' && row.peer !== 'sorted array (baseline)')
const fastest = npmPeers.reduce((best, row) => (mean(row) < mean(best) ? row : best))
const lookupRatio = mean(ours) / mean(fastest)
console.log(`lookup: ours / fastest npm peer (${fastest.peer}) = ${lookupRatio.toFixed(3)} (max ${thresholds.lookupVsFastestPeer.max})`)
if (lookupRatio > thresholds.lookupVsFastestPeer.max) failures.push(`lookup ratio ${lookupRatio.toFixed(3)} > ${thresholds.lookupVsFastestPeer.max}`)

const [http] = run('http.js', { BENCH_HTTP_ROUNDS: '5', BENCH_HTTP_SECONDS: '3', BENCH_PREFIXES: '1000000' })
console.log(`http: bare ${http.bare.rps} req/s, plugin ${http.plugin.rps} req/s (each on half a core); CPU-per-request ratio ${http.ratio} per round ${http.ratios.join(', ')} (min ${thresholds.httpPluginOverBare.min})`)
if (http.bare.errors + http.plugin.errors + http.bare.status5xx + http.plugin.status5xx > 0) failures.push('errors or 5xx during the HTTP run')
if (http.ratio < thresholds.httpPluginOverBare.min) failures.push(`HTTP ratio ${http.ratio} < ${thresholds.httpPluginOverBare.min}`)

if (failures.length > 0) {
  console.log(`bench:ci FAILED\n- ${failures.join('\n- ')}`)
  process.exit(1)
}
console.log('bench:ci passed')
