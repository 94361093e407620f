// Runs each benchmark suite in its own process (so one suite's heap and JIT state cannot colour
// another's), prints a table and writes the results as JSON to bench/results/ (git-ignored).
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'

const here = new URL('.', import.meta.url)
const suites = [
  { name: 'compile 1M IPv4 + 200k IPv6', script: 'compile.js', flags: ['--expose-gc'] },
  { name: 'snapshot 1M IPv4 + 200k IPv6', script: 'snapshot.js' },
  ...[1000, 100000, 1000000].map((size) => ({
    name: `peers IPv4 ${size.toLocaleString('en')}`,
    script: 'peers.js',
    flags: ['--expose-gc'],
    // A million queries at a million prefixes, so that the queries do not fit in cache either.
    env: { BENCH_FAMILY: '4', BENCH_SIZE: String(size), BENCH_QUERIES: String(Math.max(20000, size)) },
  })),
  ...[1000, 100000, 200000].map((size) => ({
    name: `peers IPv6 ${size.toLocaleString('en')}`,
    script: 'peers.js',
    flags: ['--expose-gc'],
    env: { BENCH_FAMILY: '6', BENCH_SIZE: String(size), BENCH_QUERIES: String(Math.max(20000, size)) },
  })),
  ...[10000, 1000000].map((size) => ({
    name: `MSISDN ${size.toLocaleString('en')}`,
    script: 'lookup.js',
    env: { BENCH_FAMILY: 'msisdn', BENCH_SIZE: String(size) },
  })),
  { name: 'HTTP, mixed traffic', script: 'http.js' },
  { name: 'HTTP, allowed traffic only', script: 'http.js', env: { LOAD_MIX: 'allowed' } },
  { name: 'hot swap under load', script: 'push.js' },
  { name: 'fleet: 50 followers of one origin', script: 'fleet.js' },
  { name: 'workers: 1 and 2, 200,000 prefixes', script: 'workers.js' },
  { name: 'RFC 8006 selection, 5,000 hosts x 20 patterns', script: 'site.js' },
  { name: 'country lookups, bundled database', script: 'geo.js' },
]
const only = process.argv[2]
const results = []
for (const suite of suites) {
  if (only && !suite.script.startsWith(only)) continue
  process.stderr.write(`running ${suite.name}...\n`)
  const output = execFileSync(process.execPath, [...(suite.flags ?? []), new URL(suite.script, here).pathname], {
    env: { ...process.env, ...suite.env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  for (const line of output.trim().split('\n')) results.push({ name: suite.name, ...JSON.parse(line) })
}
for (const r of results) {
  const figures = Object.entries(r)
    .filter(([k]) => k !== 'name' && k !== 'suite')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
  console.log(`${r.name}: ${figures.join(' ')}`)
}
const folder = new URL('results/', here)
mkdirSync(folder, { recursive: true })
const file = new URL(`bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, folder)
writeFileSync(
  file,
  JSON.stringify({ node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, results }, null, 2),
)
console.log(`results written to ${file.pathname}`)
