// One HTTP server for bench/http.js, in its own process: bare Fastify, or Fastify with the
// plugin and a policy of BENCH_PREFIXES IPv4 prefixes. Prints its URL, then serves until killed.
import Fastify from 'fastify'
import cdniAuthz from '../../dist/index.js'
import { ipv4Prefixes } from './data.js'

const mode = process.argv[2]
const size = Number(process.env.BENCH_PREFIXES ?? 1_000_000)
const app = Fastify({ logger: false })
if (mode === 'plugin') {
  await app.register(cdniAuthz, {
    trustedProxies: ['127.0.0.1/32'],
    gateways: [{ name: 'bench', cidrs: ['127.0.0.2/32'], countryCode: '86' }],
  })
  // The same mix load.js sends: 10.1.2.3 and the handset 10.5.31.7 with 135038... hit; the rest miss.
  app.cdniAuthz.update({
    deliveryCriteria: [
      { region: { subnet: ['10.0.0.0/16', ...ipv4Prefixes(size).map((p) => p.text)] } },
      { region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } },
      { protocol: ['http', 'https'] },
    ],
  })
} else if (mode === 'empty-hook') {
  // The floor: what any onRequest hook costs Fastify, whatever it does.
  app.addHook('onRequest', (_request, _reply, next) => next())
} else if (mode !== 'bare') {
  throw new Error('mode is bare, empty-hook or plugin')
}
app.get('/hello', async () => 'hello')
const url = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(url)
// The parent asks for CPU time around each measured phase: CPU per request is what the ratio
// means at saturation, and, unlike wall-clock throughput, steal time on a shared VM is not in it.
process.on('message', () => process.send(process.cpuUsage()))
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close().then(() => process.exit(0)))
