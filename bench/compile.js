// Compile benchmark: 1,000,000 IPv4 plus 200,000 IPv6 prefixes from JSON text to a live policy.
// Run with --expose-gc so heap figures are after collection.
import { loadPolicyModel } from '../dist/load/delivery-criteria.js'
import { parseMetadataText } from '../dist/load/parse-text.js'
import { compilePolicy } from '../dist/policy/compile.js'
import { ipv4Prefixes, ipv6Prefixes } from './lib/data.js'

const v4Count = Number(process.env.BENCH_V4 ?? 1_000_000)
const v6Count = Number(process.env.BENCH_V6 ?? 200_000)
const gc = globalThis.gc ?? (() => {})
const mb = (bytes) => Math.round(bytes / 1048576)

const text = JSON.stringify({
  deliveryCriteria: [
    { region: { subnet: [...ipv4Prefixes(v4Count).map((p) => p.text), ...ipv6Prefixes(v6Count).map((p) => p.text)] } },
    { protocol: ['http', 'https'] },
  ],
})
gc()
const base = process.memoryUsage()
const t0 = performance.now()
const parsed = parseMetadataText(text)
const t1 = performance.now()
const loaded = loadPolicyModel(parsed.value)
const t2 = performance.now()
const policy = compilePolicy(loaded.model)
const t3 = performance.now()
const peak = process.memoryUsage()
// The same compile once more with the document and its million strings dropped, as the push
// path does once validation is over: what the compiler itself costs.
parsed.value = null
gc()
const t4 = performance.now()
compilePolicy(loaded.model)
const t5 = performance.now()
parsed.value = null
loaded.model = null
gc()
const live = process.memoryUsage()
const result = {
  suite: 'compile',
  ipv4: v4Count,
  ipv6: v6Count,
  intervals: policy.summary.intervals,
  parseMs: Math.round(t1 - t0),
  validateMs: Math.round(t2 - t1),
  compileMs: Math.round(t3 - t2),
  compileAloneMs: Math.round(t5 - t4),
  totalMs: Math.round(t3 - t0),
  heapAfterCompileMB: mb(peak.heapUsed - base.heapUsed),
  arrayBuffersAfterCompileMB: mb(peak.arrayBuffers - base.arrayBuffers),
  liveHeapMB: mb(live.heapUsed - base.heapUsed),
  liveArrayBuffersMB: mb(live.arrayBuffers - base.arrayBuffers),
}
console.log(JSON.stringify(result))
