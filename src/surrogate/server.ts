/**
 * The ready-to-run surrogate: content (a folder, or a proxied origin) behind the plugin on one
 * listener, the push API on another. The initial policy comes from the state directory, or else
 * from the configured metadata file; either one being unreadable or invalid stops the start,
 * because serving without the policy the operator expects is never the safe choice.
 */
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { IncomingHttpHeaders } from 'node:http'
import {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type RawServerBase,
  type RouteGenericInterface,
} from 'fastify'
import fastifyStatic from '@fastify/static'
import fastifyHttpProxy from '@fastify/http-proxy'
import { buildApi } from './api.js'
import { Publisher, type LiveDocument } from './publisher.js'
import { Follower, type FollowerOptions } from '../follow/follower.js'
import { ConfigError, databaseOptions, type ServerConfig } from './config.js'
import type { Problem } from '../policy/model.js'
import cdniAuthz, { hostOf, type CdniAuthz } from '../plugin/plugin.js'
import { WorkerPool, type WorkerPoolOptions } from './cluster.js'
import type { CompiledMetadata } from '../load/prepare.js'
import { namesHosts } from '../policy/site.js'
import { normalizeHost } from '../policy/request-target.js'
import { SNAPSHOT_FILE, StateError, StateStore } from './state.js'
import { timedFastify, type Tls } from './timed-fastify.js'

export interface Surrogate {
  content: FastifyInstance
  api: FastifyInstance
  /** Starts both listeners; resolves with their URLs. */
  listen(): Promise<{ contentUrl: string; apiUrl: string }>
  /** Stops accepting, lets in-flight requests finish, then closes. */
  close(): Promise<void>
  /** The workers serving the content (`--workers` above 1), or null: this process serves it. */
  workers: WorkerPool | null
  /** Has every worker read the IP databases again: a line each (none without workers). */
  reloadWorkerDatabases(): Promise<string[]>
}

function readPem(path: string, setting: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(`setting "${setting}": cannot read ${path}: ${(err as Error).message}`)
  }
}

export interface SurrogateOptions {
  /** A pino logger to use (tests pass a silent or capturing one). */
  logger?: FastifyBaseLogger
  /** How the workers of `--workers` are started and waited for (tests run them in this process). */
  workers?: Pick<WorkerPoolOptions, 'fork' | 'timeouts'>
  /** The follower's clock and dice (tests). */
  follower?: Pick<FollowerOptions, 'now' | 'random'>
}

/** The content listener and what it needs: one per serving process (this one, or each worker). */
export interface ContentServer {
  content: FastifyInstance
  /** Why a valid document cannot be served here (the content would not follow it), or null. */
  refuse: (compiled: CompiledMetadata) => Problem | null
  https: Tls | null
  /** From now on every response ends its connection (a drain is under way). */
  closing(): void
}

/** The content listener behind the plugin, with no policy yet. */
export async function createContent(config: ServerConfig, options: SurrogateOptions = {}): Promise<ContentServer> {
  const https =
    config.tlsCert !== null && config.tlsKey !== null
      ? { cert: readPem(config.tlsCert, 'tlsCert'), key: readPem(config.tlsKey, 'tlsKey') }
      : null
  const content = timedFastify(
    {
      // Per-request lines would log every client address; the plugin logs one line per denial.
      logController: new LogController({ disableRequestLogging: true }),
      return503OnClosing: true,
      ...(options.logger ? { loggerInstance: options.logger } : { logger: { level: config.logLevel } }),
    },
    https,
    config.requestTimeout,
  )
  // While closing, every response ends its connection: an in-flight request's keep-alive socket
  // would otherwise hold the shutdown until the client's idle timeout.
  let closing = false
  content.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  // Request logging is off, which also silences the default error handler: log errors here.
  content.addHook('onError', (request, _reply, error, done) => {
    request.log.error({ err: error }, 'request failed')
    done()
  })
  await content.register(cdniAuthz, {
    trustedProxies: config.trustedProxies,
    gateways: config.gateways,
    enforcedElsewhere: config.enforcedElsewhere,
    logMsisdn: config.logMsisdn,
    ...databaseOptions(config),
  })
  // Index files are not served: a file is served under its own path only, the path the metadata's
  // patterns are compared with (with them, `/secret` served `/secret/index.html` past a
  // `/secret/*` pattern).
  const root = config.root as string
  if (config.origin !== null) {
    // @fastify/reply-from sends the origin's own Host by default; an origin serving by Host would
    // then answer for a host other than the one whose HostMatch allowed the request.
    const forward = (
      request: FastifyRequest<RouteGenericInterface, RawServerBase>,
      headers: IncomingHttpHeaders,
    ): IncomingHttpHeaders => {
      const host = hostOf(request)
      return host === undefined ? headers : { ...headers, host }
    }
    await content.register(fastifyHttpProxy, {
      upstream: config.origin,
      prefix: '/',
      ...(config.originHost === 'forward' ? { replyOptions: { rewriteRequestHeaders: forward } } : {}),
    })
  } else if (config.rootLayout === 'per-host') {
    await content.register(fastifyStatic, { root, serve: false, index: false })
    content.route({
      method: ['GET', 'HEAD'],
      url: '/*',
      handler(request, reply) {
        // The host as the plugin read it, in the form HostMatch compares (lower case, port kept);
        // never a name beginning with "." (`..` would leave the root, `.git` is no host).
        const host = hostOf(request)
        const folder = host === undefined ? null : normalizeHost(host)
        if (folder === null || folder.startsWith('.')) return reply.callNotFound()
        return reply.sendFile(`/${(request.params as Record<string, string>)['*']}`, join(root, folder))
      },
    })
  } else {
    await content.register(fastifyStatic, { root, prefix: '/', index: false })
  }
  /**
   * Content that does not depend on the host (one folder, or an origin sent its own Host) must not
   * be authorized per host: a request for a host with looser ACLs would get the same content.
   */
  const oneSite = config.origin !== null ? config.originHost === 'origin' : config.rootLayout === 'single'
  const refuse = (compiled: CompiledMetadata): Problem | null => {
    if (!oneSite || !namesHosts(compiled) || compiled.hosts.size < 2) return null
    const second = [...compiled.hosts.values()][1] as { acls: { pointer: string } }
    const why =
      config.origin !== null
        ? 'every request goes to the origin with its own Host (setting "originHost" is "origin"), so every host would get one site\'s content under its own ACLs; set originHost "forward"'
        : 'this surrogate serves one folder (setting "root") for every host, so every host would get the same files under its own ACLs; set rootLayout "per-host" to serve root/<host>/ for each'
    return { pointer: `${second.acls.pointer}/host`, message: `a document may name one host here: ${why}` }
  }
  return {
    content,
    refuse,
    https,
    closing: () => {
      closing = true
    },
  }
}

/**
 * The policy the surrogate starts with: the snapshot beside the document when it was compiled from
 * it (no compile), else the document compiled; null when there is no document.
 */
async function loadInitialPolicy(
  config: ServerConfig,
  content: FastifyInstance,
  refuse: (compiled: CompiledMetadata) => Problem | null,
  store: StateStore,
): Promise<LiveDocument | null> {
  const stored = await store.read()
  const source = stored !== null ? `state file ${store.dir}/metadata.json` : config.metadata
  const text =
    stored !== null
      ? stored.text
      : config.metadata !== null
        ? await readFile(config.metadata, 'utf8').catch((err: Error) => {
            throw new StateError(`cannot read metadata file ${config.metadata}: ${err.message}`)
          })
        : null
  if (text === null) return null
  const authz = content.cdniAuthz
  let prepared: Awaited<ReturnType<typeof authz.prepare>>
  let version = stored?.version ?? 1
  let from = 'document'
  try {
    // A snapshot is a shortcut only: refused (damaged, another document, another build), the
    // document is compiled as if there were none.
    const snapshot = await authz.readSnapshot(join(store.dir, SNAPSHOT_FILE), text)
    prepared = snapshot
    version = snapshot.version
    from = 'snapshot'
  } catch (err) {
    if (stored !== null) {
      content.log.info({ cdniAuthz: { snapshot: (err as Error).message } }, 'cdni-authz: no usable snapshot; compiling')
    }
    prepared = await authz.prepare(text)
  }
  const first = prepared.ok ? refuse(prepared.compiled) : (prepared.errors[0] as Problem)
  if (!prepared.ok || first !== null) {
    throw new StateError(
      `${source} is not valid metadata (${first?.pointer || '(document)'} ${first?.message}); refusing to start without the policy it should hold`,
    )
  }
  authz.commit(prepared, version)
  content.log.info(
    { cdniAuthz: { source, from, version: authz.version, summary: prepared.compiled.summary } },
    'cdni-authz: policy loaded',
  )
  return { text, etag: prepared.etag, compileSeconds: prepared.compileMs / 1000 }
}

export async function createSurrogate(config: ServerConfig, options: SurrogateOptions = {}): Promise<Surrogate> {
  if (config.apiToken === null) {
    throw new ConfigError(
      'the push API needs a bearer token (config "apiToken", env CDNI_API_TOKEN, or --api-token-file); refusing to run it open',
    )
  }
  const { content, refuse, https, closing } = await createContent(config, options)
  const store = new StateStore(config.stateDir)
  const live = await loadInitialPolicy(config, content, refuse, store)
  if (live === null && config.follow.length === 0) {
    content.log.warn('cdni-authz: no metadata yet; every request is denied until the uCDN pushes one')
  }

  // With workers, this process serves no content: it compiles, stores, and switches the workers.
  const pool =
    config.workers > 1
      ? new WorkerPool({
          count: config.workers,
          stateDir: config.stateDir,
          authz: content.cdniAuthz,
          log: content.log,
          ...options.workers,
        })
      : null
  const publisher = new Publisher(content.cdniAuthz, store, content.log, live, refuse, pool)
  // The follower marks metadata stale on the plugin it is given: with workers, on theirs as well.
  const followed: CdniAuthz =
    pool === null
      ? content.cdniAuthz
      : Object.assign(Object.create(content.cdniAuthz) as CdniAuthz, {
          markStale(hosts: readonly string[] | 'all' | null) {
            content.cdniAuthz.markStale(hosts)
            pool.markStale(hosts)
          },
        })
  const follower =
    config.follow.length === 0
      ? null
      : new Follower(
          {
            sources: config.follow,
            token: config.followToken,
            tls:
              config.followCert === null && config.followCa === null
                ? null
                : {
                    ...(config.followCert !== null && config.followKey !== null
                      ? { cert: readPem(config.followCert, 'followCert'), key: readPem(config.followKey, 'followKey') }
                      : {}),
                    ...(config.followCa !== null ? { ca: readPem(config.followCa, 'followCa') } : {}),
                  },
            interval: config.followInterval,
            maxStale: config.followMaxStale,
            stateDir: config.stateDir,
            // The assembled tree goes the way a push goes, and is held to what a push may be.
            limits: { resourceBytes: config.bodyLimit, treeBytes: config.bodyLimit },
            ...options.follower,
          },
          publisher,
          followed,
          content.log,
        )
  // Until its sources answer, a followed policy is served only while its kept caches are fresh.
  await follower?.restore()
  const api = buildApi({
    authz: content.cdniAuthz,
    publisher,
    token: config.apiToken,
    bodyLimit: config.bodyLimit,
    requestTimeout: config.requestTimeout,
    logger: content.log,
    https,
    follower,
    workers: pool,
  })
  return {
    content,
    api,
    workers: pool,
    reloadWorkerDatabases: async () => (pool === null ? [] : pool.reloadDatabases()),
    async listen() {
      const contentUrl =
        pool === null ? await content.listen({ host: config.host, port: config.port }) : await pool.start(publisher)
      const apiUrl = await api.listen({ host: config.apiHost, port: config.apiPort })
      follower?.start()
      return { contentUrl, apiUrl }
    },
    async close() {
      closing()
      await follower?.close()
      await Promise.all([api.close(), content.close(), pool?.stop()])
    },
  }
}
