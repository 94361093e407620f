/**
 * Following the uCDN (RFC 8006 section 6): each source's tree is polled by HTTP caching rules,
 * and a tree that changed goes the one way to the live policy (publisher.ts), assembled with the
 * other sources' parts into one document: whole or not at all, the live policy kept otherwise.
 *
 * Section 6.2: metadata that is stale by HTTP caching rules and cannot be revalidated must not
 * be served. A source's part is stale once every resource of it has not been revalidated within
 * its freshness plus the allowance (the source's `stale-if-error`, or `followMaxStale` when
 * longer); its hosts (all requests, for a document without hosts) are then denied with reason
 * `metadata-stale`, until a revalidation succeeds.
 *
 * The caches and each source's accepted part are kept beside the document (`follow.json`), so a
 * restart serves what is still fresh, and revalidates it with 304s rather than downloads.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { Agent } from 'undici'
import type { CdniAuthz } from '../plugin/plugin.js'
import { MetadataRefusedError } from '../errors.js'
import { normalizeHost } from '../policy/request-target.js'
import { writeAtomically } from '../surrogate/state.js'
import type { LiveDocument, Publisher } from '../surrogate/publisher.js'
import type { Problem } from '../policy/model.js'
import CachePolicy from 'http-cache-semantics'
import {
  DEFAULT_LIMITS,
  fetchTree,
  FetchError,
  publicName,
  refreshPoint,
  type CachedResource,
  type TreeLimits,
} from './tree.js'

export const FOLLOW_FILE = 'follow.json'
/**
 * The layout of FOLLOW_FILE. 2: each part kept with the resources it was accepted from (1, unnamed,
 * kept the last tree fetched, which could be one refused: it is not taken up).
 */
const FOLLOW_FORMAT = 2

export interface FollowerOptions {
  /** URLs of the sources, in the order their parts are assembled. */
  sources: string[]
  token: string | null
  /** Client certificate and key (mutual TLS, section 8), and the CAs the sources are checked against. */
  tls: { cert?: Buffer; key?: Buffer; ca?: Buffer } | null
  /** Freshness of a resource whose source gives none, and the poll interval it leads to, in ms. */
  interval: number
  /** Least time stale metadata is still served while it cannot be revalidated, in ms. */
  maxStale: number
  stateDir: string
  limits?: Partial<TreeLimits>
  /** The clock and the dice, for tests. */
  now?: () => number
  random?: () => number
}

/** How one poll of a source ended: the `result` label of cdni_authz_follow_polls_total. */
export type FetchResult = 'changed' | 'unchanged' | 'refused' | 'error'

export interface SourceStatus {
  url: string
  lastSuccess: string | null
  lastError: { at: string; message: string } | null
  /** When its part went stale (requests of its hosts denied since), or null. */
  staleSince: string | null
  /** Until when its part is served without a revalidation, or null before the first. */
  servedUntil: string | null
  /** The hosts its part names, or `all` (a document without hosts). */
  hosts: string[] | 'all'
  resources: {
    url: string
    etag: string | null
    lastModified: string | null
    validatedAt: string
    freshUntil: string
  }[]
}

interface Source {
  url: string
  /** The last tree fetched: its resources, and its document assembled. */
  cache: Map<string, CachedResource>
  /** The resources of the accepted part, as last revalidated: what a restart may serve. */
  acceptedCache: Map<string, CachedResource>
  /** This source's part of the live document (its last tree accepted), or null. */
  accepted: { document: unknown; text: string | null } | null
  /** Whether the cache holds a tree not yet made live. */
  pending: boolean
  /** The assembled text last refused and why, so an unchanged refused tree is not compiled again. */
  refused: { text: string; error: MetadataRefusedError } | null
  /** Until when its accepted part is fresh: its least fresh resource's freshness (0: not). */
  freshUntil: number
  /** When its accepted part goes stale without a revalidation (0: already). */
  staleAt: number
  staleSince: number | null
  lastSuccess: number | null
  lastError: { at: number; message: string } | null
  failures: number
  timer: NodeJS.Timeout | null
  running: Promise<void> | null
  results: Record<FetchResult, number>
  /** Requests made, by answer. */
  answers: { modified: number; notModified: number }
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** A part whose document names hosts, as HostMatch compares them; `all` for one that names none. */
function hostsOf(document: unknown): string[] | 'all' {
  const hosts = (document as { hosts?: unknown } | null)?.hosts
  if (!Array.isArray(hosts)) return 'all'
  return hosts.map((match) => {
    const host = (match as { host?: unknown } | null)?.host
    return typeof host === 'string' ? (normalizeHost(host) ?? host) : ''
  })
}

export class Follower {
  readonly sources: readonly string[]
  private readonly state: Source[]
  private readonly dispatcher: Agent
  private readonly limits: TreeLimits
  private readonly now: () => number
  private readonly random: () => number
  private staleTimer: NodeJS.Timeout | null = null
  private closed = false
  /** Whether the live document is one this follower assembled (or restored with its caches). */
  private assembled = false
  private accepting: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly options: FollowerOptions,
    private readonly publisher: Publisher,
    private readonly authz: CdniAuthz,
    private readonly log: FastifyBaseLogger,
  ) {
    this.sources = options.sources
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    this.dispatcher = new Agent({ connect: options.tls ?? {}, connections: this.limits.concurrency })
    this.state = options.sources.map((url) => ({
      url,
      cache: new Map(),
      acceptedCache: new Map(),
      accepted: null,
      pending: false,
      refused: null,
      freshUntil: 0,
      staleAt: 0,
      staleSince: null,
      lastSuccess: null,
      lastError: null,
      failures: 0,
      timer: null,
      running: null,
      results: { changed: 0, unchanged: 0, refused: 0, error: 0 },
      answers: { modified: 0, notModified: 0 },
    }))
  }

  /**
   * Takes up the caches kept with the live document, when they are about that document: its parts
   * still fresh are served at once. Anything else leaves every source stale until its first fetch.
   */
  async restore(): Promise<void> {
    const live = this.publisher.live
    const file = await readFile(join(this.options.stateDir, FOLLOW_FILE), 'utf8').catch(() => null)
    let saved: unknown = null
    try {
      saved = file === null ? null : JSON.parse(file)
    } catch {
      this.log.warn('cdni-authz: follow.json is damaged; every source is fetched afresh')
    }
    const kept = live === null ? null : keptParts(saved, sha256(live.text), this.sources)
    if (kept === null) {
      if (saved !== null) {
        this.log.warn('cdni-authz: follow.json is not of the live document and these sources; fetching afresh')
      }
      this.updateStale()
      return
    }
    this.assembled = true
    const now = this.now()
    this.state.forEach((source, i) => {
      const { resources, accepted } = kept[i] as KeptPart
      source.cache = new Map(resources.map((resource) => [resource.url, resource]))
      source.acceptedCache = source.cache
      source.accepted = accepted
      this.revalidated(source)
      // A part kept past its freshness is served again only once revalidated: the allowance is
      // for metadata that cannot be revalidated, and this one has not been tried yet.
      if (now >= source.freshUntil) source.staleAt = 0
    })
    this.updateStale()
  }

  /** Starts polling every source now. */
  start(): void {
    for (const source of this.state) {
      // RFC 8006 section 8.3: TLS, unless the path is secured otherwise (IPsec, a private network).
      if (this.options.token !== null && inClear(source.url)) {
        this.log.warn(
          { cdniAuthz: { source: publicName(source.url) } },
          'cdni-authz: the follow token goes to this source over plain http; use https unless the path is secured otherwise',
        )
      }
      this.schedule(source, 0)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const source of this.state) if (source.timer !== null) clearTimeout(source.timer)
    if (this.staleTimer !== null) clearTimeout(this.staleTimer)
    // In-flight requests end at once, and the polls they belong to with them.
    await this.dispatcher.destroy()
    await Promise.all(this.state.map((source) => source.running))
  }

  /** Why the surrogate is not ready (a source's part is stale), or null. */
  notReady(): string | null {
    const stale = this.state.filter((source) => source.staleSince !== null)
    if (stale.length === 0) return null
    return `followed metadata is stale (${stale.map((source) => publicName(source.url)).join(', ')}): the requests it governs are denied until it is revalidated`
  }

  status(): SourceStatus[] {
    return this.state.map((source) => ({
      url: source.url,
      lastSuccess: iso(source.lastSuccess),
      lastError: source.lastError && { at: iso(source.lastError.at) as string, message: source.lastError.message },
      staleSince: iso(source.staleSince),
      servedUntil: source.accepted === null ? null : iso(source.staleAt),
      hosts: source.accepted === null ? [] : hostsOf(source.accepted.document),
      resources: [...source.cache.values()].map((resource) => ({
        url: resource.url,
        etag: (resource.policy.resh.etag as string | undefined) ?? null,
        lastModified: (resource.policy.resh['last-modified'] as string | undefined) ?? null,
        validatedAt: iso(resource.validatedAt) as string,
        freshUntil: iso(resource.freshUntil) as string,
      })),
    }))
  }

  /** Counts for metrics, per source. */
  counts(): {
    url: string
    results: Record<FetchResult, number>
    answers: Source['answers']
    sinceSuccess: number | null
    stale: boolean
  }[] {
    const now = this.now()
    return this.state.map((source) => ({
      url: publicName(source.url),
      results: source.results,
      answers: source.answers,
      sinceSuccess: source.lastSuccess === null ? null : (now - source.lastSuccess) / 1000,
      stale: source.staleSince !== null,
    }))
  }

  private schedule(source: Source, delay: number): void {
    if (this.closed) return
    source.timer = setTimeout(() => {
      source.timer = null
      source.running = this.poll(source).finally(() => {
        source.running = null
      })
    }, delay)
  }

  /** Dates a source's part by the resources just had: until when it is fresh, and when it goes stale. */
  private revalidated(source: Source): void {
    let fresh = Infinity
    let stale = Infinity
    for (const resource of source.cache.values()) {
      fresh = Math.min(fresh, resource.freshUntil)
      const allowance = noStaleUse(resource) ? 0 : Math.max(resource.staleIfError, this.options.maxStale)
      stale = Math.min(stale, resource.freshUntil + allowance)
    }
    source.freshUntil = fresh === Infinity ? 0 : fresh
    source.staleAt = stale === Infinity ? 0 : stale
  }

  /**
   * How long the live document stays fresh, in whole seconds (`max-age` of the document this
   * surrogate serves to its own followers): its least fresh part's remaining freshness, so a
   * surrogate following this one never holds the metadata fresh for longer than this one does.
   * Null once a part is past its freshness: served here on the allowance, it is not handed on,
   * or each level of a tree of surrogates would add its own allowance to the one before.
   */
  maxAge(): number | null {
    const left = Math.min(...this.state.map((source) => source.freshUntil)) - this.now()
    return left > 0 ? Math.floor(left / 1000) : null
  }

  /** Whether a resource of the live document may not be used stale at all: handed on as such. */
  mustRevalidate(): boolean {
    return this.state.some((source) => [...source.acceptedCache.values()].some(noStaleUse))
  }

  private async poll(source: Source): Promise<void> {
    try {
      const tree = await fetchTree(source.url, source.cache, {
        dispatcher: this.dispatcher,
        token: this.options.token,
        limits: this.limits,
        interval: this.options.interval,
        now: this.now,
      })
      source.answers.modified += tree.requests - tree.notModified
      source.answers.notModified += tree.notModified
      const resources = changedResources(source.acceptedCache, tree.resources)
      source.cache = tree.resources
      const part = { document: tree.document, text: tree.rootText }
      // A tree fetched but not made live (refused, or not stored) is tried again until it is: the
      // source no longer serves the accepted part, so a 304 for the new one revalidates nothing.
      // A refused one is refused again without a compile (acceptNow).
      if (tree.changed || source.accepted === null) source.pending = true
      const changed = source.pending
      if (changed) await this.accept(source, part, resources)
      source.results[changed ? 'changed' : 'unchanged']++
      source.lastSuccess = this.now()
      source.failures = 0
      source.acceptedCache = source.cache
      this.revalidated(source)
      if (source.staleSince !== null) {
        this.log.info(
          { cdniAuthz: { source: publicName(source.url) } },
          'cdni-authz: followed metadata revalidated; serving again',
        )
      }
      source.staleSince = null
      this.updateStale()
      await this.save().catch((err: Error) => {
        // Served all the same: a restart without it only fetches afresh.
        this.log.warn({ err }, 'cdni-authz: could not keep the follow caches; a restart will fetch afresh')
      })
      // The next poll when the first resource reaches its refresh point. A source may give a
      // year of freshness; a timer cannot wait longer than 2^31 - 1 ms (Node fires a longer one
      // at once), so the poll comes after that at the latest.
      let next = Infinity
      for (const resource of source.cache.values()) next = Math.min(next, refreshPoint(resource, this.random()))
      this.schedule(source, Math.min(Math.max(100, next - this.now()), LONGEST_TIMER))
    } catch (err) {
      // A host named by two sources is this document refused, as an invalid one is.
      const refused = err instanceof MetadataRefusedError || err instanceof AssemblyError
      source.results[refused ? 'refused' : 'error']++
      const message = describe(err)
      source.lastError = { at: this.now(), message }
      source.failures++
      this.log.warn(
        { cdniAuthz: { source: publicName(source.url), error: message, failures: source.failures } },
        refused
          ? 'cdni-authz: followed metadata refused; the live policy stays'
          : 'cdni-authz: followed metadata not fetched',
      )
      if (!(err instanceof FetchError) && !refused) {
        this.log.error({ err }, 'cdni-authz: following failed')
      }
      this.updateStale()
      // Exponential backoff with full jitter: a fleet whose source failed does not return together.
      const cap = Math.min(this.options.interval, 1000 * 2 ** Math.min(source.failures, 20))
      this.schedule(source, Math.max(100, this.random() * cap))
    }
  }

  /**
   * Publishes the document with `part` as this source's, the other sources' accepted parts beside
   * it. One source at a time: each assembles from the parts the one before it left accepted.
   */
  private accept(source: Source, part: NonNullable<Source['accepted']>, resources: Changes): Promise<void> {
    const run = this.accepting.then(() => this.acceptNow(source, part, resources))
    this.accepting = run.catch(() => undefined)
    return run
  }

  private async acceptNow(source: Source, part: NonNullable<Source['accepted']>, resources: Changes): Promise<void> {
    const text = this.assemble(source, part)
    // The same tree as refused before: refused again for the same reasons, without a compile.
    if (source.refused?.text === text) throw source.refused.error
    if (this.publisher.live?.text === text) {
      source.accepted = part
      source.pending = false
      this.assembled = true
      return
    }
    try {
      const previous = { version: this.authz.version, etag: this.publisher.live?.etag ?? null }
      const published = await this.publisher.publish(text)
      // What changed, for the operator reading the log: the publisher's own line gives the totals.
      const before = source.accepted === null ? [] : hostsOf(source.accepted.document)
      const after = hostsOf(part.document)
      this.log.info(
        {
          cdniAuthz: {
            source: publicName(source.url),
            from: previous,
            to: { version: published.version, etag: published.etag },
            hosts: { added: listed(difference(after, before)), removed: listed(difference(before, after)) },
            resources,
          },
        },
        'cdni-authz: followed metadata changed',
      )
    } catch (err) {
      if (err instanceof MetadataRefusedError) source.refused = { text, error: err }
      throw err
    }
    source.accepted = part
    source.refused = null
    source.pending = false
    this.assembled = true
  }

  /** One document of every source's part: one source's as it is, or several HostIndexes merged. */
  private assemble(source: Source, part: NonNullable<Source['accepted']>): string {
    const parts = this.state.map((each) => (each === source ? part : each.accepted))
    if (this.state.length === 1) return part.text ?? JSON.stringify(part.document)
    const hosts: unknown[] = []
    const named = new Map<string, string>()
    this.state.forEach((each, i) => {
      const document = parts[i]?.document
      if (document === undefined) return
      const names = hostsOf(document)
      if (names === 'all') {
        throw new AssemblyError(
          `${publicName(each.url)} serves no HostIndex; a document without hosts cannot share the policy with other sources`,
        )
      }
      for (const name of names) {
        const first = named.get(name)
        if (first !== undefined) {
          throw new AssemblyError(
            `host "${name}" is named by two sources: ${publicName(first)} and ${publicName(each.url)}`,
          )
        }
        named.set(name, each.url)
      }
      hosts.push(...(document as { hosts: unknown[] }).hosts)
    })
    return JSON.stringify({ hosts })
  }

  /** Denies the hosts of every stale part, and wakes when the next part would go stale. */
  private updateStale(): void {
    const now = this.now()
    let next = Infinity
    const hosts: string[] = []
    let all = false
    for (const source of this.state) {
      if (now < source.staleAt) {
        next = Math.min(next, source.staleAt)
        continue
      }
      if (source.staleSince === null) {
        source.staleSince = now
        if (source.lastSuccess === null && source.lastError === null) {
          this.log.info(
            { cdniAuthz: { source: publicName(source.url) } },
            'cdni-authz: denying what this source governs until its first fetch',
          )
        } else {
          this.log.error(
            { cdniAuthz: { source: publicName(source.url), lastSuccess: iso(source.lastSuccess) } },
            'cdni-authz: followed metadata is stale and cannot be revalidated; denying the requests it governs',
          )
        }
      }
      // A source without a part governs nothing of a document this follower assembled; of one
      // restored without its caches, it may govern anything.
      const governed = source.accepted !== null ? hostsOf(source.accepted.document) : this.assembled ? [] : 'all'
      if (governed === 'all') all = true
      else hosts.push(...governed)
    }
    this.authz.markStale(all ? 'all' : hosts)
    if (this.staleTimer !== null) clearTimeout(this.staleTimer)
    this.staleTimer = null
    if (next !== Infinity && !this.closed) {
      this.staleTimer = setTimeout(() => this.updateStale(), Math.min(next - now + 1, 2 ** 31 - 1))
    }
  }

  private async save(): Promise<void> {
    // Called after a success, so a document is live.
    const live = this.publisher.live as LiveDocument
    const sources: Record<string, unknown> = {}
    for (const source of this.state) {
      if (source.accepted !== null) {
        sources[source.url] = { resources: [...source.acceptedCache.values()], accepted: source.accepted }
      }
    }
    await writeAtomically(
      this.options.stateDir,
      FOLLOW_FILE,
      JSON.stringify({ format: FOLLOW_FORMAT, document: sha256(live.text), sources }),
    )
  }
}

/** Whether requests to `url` cross a network in clear: plain http to other than this machine. */
function inClear(url: string): boolean {
  const { protocol, hostname } = new URL(url)
  return protocol === 'http:' && !/^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/i.test(hostname)
}

/**
 * A resource that may not be used stale, whatever allowance there is: `must-revalidate` (RFC 9111
 * section 5.2.2.2), and `no-cache`, which allows no use without a successful validation (5.2.2.4).
 */
function noStaleUse(resource: CachedResource): boolean {
  return 'must-revalidate' in resource.policy.rescc || 'no-cache' in resource.policy.rescc
}

/** The longest a Node timer waits. */
const LONGEST_TIMER = 2 ** 31 - 1

/** At most this many names in a log line's lists; the count says how many there were. */
const LISTED = 10

/** Resources of a fetched tree against those of the accepted part: changed or new, and gone. */
interface Changes {
  changed: Listed
  removed: Listed
}

interface Listed {
  count: number
  names: string[]
}

function listed(names: string[]): Listed {
  return { count: names.length, names: names.slice(0, LISTED) }
}

/** The names of `a` not in `b`; a document without hosts counts as the one name `*`. */
function difference(a: string[] | 'all', b: string[] | 'all'): string[] {
  const of = (names: string[] | 'all') => (names === 'all' ? ['*'] : names)
  const other = new Set(of(b))
  return of(a).filter((name) => !other.has(name))
}

function changedResources(
  before: ReadonlyMap<string, CachedResource>,
  after: ReadonlyMap<string, CachedResource>,
): Changes {
  const changed = [...after.values()].filter((resource) => before.get(resource.url)?.body !== resource.body)
  const removed = [...before.keys()].filter((url) => !after.has(url))
  return {
    changed: listed(changed.map((resource) => publicName(resource.url))),
    removed: listed(removed.map(publicName)),
  }
}

export class AssemblyError extends Error {
  override name = 'AssemblyError'
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

interface KeptPart {
  resources: CachedResource[]
  accepted: NonNullable<Source['accepted']>
}

/** A kept resource whole, its caching policy one this http-cache-semantics can take up. */
function isCachedResource(value: unknown): value is CachedResource {
  if (!isRecord(value)) return false
  const { url, body, policy, validatedAt, freshUntil, staleIfError } = value
  if (typeof url !== 'string' || typeof body !== 'string' || !URL.canParse(url)) return false
  if (![validatedAt, freshUntil, staleIfError].every((n) => typeof n === 'number' && Number.isFinite(n))) return false
  // The policy as this http-cache-semantics reads it: each use a poll makes of it, tried once.
  try {
    const taken = CachePolicy.fromObject(policy as CachePolicy.CachePolicyObject)
    taken.revalidationHeaders({ url, method: 'GET', headers: {} })
    taken.maxAge()
    const { resh, rescc } = policy as CachePolicy.CachePolicyObject
    return isRecord(resh) && isRecord(rescc)
  } catch {
    return false
  }
}

/**
 * The parts `saved` (follow.json) keeps for `sources`, in their order: only when it is of the live
 * document (`digest`) and of exactly these sources, each part whole. A part missing would leave
 * its hosts in the document ungoverned, and a source no longer followed would leave its own hosts
 * served with nothing to make them stale: both fetch afresh instead.
 */
function keptParts(saved: unknown, digest: string, sources: readonly string[]): KeptPart[] | null {
  if (!isRecord(saved) || saved.format !== FOLLOW_FORMAT || saved.document !== digest || !isRecord(saved.sources)) {
    return null
  }
  const kept = saved.sources
  if (Object.keys(kept).length !== sources.length) return null
  const parts = sources.map((url) => kept[url])
  const whole = (part: unknown): part is KeptPart =>
    isRecord(part) &&
    Array.isArray(part.resources) &&
    part.resources.every(isCachedResource) &&
    isRecord(part.accepted) &&
    'document' in part.accepted &&
    (typeof part.accepted.text === 'string' || part.accepted.text === null)
  return parts.every(whole) ? parts : null
}

function describe(err: unknown): string {
  if (err instanceof MetadataRefusedError) {
    const first = err.errors[0] as Problem
    return `refused: ${first.pointer || '(document)'} ${first.message}`
  }
  return (err as Error).message
}
