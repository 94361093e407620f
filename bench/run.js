// Runs each benchmark suite in its own process (so one suite's heap and JIT state cannot colour
// another's), prints a table and writes the results as JSON to bench/results/ (git-ignored).
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'

const here = new URL('.', import.meta.url)
const suites = [
  { name: 'compile 1M IPv4 + 200k IPv6', script: 'compile.js', flags: ['--expose-gc'] },
  { name: 'lookup IPv4, 1,000,000 prefixes', script: 'lookup.js', env: { BENCH_FAMILY: '4', BENCH_SIZE: '1000000' } },
  { name: 'lookup IPv6, 200,000 prefixes', script: 'lookup.js', env: { BENCH_FAMILY: '6', BENCH_SIZE: '200000' } },
  { name: 'lookup MSISDN, 1,000,000 prefixes', script: 'lookup.js', env: { BENCH_FAMILY: 'msisdn', BENCH_SIZE: '1000000' } },
  { name: 'hot swap under load', script: 'push.js' },
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
console.table(results.map(({ name, suite, ...rest }) => ({ name, ...rest })))
const folder = new URL('results/', here)
mkdirSync(folder, { recursive: true })
const file = new URL(`bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, folder)
writeFileSync(file, JSON.stringify({ node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, results }, null, 2))
console.log(`results written to ${file.pathname}`)
