// Compile benchmark: 1,000,000 IPv4 plus 200,000 IPv6 prefixes from JSON text to a live policy,
// against JSON.parse of the same text in the same run. Run with --expose-gc.
//
// Time: parse, validate and compile one after the other, as a push does them, with no collection
// forced in between (a forced one would take the parse's garbage off the validation's bill).
// compileVsParse is the whole push (parse + validate + compile) over JSON.parse alone.
//
// Heap, in a second pass over the same text:
// - retained*MB: the JS heap still reachable after each stage (collected, then heapUsed) minus
//   the baseline, taken the same way with only the text alive: the document, then the document
//   and the validated model, then those and the compiled policy, then the compiled policy alone.
//   JS heap only: the compiled tables are typed arrays, counted in arrayBuffers*MB.
// - fitsHeapMB: the same push run in a child process whose old generation is capped there
//   (--max-old-space-size): "ok" when it completes, so the peak live JS heap (garbage included
//   only where V8 could not collect it in time) stays under the cap.
import { execFileSync } from 'node:child_process'
import { loadPolicyModel } from '../dist/load/delivery-criteria.js'
import { parseMetadataText } from '../dist/load/parse-text.js'
import { compilePolicy } from '../dist/policy/compile.js'
import { ipv4Prefixes, ipv6Prefixes } from './lib/data.js'

const v4Count = Number(process.env.BENCH_V4 ?? 1_000_000)
const v6Count = Number(process.env.BENCH_V6 ?? 200_000)
const heapCapMB = Number(process.env.BENCH_HEAP_CAP_MB ?? 200)
const gc = globalThis.gc
if (gc === undefined) throw new Error('run with --expose-gc')
const mb = (bytes) => Math.round(bytes / 1048576)

const text = JSON.stringify({
  deliveryCriteria: [
    { region: { subnet: [...ipv4Prefixes(v4Count).map((p) => p.text), ...ipv6Prefixes(v6Count).map((p) => p.text)] } },
    { protocol: ['http', 'https'] },
  ],
})

if (process.argv[2] === 'push-only') {
  // The child of the heap-cap check: the push and nothing else.
  const model = loadPolicyModel(parseMetadataText(text).value).model
  console.log(compilePolicy(model).summary.intervals)
  process.exit(0)
}

function push() {
  const t0 = performance.now()
  let parsed = parseMetadataText(text)
  const t1 = performance.now()
  const loaded = loadPolicyModel(parsed.value)
  // As preparePolicy does: the parsed document is unreachable while the model compiles.
  parsed = null
  const t2 = performance.now()
  const policy = compilePolicy(loaded.model)
  const t3 = performance.now()
  return { policy, ms: [t1 - t0, t2 - t1, t3 - t2] }
}

// JSON.parse of the same text, the yardstick, measured beside the push in each round. JSON.parse
// of this text alone takes anything from 150 to 380 ms from one run to the next on the reference
// VM (the collector's state), so the ratio is taken per round, where both share the machine's
// moment, and the median of the rounds' ratios is reported with their range.
const rounds = Math.max(1, Number(process.env.BENCH_COMPILE_ROUNDS ?? 5))
const jsonParseMs = []
const pushes = []
let intervals = 0
for (let round = 0; round < rounds; round++) {
  gc()
  const t = performance.now()
  JSON.parse(text)
  jsonParseMs.push(performance.now() - t)
  gc()
  const { policy, ms } = push()
  intervals = policy.summary.intervals
  pushes.push(ms)
}
const median = (list) => list.slice().sort((a, b) => a - b)[Math.floor(list.length / 2)]
const ratios = pushes.map((ms, i) => (ms[0] + ms[1] + ms[2]) / jsonParseMs[i])
// The figures of the round whose ratio is the median.
const middle = ratios.indexOf(median(ratios))
const best = pushes[middle]
const totalMs = best[0] + best[1] + best[2]
const parseOnlyMs = jsonParseMs[middle]

// Retained heap per stage.
const usage = () => {
  gc()
  gc()
  return process.memoryUsage()
}
const base = usage()
const parsed = parseMetadataText(text)
const afterParse = usage()
const loaded = loadPolicyModel(parsed.value)
const afterValidate = usage()
const policy = compilePolicy(loaded.model)
const afterCompile = usage()
parsed.value = null
loaded.model = null
const compiledOnly = usage()
if (policy.summary.intervals !== intervals) throw new Error('the second pass compiled something else')
const heap = (u) => mb(u.heapUsed - base.heapUsed)

let fitsHeapMB
try {
  execFileSync(
    process.execPath,
    [`--max-old-space-size=${heapCapMB}`, '--expose-gc', new URL(import.meta.url).pathname, 'push-only'],
    {
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  fitsHeapMB = { [heapCapMB]: 'ok' }
} catch {
  fitsHeapMB = { [heapCapMB]: 'out of memory' }
}

console.log(
  JSON.stringify({
    suite: 'compile',
    ipv4: v4Count,
    ipv6: v6Count,
    intervals,
    jsonParseMs: Math.round(parseOnlyMs),
    parseMs: Math.round(best[0]),
    validateMs: Math.round(best[1]),
    compileMs: Math.round(best[2]),
    totalMs: Math.round(totalMs),
    compileVsParse: Math.round(median(ratios) * 100) / 100,
    compileVsParseRange: [Math.min(...ratios), Math.max(...ratios)].map((r) => Math.round(r * 100) / 100),
    retainedDocumentMB: heap(afterParse),
    retainedDocumentAndModelMB: heap(afterValidate),
    retainedAllMB: heap(afterCompile),
    retainedCompiledMB: heap(compiledOnly),
    arrayBuffersCompiledMB: mb(compiledOnly.arrayBuffers - base.arrayBuffers),
    fitsHeapMB,
  }),
)
