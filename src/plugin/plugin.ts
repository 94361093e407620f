/**
 * The Fastify plugin: compiles the policy at register time and on every `update`, and enforces it
 * in a callback-style `onRequest` hook (no promise per request) that only reads prepared arrays.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { createRequire } from 'node:module'
import type { TLSSocket } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  classifyPeer,
  compileTrust,
  extractFromPeer,
  gatewayName,
  type PeerFacts,
  type TrustOptions,
} from '../facts/trust-walk.js'
import { createClientFacts, factNames } from '../facts/facts.js'
import { LRUCache } from 'lru-cache'
import { FIELDS, type PolicySummary } from '../policy/compile.js'
import { describeDenial } from '../policy/decide.js'
import { InvalidMetadataError } from '../errors.js'
import { fillGeoFacts, geoContext, openGeoDatabases, type IpDatabase } from '../facts/ip-database.js'
import { type LoadContext } from '../load/translate.js'
import { parseMetadataText } from '../load/parse-text.js'
import type { Problem } from '../policy/model.js'
import { maskMsisdn } from '../facts/msisdn.js'
import { normalizeOptions } from './options.js'
import { PolicyCompiler } from '../worker/client.js'
import { compileMetadata, etagOf, type PreparedPolicy, type RefusedPolicy } from '../load/prepare.js'
import { readPolicySnapshot, writePolicySnapshot } from '../snapshot/policy-snapshot.js'
import { canonicalPath, normalizeHost, requestHost } from '../policy/request-target.js'
import {
  explainSite,
  firstDenial,
  selectNode,
  type CompiledAcls,
  type CompiledSite,
  type Denial,
  type SiteExplanation,
} from '../policy/site.js'

export interface CdniAuthzOptions extends TrustOptions {
  /** The initial metadata document (parsed JSON, or JSON text). With none, every request is
   * denied until `cdniAuthz.update()` loads one. */
  metadata?: unknown
  /** RFC 8006 metadata types something else on this edge enforces (the cache behind us, say):
   * a mandatory-to-enforce object of one of these types does not deny. Case-insensitive. */
  enforcedElsewhere?: string[]
  /** MSISDNs are personal data: `off` (default) keeps them out of deny lines, `masked` logs the
   * first five digits, `full` the whole number. */
  logMsisdn?: 'off' | 'masked' | 'full'
  /** MaxMind-format (.mmdb) database giving the country (and, for a City database, the
   * subdivisions) of the source address. Default: the bundled IPtoASN country database. `false`:
   * none, and country criteria never match. */
  countryDb?: string | false
  /** MaxMind-format (.mmdb) database giving the AS number of the source address (GeoLite2-ASN,
   * DB-IP ASN, IPinfo). Default: none, and AS criteria never match. */
  asnDb?: string | false
}

/** A database in use, as `cdniAuthz.databases` describes it. */
export interface DatabaseInfo {
  path: string
  type: string
  /** ISO 8601 build time, or null when the file does not say. */
  built: string | null
}

/** Why requests were denied, counted for metrics. */
export type DenyReason =
  | 'no-policy'
  | 'no-rule-matched'
  | 'deny-rule'
  | 'no-host-matched'
  | 'bad-request-target'
  | 'unenforceable'
  | 'unknowable-source'
  | 'unknowable-handset'
  | 'unknowable-msisdn'
  | 'unknowable-protocol'
  | 'metadata-stale'

/** The deny reason for the first fact in `unknowable` (FACT_* bits, not 0). */
function unknowableReason(unknowable: number): DenyReason {
  return `unknowable-${factNames(unknowable)[0] as string}` as DenyReason
}

export interface DecisionCounts {
  allowed: number
  denied: Record<DenyReason, number>
}

export interface UpdateResult {
  /** Increments with every accepted document. */
  version: number
  warnings: Problem[]
  summary: PolicySummary
}

/** A snapshot read and verified, not yet live: `commit(snapshot, snapshot.version)` swaps it in. */
export interface PreparedSnapshot extends PreparedPolicy {
  /** The version it was written with. */
  version: number
}

/** What the plugin decorates the instance with, as `fastify.cdniAuthz`. */
export interface CdniAuthz {
  /** Validates, compiles and swaps in a new policy atomically. Throws an error with
   * `statusCode` 400 and `errors` when the document is refused; the live policy stays. */
  update(doc: unknown): UpdateResult
  /** True once a policy is live. */
  readonly loaded: boolean
  /** Version of the live policy (0 before the first). */
  readonly version: number
  /** Counts of the live policy, or null. */
  readonly summary: PolicySummary | null
  /** Field-by-field explanation of the decision for a request, or null with no policy. */
  explain(request: FastifyRequest): SiteExplanation | null
  /** Parses, validates and compiles JSON text in a worker thread, without touching the live
   * policy. Pair with `commit` to swap it in. */
  prepare(text: string): Promise<PreparedPolicy | RefusedPolicy>
  /** Swaps a prepared policy in, in one assignment. `version` continues a persisted count. */
  commit(prepared: PreparedPolicy, version?: number): UpdateResult
  /**
   * Writes the live policy, compiled, to `path` (atomically: a temporary beside it, synced, then
   * renamed), with its document's SHA-256 and its version, for `loadSnapshot` in another process
   * of the same release. Needs a live policy loaded from text (`prepare`, or `update` with a
   * string), or `of`: a prepared policy and the version it will be committed with, written before
   * it is live (a cluster's workers load it before any of them switches). Returns the file's size
   * in bytes.
   */
  writeSnapshot(path: string, of?: { prepared: PreparedPolicy; version: number }): Promise<number>
  /**
   * Swaps in the policy of the snapshot at `path`, with the version it was written with, if it
   * was compiled from `document` (its text, or its ETag as `prepare` gives it) by this release
   * under the same options. Throws a SnapshotError otherwise (corrupt, truncated, another
   * format version, another document, or no file): the live policy stays, and the caller
   * compiles the document instead. Warnings were given where the document was compiled.
   */
  loadSnapshot(path: string, document: string | { etag: string }): Promise<UpdateResult>
  /**
   * `loadSnapshot` without the swap: the snapshot's policy read and verified, for `commit` with
   * the version it carries, so that loading and switching are two steps (a cluster's workers all
   * load before any switches). Throws a SnapshotError as `loadSnapshot` does.
   */
  readSnapshot(path: string, document: string | { etag: string }): Promise<PreparedSnapshot>
  /** Decisions since start, for metrics. */
  readonly counts: DecisionCounts
  /** The country and AS databases in use. */
  readonly databases: { country: DatabaseInfo | null; asn: DatabaseInfo | null }
  /** Reads the database files again (after the operator replaced them), swapping each in only
   * once it has opened; on an error the databases in use stay, and the error is thrown. */
  reloadDatabases(): { country: DatabaseInfo | null; asn: DatabaseInfo | null }
  /** Marks metadata stale (RFC 8006 section 6.2: past its freshness and not revalidated): the
   * requests of these hosts, or `all`, are denied with reason `metadata-stale` until it is called
   * again without them; `null` clears it. Names are compared as HostMatch compares them. */
  markStale(hosts: readonly string[] | 'all' | null): void
  /** What `markStale` was last given: null when nothing is stale. */
  readonly stale: readonly string[] | 'all' | null
}

declare module 'fastify' {
  interface FastifyInstance {
    cdniAuthz: CdniAuthz
  }
  interface FastifyContextConfig {
    /** `false` exempts the route from CDNI authorization. */
    cdniAuthz?: boolean
  }
}

/** The deny body reveals nothing of the policy: the reason goes to the log and the metrics only. */
const DENY_BODY = '{"statusCode":403,"error":"Forbidden","message":"Access denied"}'

/**
 * The `info` method of the logger Fastify builds for `logger: false`: abstract-logging's shared
 * no-op, loaded the way Fastify loads it, so it is the very function Fastify's null logger has.
 * Null when that cannot be found (a Fastify without abstract-logging): every logger is then
 * asked as below, which builds deny lines nobody writes but never loses one.
 */
export function nullLoggerInfo(
  load: () => unknown = () => createRequire(createRequire(import.meta.url).resolve('fastify'))('abstract-logging'),
): unknown {
  try {
    const logger = load() as { info?: unknown }
    return typeof logger.info === 'function' ? logger.info : null
  } catch {
    return null
  }
}

const NULL_LOGGER_INFO = nullLoggerInfo()

/**
 * Whether the request's logger writes info lines: not Fastify's null logger (building the line it
 * drops cost 3 points of bench/http.js's ratio on denied traffic), and pino says so; a logger that
 * cannot tell is assumed to write them.
 */
export function logsAtInfo(log: FastifyBaseLogger, nullInfo: unknown = NULL_LOGGER_INFO): boolean {
  if (nullInfo !== null && log.info === nullInfo) return false
  const { isLevelEnabled } = log as { isLevelEnabled?: (level: string) => boolean }
  return typeof isLevelEnabled !== 'function' || isLevelEnabled.call(log, 'info')
}

function deny(reply: FastifyReply): void {
  reply.code(403).header('content-type', 'application/json; charset=utf-8').send(DENY_BODY)
}

/**
 * The host whose HostMatch applies: what the server behind the plugin serves by (request-target.ts),
 * never `request.host`, which follows X-Forwarded-Host under Fastify's own `trustProxy`.
 */
export const hostOf = (request: { raw: { headers: IncomingHttpHeaders; rawHeaders: string[] } }): string | undefined =>
  requestHost(request.raw.headers, request.raw.rawHeaders)

const COUNTRY_FIELD = FIELDS.indexOf('country')
const ASN_FIELD = FIELDS.indexOf('asn')

/** What the selection cache holds for a host no HostMatch covers. */
const NO_NODE = Symbol('no node')

/**
 * Selections remembered per live site, keyed by host and path (no query). Bounded in entries and in
 * key characters both: a client may send 10,000 distinct URLs of 16 KB each, and 160 MB of keys
 * would be its doing.
 */
type SelectionCache = LRUCache<string, CompiledAcls | typeof NO_NODE>
const newSelectionCache = (): SelectionCache =>
  new LRUCache({ max: 10_000, maxSize: 2_000_000, sizeCalculation: (_value, key) => key.length + 1 })

/**
 * The live policy and everything derived from it, swapped in by one assignment between two
 * requests (the hook is synchronous), so a request never sees half of one swap.
 */
interface LiveState {
  readonly site: CompiledSite
  readonly version: number
  /** ETag of the document text it was compiled from; null for one given parsed to update(). */
  readonly etag: string | null
  /** Host and path selections, for a site of hosts; a catch-all site needs none. */
  readonly selections: SelectionCache | null
  /** Region bitsets of the largest policy, reused by every request. */
  readonly scratch: Uint32Array
  /** Whether some criterion reads the country (or subdivisions) or the AS number: only then are
   * the databases asked. */
  readonly needCountry: boolean
  readonly needAsn: boolean
}

function liveState(site: CompiledSite, version: number, etag: string | null): LiveState {
  return {
    site,
    version,
    etag,
    selections: site.catchAll === null ? newSelectionCache() : null,
    scratch: new Uint32Array(site.words),
    needCountry: site.policies.some((p) => p.used[COUNTRY_FIELD] === true),
    needAsn: site.policies.some((p) => p.used[ASN_FIELD] === true),
  }
}

function newDecisionCounts(): DecisionCounts {
  return {
    allowed: 0,
    denied: {
      'no-policy': 0,
      'no-rule-matched': 0,
      'deny-rule': 0,
      'no-host-matched': 0,
      'bad-request-target': 0,
      unenforceable: 0,
      'unknowable-source': 0,
      'unknowable-handset': 0,
      'unknowable-msisdn': 0,
      'unknowable-protocol': 0,
      'metadata-stale': 0,
    },
  }
}

/** A connection: a TLS socket, or a plain one without `encrypted`. */
type PeerSocket = Partial<TLSSocket>

// Async so that anything thrown while registering fails the registration (`ready()` rejects);
// thrown from a callback-style plugin it would escape Fastify and end the process.
const plugin: FastifyPluginAsync<CdniAuthzOptions> = async (fastify: FastifyInstance, given) => {
  // Every option's type is checked before a file is opened or a list compiled.
  const options = normalizeOptions(given)
  if (options.unknown.length > 0) {
    // Not refused: wrappers pass options of their own, and Fastify may add to its. A misspelt
    // trust option leaves less trusted, so the plugin denies more rather than less.
    fastify.log.warn({ cdniAuthz: { unknownOptions: options.unknown } }, 'cdni-authz: unknown options ignored')
  }
  const trust = compileTrust(options)
  let databases = openGeoDatabases(options.countryDb, options.asnDb)
  const context: LoadContext = {
    gatewaysConfigured: trust.gateways.length > 0,
    ...geoContext(databases),
    enforcedElsewhere: options.enforcedElsewhere,
  }
  const describeDatabases = () => {
    const info = (db: IpDatabase | null): DatabaseInfo | null =>
      db && { path: db.path, type: db.type, built: db.built?.toISOString() ?? null }
    return { country: info(databases.country), asn: info(databases.asn) }
  }
  const logMsisdn = options.logMsisdn
  let live: LiveState | null = null
  // Metadata past its freshness (markStale), checked before anything else the request costs.
  let stale: { all: boolean; hosts: ReadonlySet<string>; given: readonly string[] | 'all' } | null = null
  const isStale = (request: FastifyRequest): boolean => {
    if (stale === null) return false
    if (stale.all) return true
    // No Host (or two) names no host: null, like an empty one.
    const name = normalizeHost(hostOf(request) ?? '')
    return name !== null && stale.hosts.has(name)
  }
  const facts = createClientFacts()
  const counts = newDecisionCounts()
  let compiler: PolicyCompiler | null = null
  // The peer is classified once per connection, and kept per instance (two instances may trust
  // different proxies) in a WeakMap, so that Node's socket objects are left as they are.
  const peers = new WeakMap<PeerSocket, PeerFacts>()
  // The last socket seen and its facts: requests arrive in bursts per connection (keep-alive,
  // pipelining, a load balancer's pooled connections), and comparing one reference is cheaper
  // than the WeakMap's hash lookup. Holding one socket past its close delays only its collection.
  let lastSocket: PeerSocket | null = null
  let lastPeer: PeerFacts | null = null
  const peerOf = (request: FastifyRequest): PeerFacts => {
    // Node keeps a request's socket on it until the response is done (HTTP/2 gives a proxy to the
    // session's socket), so it is there while the hook runs.
    const socket = request.socket as PeerSocket
    if (socket === lastSocket) return lastPeer as PeerFacts
    let peer = peers.get(socket)
    if (peer === undefined) {
      peer = classifyPeer(trust, socket.remoteAddress, socket.encrypted === true)
      // Not kept when there is no address yet: the next request on the socket tries again.
      if (peer.family === 0) return peer
      peers.set(socket, peer)
    }
    lastSocket = socket
    lastPeer = peer
    return peer
  }

  const swap = (
    site: CompiledSite,
    etag: string | null,
    warnings: Problem[],
    nextVersion = (live?.version ?? 0) + 1,
  ): UpdateResult => {
    live = liveState(site, nextVersion, etag)
    for (const warning of warnings) fastify.log.warn({ cdniAuthz: { warning } }, 'cdni-authz: metadata warning')
    return { version: nextVersion, warnings, summary: site.summary }
  }

  const update = (doc: unknown): UpdateResult => {
    let value = doc
    if (typeof doc === 'string') {
      const parsed = parseMetadataText(doc)
      if (!parsed.ok) throw new InvalidMetadataError([parsed.error])
      value = parsed.value
    }
    const result = compileMetadata(value, context)
    if (!result.ok) throw new InvalidMetadataError(result.errors, result.warnings)
    return swap(result.compiled, typeof doc === 'string' ? etagOf(doc) : null, result.warnings)
  }

  fastify.decorate('cdniAuthz', {
    update,
    get loaded() {
      return live !== null
    },
    get version() {
      return live?.version ?? 0
    },
    get summary() {
      return live?.site.summary ?? null
    },
    explain(request: FastifyRequest): SiteExplanation | null {
      const state = live
      if (state === null) return null
      const own = createClientFacts()
      extractFromPeer(trust, peerOf(request), request.raw.rawHeaders, Date.now(), own)
      fillGeoFacts(databases, own, true, true)
      const explained = explainSite(state.site, hostOf(request), request.url, own)
      return isStale(request) ? { ...explained, allowed: false, stale: true } : explained
    },
    prepare(text: string) {
      compiler ??= new PolicyCompiler()
      return compiler.prepare(text, context)
    },
    commit(prepared: PreparedPolicy, nextVersion?: number) {
      return swap(prepared.compiled, prepared.etag, prepared.warnings, nextVersion)
    },
    async writeSnapshot(path: string, of?: { prepared: PreparedPolicy; version: number }) {
      if (of !== undefined) {
        return writePolicySnapshot(path, of.prepared.compiled, of.version, { etag: of.prepared.etag, context })
      }
      const state = live
      if (state?.etag == null) {
        throw new Error(
          state === null
            ? 'cdni-authz: no policy is live to snapshot'
            : 'cdni-authz: the live policy was given to update() parsed; a snapshot needs the document text',
        )
      }
      return writePolicySnapshot(path, state.site, state.version, { etag: state.etag, context })
    },
    async loadSnapshot(path: string, document: string | { etag: string }) {
      const snapshot = await readPolicySnapshot(path, document, context)
      return swap(snapshot.site, snapshot.etag, [], snapshot.version)
    },
    async readSnapshot(path: string, document: string | { etag: string }) {
      const started = performance.now()
      const snapshot = await readPolicySnapshot(path, document, context)
      return {
        ok: true as const,
        compiled: snapshot.site,
        warnings: [],
        etag: snapshot.etag,
        compileMs: performance.now() - started,
        version: snapshot.version,
      }
    },
    counts,
    get databases() {
      return describeDatabases()
    },
    markStale(hosts: readonly string[] | 'all' | null) {
      stale =
        hosts === null || (hosts !== 'all' && hosts.length === 0)
          ? null
          : {
              all: hosts === 'all',
              hosts: new Set(hosts === 'all' ? [] : hosts.map((host) => normalizeHost(host) ?? host)),
              given: hosts,
            }
    },
    get stale() {
      return stale?.given ?? null
    },
    reloadDatabases() {
      databases = openGeoDatabases(options.countryDb, options.asnDb)
      // A City database in place of a country one (or back) changes what later loads warn about.
      Object.assign(context, geoContext(databases))
      return describeDatabases()
    },
  } satisfies CdniAuthz)
  fastify.addHook('onClose', async () => {
    await compiler?.close()
  })

  if (options.metadata !== undefined) update(options.metadata)

  // Fastify builds `request.routeOptions` afresh on every read (about a microsecond here), so the
  // opt-out is read only on the way to a denial, and only once some route has opted out. A route
  // registered before this plugin is not seen here: its opt-out is ignored and it stays enforced,
  // which is the safe way to be wrong.
  let someRouteOptedOut = false
  fastify.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.cdniAuthz === false) someRouteOptedOut = true
  })
  const optedOut = (request: FastifyRequest): boolean =>
    someRouteOptedOut && request.routeOptions.config.cdniAuthz === false

  /** The node governing a request: the catch-all, or a site's selection through its cache. */
  const select = (state: LiveState, request: FastifyRequest): CompiledAcls | null => {
    const { site, selections } = state
    if (site.catchAll !== null || selections === null) return site.catchAll
    const url = request.url
    const query = url.indexOf('?')
    const host = hostOf(request)
    // No host, or two: no HostMatch (and no cache key that a Host header could also make).
    if (host === undefined) return null
    const key = `${host} ${query < 0 ? url : url.slice(0, query)}`
    let selected = selections.get(key)
    if (selected === undefined) selections.set(key, (selected = selectNode(site, host, url) ?? NO_NODE))
    return selected === NO_NODE ? null : selected
  }

  /**
   * Why a request was denied, counted, and logged in one line whatever the format: a fact the
   * policy reads made unknowable (`unknowable`, FACT_* bits, decided before any rule), no node
   * selected, an unenforceable object in force, or an ACL's rule. The line is built only for a
   * logger that writes it: it walks the rules again to say what failed.
   */
  const denyRequest = (
    request: FastifyRequest,
    reply: FastifyReply,
    state: LiveState,
    unknowable: number,
    acls: CompiledAcls | null,
    denial: Denial | null,
    metadataStale = false,
  ): void => {
    let reason: DenyReason
    if (metadataStale) reason = 'metadata-stale'
    else if (unknowable !== 0) reason = unknowableReason(unknowable)
    else if (acls === null) {
      reason = canonicalPath(request.url, hostOf(request)) === null ? 'bad-request-target' : 'no-host-matched'
    } else if (acls.unenforceable.length > 0) reason = 'unenforceable'
    else reason = (denial as Denial).rule < 0 ? 'no-rule-matched' : 'deny-rule'
    counts.denied[reason]++
    if (metadataStale) {
      // Decided before the request's facts were read: the line names none.
      if (logsAtInfo(request.log)) {
        request.log.info(
          { cdniAuthz: { decision: 'deny', reason, policyVersion: state.version } },
          'cdni-authz: request denied',
        )
      }
    } else if (logsAtInfo(request.log)) {
      const explained = denial === null ? null : describeDenial(denial.policy, facts, state.scratch, denial.rule)
      request.log.info(
        {
          cdniAuthz: {
            decision: 'deny',
            reason,
            node: acls?.pointer ?? null,
            rule: acls?.unenforceable[0]?.pointer ?? explained?.decidedBy ?? null,
            failed: explained?.failed ?? [],
            unknowable: factNames(unknowable),
            unenforceable: acls?.unenforceable.map((u) => u.type) ?? [],
            via: gatewayName(trust, facts.gateway) ?? (facts.sourceFamily === 0 ? 'no-source' : 'direct'),
            handset: facts.handsetFamily !== 0,
            msisdn:
              facts.msisdn === null
                ? false
                : logMsisdn === 'off'
                  ? true
                  : logMsisdn === 'full'
                    ? facts.msisdn.international
                    : maskMsisdn(facts.msisdn.international),
            policyVersion: state.version,
          },
        },
        'cdni-authz: request denied',
      )
    }
    deny(reply)
  }

  // One path for every policy: the facts, then a fact the policy reads made unknowable denies
  // before any rule; else the node governing the request, and its ACLs, each decided once.
  fastify.addHook('onRequest', (request, reply, next) => {
    const state = live
    if (state === null) {
      if (optedOut(request)) {
        next()
        return
      }
      counts.denied['no-policy']++
      request.log.warn({ cdniAuthz: { decision: 'deny', reason: 'no-policy' } }, 'cdni-authz: request denied')
      deny(reply)
      return
    }
    if (stale !== null && isStale(request) && !optedOut(request)) {
      denyRequest(request, reply, state, 0, null, null, true)
      return
    }
    const site = state.site
    extractFromPeer(trust, peerOf(request), request.raw.rawHeaders, site.usesTime ? Date.now() : 0, facts)
    const unknowable = facts.unknowable & site.reads
    let acls: CompiledAcls | null = null
    let denial: Denial | null = null
    if (unknowable === 0) {
      if (state.needCountry || state.needAsn) fillGeoFacts(databases, facts, state.needCountry, state.needAsn)
      acls = select(state, request)
      if (acls !== null && acls.unenforceable.length === 0) {
        denial = firstDenial(acls, facts, state.scratch)
        if (denial === null) {
          counts.allowed++
          next()
          return
        }
      }
    }
    if (optedOut(request)) {
      next()
      return
    }
    denyRequest(request, reply, state, unknowable, acls, denial)
  })
}

/** The CDNI delivery-criteria authorization plugin. */
export const cdniAuthz = fp(plugin, { name: 'cdni-authz', fastify: '5.x' })
export default cdniAuthz
