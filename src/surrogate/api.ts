/**
 * The metadata push API the uCDN talks to, on its own listener: PUT / GET / HEAD
 * /cdni/metadata behind a bearer token, plus /healthz, /readyz and /metrics (Prometheus), the
 * only routes open without it.
 *
 * A push goes the one way to the live policy (publisher.ts), its If-Match checked in the queue
 * against the document it would replace; it is answered once stored and swapped in. A surrogate
 * that follows sources (`--follow`) refuses pushes and reports its sources on GET /cdni/status.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify'
import type { CdniAuthz } from '../plugin/plugin.js'
import type { LiveDocument, Publisher } from './publisher.js'
import type { Follower } from '../follow/follower.js'
import { publicName } from '../follow/tree.js'
import type { WorkerPool } from './cluster.js'
import { createMetrics, type PushResult } from './metrics.js'
import { timedFastify, type Tls } from './timed-fastify.js'
import {
  MetadataRefusedError,
  NoMetadataError,
  NotReadyError,
  PreconditionFailedError,
  FollowingError,
  StorageUnavailableError,
  UnauthorizedError,
  UnsupportedPayloadError,
  WorkersUnavailableError,
} from '../errors.js'

export interface ApiOptions {
  authz: CdniAuthz
  /** The way to the live policy, shared with a follower. */
  publisher: Publisher
  token: string
  bodyLimit: number
  /** Longest a client may take to send a whole request, in milliseconds. */
  requestTimeout: number
  logger: FastifyBaseLogger
  /** Certificate and key: the API then speaks HTTPS, so the token never crosses a network in clear. */
  https?: Tls | null
  /** The follower, when the policy follows sources (`--follow`): pushes are then refused, and
   * `GET /cdni/status` reports it. */
  follower?: Follower | null
  /** The workers serving the content, when there are some: /readyz and /metrics cover them. */
  workers?: WorkerPool | null
}

/**
 * The routes anyone may call, as the router names them (method and pattern): probes and metrics,
 * which say nothing of the document. Every other route needs the token.
 */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  'GET /healthz',
  'HEAD /healthz',
  'GET /readyz',
  'HEAD /readyz',
  'GET /metrics',
  'HEAD /metrics',
])

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** Does an If-Match / If-None-Match list name `etag`? Strong comparison (RFC 9110 section 8.8.3.2). */
function listMatches(header: string, etag: string | null): boolean {
  if (header.trim() === '*') return etag !== null
  return etag !== null && header.split(',').some((candidate) => candidate.trim() === etag)
}

/** How a push ended, by the status of its answer. A 500 is none of these: it is logged, not counted. */
const PUSH_RESULTS: ReadonlyMap<number, PushResult> = new Map([
  [200, 'accepted'],
  [400, 'invalid'],
  [412, 'precondition_failed'],
  [413, 'too_large'],
  [409, 'following'],
  [415, 'unsupported_media_type'],
  [503, 'storage_error'],
])

/** The API's own refusals. Anything else that fails a request is Fastify's to answer. */
const REFUSALS = [
  UnauthorizedError,
  PreconditionFailedError,
  MetadataRefusedError,
  StorageUnavailableError,
  FollowingError,
  NoMetadataError,
  NotReadyError,
  WorkersUnavailableError,
]

const isRefusal = (error: FastifyError): error is FastifyError & { statusCode: number } =>
  REFUSALS.some((Refusal) => error instanceof Refusal)

export function buildApi(options: ApiOptions): FastifyInstance {
  const { authz, publisher } = options
  const follower = options.follower ?? null
  const workers = options.workers ?? null
  let requests = 0
  const api = timedFastify(
    {
      loggerInstance: options.logger,
      bodyLimit: options.bodyLimit,
      logController: new LogController({ disableRequestLogging: true }),
      genReqId: () => `api-${++requests}`,
    },
    options.https ?? null,
    options.requestTimeout,
  )
  const expected = digest(`Bearer ${options.token}`)

  const metrics = createMetrics(authz, () => publisher.live?.compileSeconds ?? 0, follower, workers)

  // The body arrives as text: the worker parses it, so the event loop never holds a parsed copy.
  api.removeAllContentTypeParsers()
  api.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body))
  // RFC 8006 section 6.1: the CDNI media type names the object; the whole tree is a HostIndex.
  api.addContentTypeParser('application/cdni', { parseAs: 'string' }, (request, body, done) => {
    const ptype = /;\s*ptype\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] as string)?.[1]
    if (ptype?.toLowerCase() === 'mi.hostindex') done(null, body)
    else {
      done(
        new UnsupportedPayloadError(
          `application/cdni takes ptype=MI.HostIndex (the whole metadata tree), not ${ptype === undefined ? 'no ptype' : `ptype=${ptype}`}`,
        ),
        undefined,
      )
    }
  })

  // Deny by default. The check sits on the root, so it runs for every route and for the 404
  // handler; a child scope would guard only the routes registered inside it, leaving open any route
  // added beside it later. It decides on the route the router matched, never on the URL text: the
  // router decodes and normalizes that text first (`/%63dni/metadata`, `http://x/cdni/metadata`
  // both reach PUT /cdni/metadata), so a test on the text guards something other than what runs.
  // Without the token an unknown path answers as a protected one does, so a scan learns nothing.
  //
  // The comparison stays ours rather than @fastify/bearer-auth's: that plugin leaves out the
  // `WWW-Authenticate` header and the metric, would need an onSend hook to add them, trims the
  // token it compares, and brings a second fastify-plugin major; ours is a few lines.
  api.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions
    if (!request.is404 && PUBLIC_ROUTES.has(`${String(route.method)} ${String(route.url)}`)) {
      done()
      return
    }
    const given = request.headers.authorization
    // Digests of equal length, compared in constant time: the token's length leaks nothing either.
    if (typeof given === 'string' && timingSafeEqual(digest(given), expected)) {
      done()
      return
    }
    reply.header('www-authenticate', 'Bearer realm="cdni-authz"')
    done(new UnauthorizedError())
  })

  // Pushes are counted by their answer, whichever part of Fastify gave it (a 413 or 415 comes
  // from body parsing, before the handler), and so is every request the token check turned away,
  // on any route: a probe of another path is a push attempt too.
  // A 503 is a disk that refused the document, or a worker that could not load it: told apart by
  // the error, which the error handler records here.
  const refusedByWorkers = new WeakSet<FastifyRequest>()
  api.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions
    const push = !request.is404 && route.method === 'PUT' && route.url === '/cdni/metadata'
    const result =
      reply.statusCode === 401
        ? 'unauthorized'
        : !push
          ? undefined
          : refusedByWorkers.has(request)
            ? 'workers_unavailable'
            : PUSH_RESULTS.get(reply.statusCode)
    if (result !== undefined) metrics.countPush(result)
    done()
  })

  api.setErrorHandler<FastifyError>((error, request, reply) => {
    // Rendered here rather than by Fastify, whose body would add the error's code.
    if (isRefusal(error)) {
      const { statusCode } = error
      if (error instanceof WorkersUnavailableError) refusedByWorkers.add(request)
      const problems = error instanceof MetadataRefusedError ? { errors: error.errors, warnings: error.warnings } : {}
      reply.code(statusCode).send({ statusCode, error: STATUS_CODES[statusCode], message: error.message, ...problems })
      return
    }
    // Request logging is off, which also silences Fastify's own error log: failures are logged here.
    if (error.statusCode === undefined || error.statusCode >= 500) {
      request.log.error({ err: error }, 'push API request failed')
    }
    // Sent on from here, the error goes to Fastify's own handler, which answers it as it would have.
    reply.send(error)
  })

  api.put('/cdni/metadata', async (request, reply) => {
    // A followed policy has one writer, the follower: a push would be overwritten at its next poll.
    if (follower !== null) throw new FollowingError(follower.sources.map(publicName).join(', '))
    const check = (current: LiveDocument | null): void => {
      const etag = current?.etag ?? null
      const ifMatch = request.headers['if-match']
      const ifNoneMatch = request.headers['if-none-match']
      if (
        (typeof ifMatch === 'string' && !listMatches(ifMatch, etag)) ||
        (typeof ifNoneMatch === 'string' && listMatches(ifNoneMatch, etag))
      ) {
        throw new PreconditionFailedError(etag ?? '(none)')
      }
    }
    const hostIndex = request.headers['content-type']?.toLowerCase().startsWith('application/cdni') === true
    const result = await publisher.publish(request.body as string, { check, hostIndex })
    reply.header('etag', result.etag)
    return { version: result.version, etag: result.etag, warnings: result.warnings, summary: result.summary }
  })

  api.get('/cdni/metadata', (request, reply) => {
    const live = publisher.live
    if (live === null) throw new NoMetadataError()
    if (follower !== null) {
      // A surrogate following this one must not hold the metadata fresh for longer than this one
      // does (RFC 8006 section 6.2, down a tree of surrogates): past its freshness here (stale, or
      // served on the allowance), it is not handed on; fresh, it goes with the freshness it has left.
      const stale = follower.notReady()
      if (stale !== null) throw new NotReadyError(stale)
      const maxAge = follower.maxAge()
      if (maxAge === null) {
        throw new NotReadyError('followed metadata is past its freshness and not yet revalidated; it is not handed on')
      }
      reply.header('cache-control', `max-age=${maxAge}${follower.mustRevalidate() ? ', must-revalidate' : ''}`)
    }
    reply.header('etag', live.etag)
    const ifNoneMatch = request.headers['if-none-match']
    if (typeof ifNoneMatch === 'string' && listMatches(ifNoneMatch, live.etag)) return reply.code(304).send()
    return reply.type('application/json; charset=utf-8').send(live.text)
  })

  api.get('/cdni/status', async () => ({
    version: authz.version,
    etag: publisher.live?.etag ?? null,
    following: follower?.status() ?? null,
  }))

  api.get('/healthz', async () => ({ status: 'ok' }))
  api.get('/readyz', async () => {
    if (!authz.loaded) throw new NotReadyError('no policy loaded yet')
    const waiting = follower?.notReady() ?? null
    if (waiting !== null) throw new NotReadyError(waiting)
    const switching = workers?.notReady() ?? null
    if (switching !== null) throw new NotReadyError(switching)
    return { status: 'ready', version: authz.version }
  })
  api.get('/metrics', async (_request, reply) => {
    reply.type(metrics.contentType)
    return metrics.text()
  })
  return api
}
