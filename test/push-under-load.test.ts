import t from 'tap'
import { Agent } from 'node:http'
import http from 'node:http'
import { allowing, config, start } from './helpers/surrogate.js'

// A: 10/8 and 13/8; B: 11/8 and 13/8. 13.x is allowed by both, 12.x by neither.
const A = { deliveryCriteria: [{ region: { subnet: ['10.0.0.0/8', '13.0.0.0/8'] } }] }
const B = { deliveryCriteria: [{ region: { subnet: ['11.0.0.0/8', '13.0.0.0/8'] } }] }
const SOURCES = ['10.1.1.1', '11.1.1.1', '12.1.1.1', '13.1.1.1']

t.test('pushes under load: no request dropped, every answer consistent with one of the policies', async (t) => {
  const s = await start(config())
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(A)).status, 200)
  const url = new URL(`${s.contentUrl}/hello.txt`)
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const seen: Record<string, Record<number, number>> = {}
  let errors = 0
  let total = 0
  const request = (source: string): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(url, { agent, headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http' } }, (res) => {
        res.resume()
        res.on('end', () => {
          const bySource = (seen[source] ??= {})
          bySource[res.statusCode as number] = (bySource[res.statusCode as number] ?? 0) + 1
          total++
          resolve()
        })
      })
      req.on('error', () => {
        errors++
        resolve()
      })
    })
  const PER_CLIENT = 150
  const clients = Array.from({ length: 16 }, async (_, c) => {
    for (let i = 0; i < PER_CLIENT; i++) await request(SOURCES[(c + i) % SOURCES.length] as string)
  })
  let pushes = 0
  const pusher = (async () => {
    for (let i = 0; i < 8; i++) {
      const response = await s.push(i % 2 === 0 ? B : A)
      if (response.status === 200) pushes++
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  await Promise.all([...clients, pusher])
  t.equal(errors, 0, 'no connection errors')
  t.equal(total, 16 * PER_CLIENT, 'every request answered')
  t.equal(pushes, 8, 'every push accepted')
  t.same(Object.keys(seen['13.1.1.1'] ?? {}), ['200'], 'allowed by both policies: never denied during a swap')
  t.same(Object.keys(seen['12.1.1.1'] ?? {}), ['403'], 'allowed by neither: never let through during a swap')
  for (const source of ['10.1.1.1', '11.1.1.1']) {
    t.ok(Object.keys(seen[source] ?? {}).every((code) => code === '200' || code === '403'), `${source}: only 200 or 403`)
  }
  t.equal((await s.push(allowing('0.0.0.0/0'))).status, 200)
})
