// Load generator for the HTTP benchmarks, run in its own process (pinned to its own core when
// taskset exists): autocannon against 127.0.0.1 until SIGINT or the duration, then one JSON line.
import autocannon from 'autocannon'

const url = process.argv[2]
const duration = Number(process.argv[3] ?? 10)
const connections = Number(process.env.LOAD_CONNECTIONS ?? 32)
// A mix of plain clients behind our load balancer and mobile gateway traffic, hits and misses.
const requests = [
  { headers: { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'http' } },
  { headers: { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'http' } },
  {
    headers: {
      'x-forwarded-for': '10.5.31.7, 127.0.0.2',
      'x-forwarded-proto': 'http',
      'x-up-calling-line-id': '8613503812345',
    },
  },
  {
    headers: {
      'x-forwarded-for': '10.9.9.9, 127.0.0.2',
      'x-forwarded-proto': 'http',
      'x-up-calling-line-id': '8613912345678',
    },
  },
]
// LOAD_MIX=allowed keeps only the requests the benchmark policy allows (the plugin's full cost:
// a denial short-circuits the route handler and is cheaper than an allowed request).
// LOAD_ONLY=1,3 sends only those requests of the list (to cost one path at a time).
const only = process.env.LOAD_ONLY?.split(',').map((i) => requests[Number(i)])
const mix = only ?? (process.env.LOAD_MIX === 'allowed' ? [requests[0], requests[2]] : requests)
if (!url.startsWith('http://127.0.0.1')) throw new Error('load tests target 127.0.0.1 only')
// Pipelining keeps the server, not this single-core load generator, the bottleneck.
const pipelining = Number(process.env.LOAD_PIPELINING ?? 8)
const instance = autocannon({ url, connections, duration, requests: mix, pipelining }, (err, result) => {
  if (err) throw err
  console.log(
    JSON.stringify({
      requests: result.requests.total,
      rps: Math.round(result.requests.average),
      latencyP50: result.latency.p50,
      latencyP99: result.latency.p99,
      latencyMax: result.latency.max,
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      status: { '2xx': result['2xx'], '4xx': result['4xx'], '5xx': result['5xx'] },
    }),
  )
})
process.once('SIGINT', () => instance.stop())
