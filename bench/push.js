// Hot swap benchmark: event-loop delay (sampled every 5 ms, so 5 ms means no delay) and request
// latency on the surrogate while a
// 1,000,000-prefix document is pushed through the API (prepared in a worker thread), next to
// the same document compiled on the event loop (cdniAuthz.update), under the same load.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { benchSurrogate, BENCH_TOKEN } from './lib/surrogate.js'
import { ipv4Prefixes } from './lib/data.js'
import { pinSelf, pinned, startLoad } from './lib/run-load.js'

const size = Number(process.env.BENCH_PUSH_PREFIXES ?? 1_000_000)
pinSelf(0)
const surrogate = await benchSurrogate({
  trustedProxies: ['127.0.0.1/32'],
  gateways: [{ name: 'bench', cidrs: ['127.0.0.2/32'], countryCode: '86' }],
  bodyLimit: 256 * 1024 * 1024,
})
const { contentUrl, apiUrl } = await surrogate.listen()
const small = JSON.stringify({
  deliveryCriteria: [
    { region: { subnet: '10.0.0.0/8' } },
    { region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } },
  ],
})
const big = JSON.stringify({
  deliveryCriteria: [
    { region: { subnet: ['10.0.0.0/8', ...ipv4Prefixes(size).map((p) => p.text)] } },
    { region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } },
  ],
})
const push = (text) =>
  fetch(`${apiUrl}/cdni/metadata`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
    body: text,
  })
if ((await push(small)).status !== 200) throw new Error('small push refused')

const ms = (ns) => Math.round(ns / 1e4) / 100
const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t))
async function phase(name, during) {
  // No pipelining: this measures latency, not saturation throughput.
  const load = startLoad(`${contentUrl}/hello.txt`, 60, { LOAD_PIPELINING: '1' })
  await sleep(1500)
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  let last = performance.now()
  let maxGap = 0
  const probe = setInterval(() => {
    const now = performance.now()
    maxGap = Math.max(maxGap, now - last)
    last = now
  }, 5)
  const started = performance.now()
  await during()
  const took = performance.now() - started
  // Keep sampling a little after: a stall shows up when the next timer finally fires.
  await sleep(500)
  delay.disable()
  clearInterval(probe)
  load.stop()
  const result = await load.result
  return {
    phase: name,
    tookMs: Math.round(took),
    loopDelayP50Ms: ms(delay.percentile(50)),
    loopDelayP99Ms: ms(delay.percentile(99)),
    loopDelayMaxMs: ms(delay.max),
    probeMaxGapMs: Math.round(maxGap),
    ...result,
  }
}

const rows = []
rows.push(await phase('steady load, no push (3 s)', () => sleep(3000)))
rows.push(
  await phase(`push ${size.toLocaleString('en')} prefixes via the API (worker)`, async () => {
    const response = await push(big)
    if (response.status !== 200) throw new Error(`big push answered ${response.status}`)
    await response.json()
  }),
)
rows.push(
  await phase(`same document compiled on the event loop`, async () => {
    await sleep(0)
    surrogate.content.cdniAuthz.update(big)
  }),
)
await surrogate.close()
for (const row of rows) console.log(JSON.stringify({ suite: 'push', pinned, ...row }))
