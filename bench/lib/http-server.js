// One HTTP server for bench/http.js, in its own process: bare Fastify, or Fastify with the
// plugin and the policy in the file BENCH_POLICY. Prints its URL, then serves until killed.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import cdniAuthz from '../../dist/index.js'

const mode = process.argv[2]
const app = Fastify({ logger: false })

/**
 * Loads the policy the way the surrogate does (src/server.ts): parsed and compiled in the worker
 * thread, then committed. Parsing a 20 MB document on the main thread would leave about 200 MB of
 * garbage in its old space that V8 does not collect while the server is busy, and every scavenge
 * would then pay for walking it (0.9 ms instead of 0.35 ms here), a cost of the benchmark's
 * set-up rather than of the plugin.
 */
async function loadPolicy() {
  const prepared = await app.cdniAuthz.prepare(await readFile(process.env.BENCH_POLICY, 'utf8'))
  if (!prepared.ok) throw new Error(`benchmark policy refused: ${JSON.stringify(prepared.errors)}`)
  app.cdniAuthz.commit(prepared)
}

if (mode === 'plugin') {
  await app.register(cdniAuthz, {
    trustedProxies: ['127.0.0.1/32'],
    gateways: [{ name: 'bench', cidrs: ['127.0.0.2/32'], countryCode: '86' }],
  })
  await loadPolicy()
} else if (mode === 'empty-hook') {
  // The floor: what any onRequest hook costs Fastify, whatever it does.
  app.addHook('onRequest', (_request, _reply, next) => next())
} else if (mode === 'deny-hook') {
  // The floor for denials: what Fastify costs to answer 403 from a hook, with no decision made.
  app.addHook('onRequest', (_request, reply) => {
    reply
      .code(403)
      .header('content-type', 'application/json; charset=utf-8')
      .send('{"statusCode":403,"error":"Forbidden","message":"Access denied"}')
  })
} else if (mode === 'mixed-hook') {
  // The floor for the mixed traffic: the plugin's answers (load.js's second and fourth requests
  // denied), told apart by comparing a header value, nothing decided.
  app.addHook('onRequest', (request, reply, next) => {
    const xff = request.headers['x-forwarded-for']
    if (xff === '198.51.100.7' || xff === '10.9.9.9, 127.0.0.2') {
      reply
        .code(403)
        .header('content-type', 'application/json; charset=utf-8')
        .send('{"statusCode":403,"error":"Forbidden","message":"Access denied"}')
      return
    }
    next()
  })
} else if (mode !== 'bare') {
  throw new Error('mode is bare, empty-hook, deny-hook, mixed-hook or plugin')
}
app.get('/hello', async () => 'hello')
const url = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(url)
// The parent asks for CPU time around each measured phase: CPU per request is what the ratio
// means at saturation, and, unlike wall-clock throughput, steal time on a shared VM is not in it.
process.on('message', () => process.send(process.cpuUsage()))
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close().then(() => process.exit(0)))
