// Snapshot benchmark: the 1,000,000 IPv4 + 200,000 IPv6 prefix policy of compile.js, compiled
// from its JSON text, then written as a snapshot and loaded back (read, verify, views). A worker
// or a restart pays the load instead of the compile; the target is under 100 ms, and ten times
// faster than compiling. Load is timed cold (the first in the process, which also fingerprints
// the build) and warm (the median of five), by ETag as a cluster's workers would, and by text
// (which hashes the document); readFileMs is the file read alone, the floor under any load.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { preparePolicy } from '../dist/load/prepare.js'
import { readPolicySnapshot, writePolicySnapshot } from '../dist/snapshot/policy-snapshot.js'
import { ipv4Prefixes, ipv6Prefixes } from './lib/data.js'

const v4Count = Number(process.env.BENCH_V4 ?? 1_000_000)
const v6Count = Number(process.env.BENCH_V6 ?? 200_000)
const context = { gatewaysConfigured: false, countryDatabase: false, asnDatabase: false }

const text = JSON.stringify({
  deliveryCriteria: [
    { region: { subnet: [...ipv4Prefixes(v4Count).map((p) => p.text), ...ipv6Prefixes(v6Count).map((p) => p.text)] } },
    { protocol: ['http', 'https'] },
  ],
})
const timed = async (fn) => {
  const t0 = performance.now()
  const value = await fn()
  return { ms: performance.now() - t0, value }
}
const median = (list) => list.slice().sort((a, b) => a - b)[Math.floor(list.length / 2)]

const dir = mkdtempSync(join(tmpdir(), 'cdni-snapshot-'))
try {
  const path = join(dir, 'metadata.snapshot')
  const compile = await timed(() => preparePolicy(text, context))
  const prepared = compile.value
  const identity = { etag: prepared.etag, context }
  const write = await timed(() => writePolicySnapshot(path, prepared.compiled, 1, identity))
  const cold = await timed(() => readPolicySnapshot(path, { etag: prepared.etag }, context))
  if (JSON.stringify(cold.value.site.summary) !== JSON.stringify(prepared.compiled.summary)) {
    throw new Error('the snapshot does not hold the compiled policy')
  }
  const warm = []
  const byText = []
  const readOnly = []
  for (let i = 0; i < 5; i++) {
    readOnly.push((await timed(() => readFileSync(path))).ms)
    warm.push((await timed(() => readPolicySnapshot(path, { etag: prepared.etag }, context))).ms)
    byText.push((await timed(() => readPolicySnapshot(path, text, context))).ms)
  }
  const loadMs = median(warm)
  console.log(
    JSON.stringify({
      suite: 'snapshot',
      ipv4: v4Count,
      ipv6: v6Count,
      documentMB: +(Buffer.byteLength(text) / 1048576).toFixed(1),
      compileMs: Math.round(compile.ms),
      writeMs: Math.round(write.ms),
      fileMB: +(write.value / 1048576).toFixed(1),
      coldLoadMs: +cold.ms.toFixed(1),
      loadMs: +loadMs.toFixed(1),
      // The floor under loadMs on this machine: the same file read into memory, nothing checked.
      readFileMs: +median(readOnly).toFixed(1),
      loadByTextMs: +median(byText).toFixed(1),
      compileOverLoad: Math.round(compile.ms / loadMs),
    }),
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
}
