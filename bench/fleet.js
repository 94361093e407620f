// Fleet benchmark: one origin (a uCDN's metadata server on 127.0.0.1) and FLEET_SIZE surrogates
// following it (`follow`), all in this process, each with its own listeners, compile worker and
// state directory, as many boxes would have. Then a two-level tree: FLEET_MID surrogates follow
// the origin and the rest follow them (a surrogate's own GET /cdni/metadata, with the token).
//
// Measured:
//   - propagation: a change published at the origin, time until every follower serves it
//     (p50, p99, max), read off each follower's live policy version;
//   - steady state: the origin's requests and bytes per second while nothing changes (304s):
//     body bytes, and every byte its sockets wrote (the 304s' status lines and headers);
//   - a stopped origin: time until every follower fails closed (its metadata stale: past the
//     interval plus max-stale), and time until every one serves again once the origin returns;
//     in the tree, the leaves fail closed through their middle surrogate, which hands on no
//     stale metadata (a 503) and no more freshness than it has left (Cache-Control: max-age).
// Bounded: every wait has a deadline; the process exits when done.
import { createHash } from 'node:crypto'
import http from 'node:http'
import { benchSurrogate, BENCH_TOKEN } from './lib/surrogate.js'
import { ipv4Prefixes } from './lib/data.js'

const size = Number(process.env.FLEET_SIZE ?? 50)
const mid = Number(process.env.FLEET_MID ?? 7)
const interval = Number(process.env.FLEET_INTERVAL ?? 1000)
const maxStale = Number(process.env.FLEET_MAX_STALE ?? 2000)
const prefixes = Number(process.env.FLEET_PREFIXES ?? 10_000)

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
const summary = (ms) => {
  const sorted = [...ms].sort((a, b) => a - b)
  return {
    p50: Math.round(percentile(sorted, 50)),
    p99: Math.round(percentile(sorted, 99)),
    max: Math.round(sorted.at(-1)),
  }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function until(check, deadline, what) {
  const end = Date.now() + deadline
  while (!check()) {
    if (Date.now() > end) throw new Error(`fleet: ${what} did not happen within ${deadline} ms`)
    await sleep(5)
  }
}

// The origin: one HostIndex, with a strong ETag, answering 304s to If-None-Match.
let body = ''
let etag = ''
const publish = (seed) => {
  const cidrs = ipv4Prefixes(prefixes, seed).map((p) => p.text)
  body = JSON.stringify({
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [
            {
              'generic-metadata-type': 'MI.LocationACL',
              'generic-metadata-value': {
                locations: [
                  { action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': cidrs }] },
                ],
              },
            },
          ],
        },
      },
    ],
  })
  etag = `"${createHash('sha256').update(body).digest('base64url')}"`
}
const traffic = { requests: 0, notModified: 0, bytes: 0 }
// Every socket the origin served, closed ones too: their bytesWritten is what went on the wire.
const sockets = new Set()
const wireBytes = () => [...sockets].reduce((sum, socket) => sum + socket.bytesWritten, 0)
let origin
const serve = (request, response) => {
  traffic.requests++
  if (request.headers['if-none-match'] === etag) {
    traffic.notModified++
    response.writeHead(304, { etag })
    response.end()
    return
  }
  traffic.bytes += Buffer.byteLength(body)
  response.writeHead(200, { etag, 'content-type': 'application/cdni; ptype=MI.HostIndex' })
  response.end(body)
}
const listen = (port = 0) => {
  origin = http.createServer(serve).on('connection', (socket) => sockets.add(socket))
  return new Promise((resolve) => origin.listen(port, '127.0.0.1', () => resolve(origin.address().port)))
}
const stopOrigin = () => {
  origin.closeAllConnections()
  return new Promise((resolve) => origin.close(resolve))
}
const port = await listen()
const originUrl = `http://127.0.0.1:${port}/index`

async function surrogate(follow) {
  const s = await benchSurrogate({
    follow: [follow],
    followToken: BENCH_TOKEN,
    followInterval: interval,
    followMaxStale: maxStale,
  })
  const { apiUrl } = await s.listen()
  return { s, apiUrl, authz: s.content.cdniAuthz }
}

/** Publishes a change at the origin and times every follower to its next version. */
async function propagate(followers, seed) {
  const before = followers.map((f) => f.authz.version)
  publish(seed)
  return summary(await each(followers, (f, i) => f.authz.version > before[i], 30 * interval + 30_000, 'propagation'))
}

async function run(shape, followers, settle) {
  await until(() => followers.every((f) => f.authz.loaded && f.authz.stale === null), 60_000, `${shape}: first fetch`)
  const propagation = []
  for (let round = 1; round <= 3; round++) propagation.push(await propagate(followers, 1000 + round))
  await sleep(settle)
  // Steady state: nothing changes; every request is a revalidation.
  const start = { ...traffic }
  const wireStart = wireBytes()
  const window = 5 * interval
  await sleep(window)
  const steady = {
    requestsPerSecond: Math.round(((traffic.requests - start.requests) * 1000) / window),
    notModifiedShare: +(
      (traffic.notModified - start.notModified) /
      Math.max(1, traffic.requests - start.requests)
    ).toFixed(3),
    bodyBytesPerSecond: Math.round(((traffic.bytes - start.bytes) * 1000) / window),
    wireBytesPerSecond: Math.round(((wireBytes() - wireStart) * 1000) / window),
  }
  return { propagation, steady }
}

/** Times `check(follower, index)` becoming true for each of `followers`, from now; all within `deadline`. */
async function each(followers, check, deadline, what) {
  const from = performance.now()
  const at = followers.map(() => null)
  await until(
    () => {
      const now = performance.now()
      followers.forEach((f, i) => {
        if (at[i] === null && check(f, i)) at[i] = now - from
      })
      return at.every((t) => t !== null)
    },
    deadline,
    what,
  )
  return at
}

/**
 * The origin stops: every follower fails closed once its metadata is stale, then it returns and
 * every one serves again. Times per group of followers (the flat fleet, or a tree's two levels).
 */
async function outage(groups) {
  const all = Object.values(groups).flat()
  await stopOrigin()
  const closed = await each(all, (f) => f.authz.stale !== null, 20 * (interval + maxStale), 'fail closed')
  await listen(port)
  const back = await each(all, (f) => f.authz.stale === null, 20 * interval + 30_000, 'recovery')
  const result = {}
  let i = 0
  for (const [name, followers] of Object.entries(groups)) {
    const slice = (times) => times.slice(i, i + followers.length)
    result[name] = { failClosedMs: summary(slice(closed)), recoveryMs: summary(slice(back)) }
    i += followers.length
  }
  return result
}

publish(1)
const flat = []
for (let i = 0; i < size; i++) flat.push(await surrogate(originUrl))
const flatResult = await run('flat', flat, interval)

const flatOutage = await outage({ flat })
await Promise.all(flat.map((f) => f.s.close()))

// Two levels: `mid` surrogates follow the origin, the rest follow them round-robin.
const middle = []
for (let i = 0; i < mid; i++) middle.push(await surrogate(originUrl))
const leaves = []
for (let i = 0; i < size - mid; i++) leaves.push(await surrogate(`${middle[i % mid].apiUrl}/cdni/metadata`))
const treeResult = await run('tree', [...middle, ...leaves], 2 * interval)
const leafOnly = await propagate(leaves, 2000)
const treeOutage = await outage({ middle, leaves })
await Promise.all([...middle, ...leaves].map((f) => f.s.close()))
await stopOrigin()

const line = (suite, figures) =>
  console.log(JSON.stringify({ suite, followers: size, interval, maxStale, prefixes, ...figures }))
line('fleet-flat', {
  propagationMs: flatResult.propagation,
  steady: flatResult.steady,
  ...flatOutage.flat,
  expectedFailClosedMs: `within ${interval + maxStale} (interval + max-stale) of the last success`,
})
line('fleet-tree', {
  mid,
  propagationMs: treeResult.propagation,
  leavesMs: leafOnly,
  steady: treeResult.steady,
  outage: treeOutage,
})
process.exit(0)
