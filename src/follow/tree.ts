/**
 * One source's metadata tree, fetched by the RFC 8006 Metadata Interface (section 6): GET the
 * HostIndex, follow every Link object (`href`) to the object it stands for, and assemble the
 * objects into one document, which then takes the same path to the live policy as a push.
 *
 * Every resource is cached with its HTTP caching policy (http-cache-semantics): one still fresh
 * is used without a request, one past its refresh point is revalidated with `If-None-Match` /
 * `If-Modified-Since`, so a tree that has not changed costs a 304 per resource and no compile.
 *
 * A fetch is whole or it fails: any resource that cannot be had (an error status, a wrong type, a
 * Link loop, a limit passed) fails the tree with an error naming the URL, and the caller keeps
 * the live policy. The limits bound what a source can make us do: objects, depth, bytes, time.
 */
import CachePolicy from 'http-cache-semantics'
import { request, type Dispatcher } from 'undici'

/** What a source may make one fetch of its tree cost. */
export interface TreeLimits {
  /** Distinct resources in one tree. */
  objects: number
  /** Links followed from the root to the deepest object. */
  depth: number
  /** Bytes of one resource's body. */
  resourceBytes: number
  /** Bytes of every body in one tree together. */
  treeBytes: number
  /** Requests in flight at once. */
  concurrency: number
  /** Longest wait for a resource's headers, then for each chunk of its body, in milliseconds. */
  timeout: number
}

export const DEFAULT_LIMITS: TreeLimits = {
  objects: 10_000,
  depth: 16,
  resourceBytes: 64 * 1024 * 1024,
  treeBytes: 256 * 1024 * 1024,
  concurrency: 8,
  timeout: 10_000,
}

/** A resource as last fetched or revalidated. Plain data: it is kept in the state directory. */
export interface CachedResource {
  url: string
  body: string
  /** http-cache-semantics' policy, as `toObject()` gives it. */
  policy: CachePolicy.CachePolicyObject
  /** When it was last had from the source (200 or 304), in ms since the epoch. */
  validatedAt: number
  /** Until when it is fresh: its explicit freshness, or `interval` when the source gives none. */
  freshUntil: number
  /** How long past `freshUntil` the source lets it be used when it cannot be revalidated
   * (`stale-if-error`), in milliseconds. */
  staleIfError: number
}

/**
 * A URL as logs and public output name it: scheme, host and path, never a query, which may carry
 * a credential of the uCDN's.
 */
export function publicName(url: string): string {
  const { origin, pathname } = new URL(url)
  return `${origin}${pathname}`
}

export class FetchError extends Error {
  override name = 'FetchError'
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${publicName(url)}: ${message}`)
  }
}

export interface TreeResult {
  /** The tree with every Link replaced by the object it names. */
  document: unknown
  /** The root's own text when it holds no Link (kept as it is, so its ETag carries over). */
  rootText: string | null
  /** Every resource of the tree, as now cached. */
  resources: Map<string, CachedResource>
  /** Whether any resource's body differs from the cache the fetch started from. */
  changed: boolean
  /** Requests made, and how many were answered 304. */
  requests: number
  notModified: number
}

export interface FetchContext {
  dispatcher: Dispatcher
  token: string | null
  limits: TreeLimits
  /** Freshness given to a resource whose source gives none, in milliseconds. */
  interval: number
  now: () => number
}

const CDNI = 'application/cdni'
/** The object a Link in each property of each structural object stands for (RFC 8006 section 4.1). */
const HOST_INDEX = 'MI.HostIndex'
const HOST_MATCH = 'MI.HostMatch'
const HOST_METADATA = 'MI.HostMetadata'
const PATH_MATCH = 'MI.PathMatch'
const PATH_METADATA = 'MI.PathMetadata'

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** RFC 8006 section 4.3.1: an object with `href` is a Link. */
const isLink = (value: unknown): value is { href: unknown; type?: unknown } => isObject(value) && 'href' in value

/** The ptype of an `application/cdni` media type, `json` for `application/json`, or null for anything else. */
function payloadType(contentType: string | string[] | undefined): string | null {
  if (typeof contentType !== 'string') return null
  const [essence = '', ...parameters] = contentType.split(';').map((part) => part.trim())
  const type = essence.toLowerCase()
  if (type === 'application/json') return 'json'
  if (type !== CDNI) return null
  for (const parameter of parameters) {
    const equals = parameter.indexOf('=')
    if (parameter.slice(0, equals).trim().toLowerCase() === 'ptype') {
      return parameter
        .slice(equals + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1')
    }
  }
  return ''
}

/** The `Accept` header for an object of `ptype` (or of any type, for a generic one). */
function acceptFor(ptype: string | null): string {
  return ptype === null ? `${CDNI}, application/json;q=0.9` : `${CDNI}; ptype=${ptype}, application/json;q=0.9`
}

/**
 * The shortest freshness a resource is given, in milliseconds: the follower revalidates no more
 * than about twice in it. A source that says its metadata is stale at once (`max-age=0`,
 * `no-cache`, `no-store`, an `Expires` past) gets it, rather than being polled in a loop or
 * having its word replaced by `followInterval`.
 */
export const LEAST_FRESHNESS = 1000

function freshness(policy: CachePolicy): number | null {
  // The stored headers: a 304's are merged into the 200's (RFC 9111 section 4.3.4), so a 304
  // that repeats no Cache-Control keeps the freshness the 200 gave.
  const { rescc: directives, resh: headers } = policy.toObject()
  // Only freshness the source states counts: a heuristic one from Last-Modified would guess at
  // how long the uCDN means its metadata to hold.
  const explicit =
    'max-age' in directives || 'no-cache' in directives || 'no-store' in directives || headers.expires !== undefined
  if (!explicit) return null
  // Not timeToLive(), which adds the stale-if-error allowance to the freshness.
  return Math.max(LEAST_FRESHNESS, (policy.maxAge() - policy.age()) * 1000)
}

/** The longest `stale-if-error` honoured, as `followMaxStale` is capped: a week. */
const MOST_STALE_IF_ERROR = 7 * 24 * 3600 * 1000

function staleIfErrorOf(policy: CachePolicy): number {
  const { rescc } = policy.toObject()
  // must-revalidate: stale, it may not be used without a revalidation (RFC 9111 section 5.2.2.2).
  if ('must-revalidate' in rescc) return 0
  const seconds = Number(rescc['stale-if-error'])
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MOST_STALE_IF_ERROR) : 0
}

/** Counts requests in flight, so that no more than `limit` are. */
class Gate {
  private active = 0
  private readonly waiting: (() => void)[] = []
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    // A slot freed goes straight to the first waiter: none taken meanwhile by a newcomer.
    if (this.active < this.limit) this.active++
    else await new Promise<void>((resolve) => this.waiting.push(resolve))
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next === undefined) this.active--
      else next()
    }
  }
}

/**
 * When a resource is revalidated: after 80% of its freshness, spread over the next tenth by
 * `jitter` (0 to 1) so that a fleet started together does not poll together, and no later than
 * half its freshness or 5 s before it runs out, so that a slow answer or a busy machine still
 * revalidates it in time.
 */
export function refreshPoint(resource: CachedResource, jitter: number): number {
  const lifetime = resource.freshUntil - resource.validatedAt
  return resource.validatedAt + Math.min(lifetime * (0.8 + 0.1 * jitter), lifetime - Math.min(5000, lifetime / 2))
}

/**
 * Fetches the tree at `root`, reusing and revalidating `cache` (not changed: the result carries
 * the new cache). Resources whose refresh point has not come are used without a request, unless
 * `revalidateAll`.
 */
export async function fetchTree(
  root: string,
  cache: ReadonlyMap<string, CachedResource>,
  context: FetchContext,
  revalidateAll = false,
): Promise<TreeResult> {
  const { limits } = context
  const origin = new URL(root).origin
  const resources = new Map<string, CachedResource>()
  const pending = new Map<string, Promise<CachedResource>>()
  const gate = new Gate(limits.concurrency)
  let bytes = 0
  let expanded = 0
  let changed = false
  let requests = 0
  let notModified = 0
  let rootText: string | null = null
  let links = 0
  // The first failure ends the whole fetch: requests in flight are aborted, and none is started
  // after it, so a tree that failed early (a limit passed) costs no more downloads or parses.
  const failed = new AbortController()

  /** The body of `url`, from the cache while it is fresh enough, else from the source. */
  const load = async (url: string, ptype: string | null, linkType: string | null): Promise<CachedResource> => {
    const cached = cache.get(url)
    if (cached !== undefined && !revalidateAll && context.now() < refreshPoint(cached, 0)) return cached
    // The whole exchange, its body included, holds one of the `concurrency` slots, and a failure
    // aborts the tree before its slot goes to the next request, so none starts after it.
    return gate.run(async () => {
      if (failed.signal.aborted) throw new FetchError(url, 'not fetched: the tree already failed')
      try {
        return await exchange(url, ptype ?? linkType, cached)
      } catch (err) {
        failed.abort()
        throw err
      }
    })
  }

  /** One request for `url`, answered 304 (for `cached`) or 200, checked, read and remembered. */
  const exchange = async (url: string, expected: string | null, cached: CachedResource | undefined) => {
    const headers: Record<string, string> = { accept: acceptFor(expected) }
    if (context.token !== null) headers.authorization = `Bearer ${context.token}`
    const asked = { url, method: 'GET', headers }
    const policyBefore = cached === undefined ? null : CachePolicy.fromObject(cached.policy)
    const sent = policyBefore === null ? headers : (policyBefore.revalidationHeaders(asked) as Record<string, string>)
    requests++
    const answer = await request(url, {
      method: 'GET',
      headers: sent,
      dispatcher: context.dispatcher,
      headersTimeout: limits.timeout,
      bodyTimeout: limits.timeout,
      // A whole answer within three times the wait for one chunk: a source dripping a byte at a
      // time cannot hold a poll for longer.
      signal: AbortSignal.any([failed.signal, AbortSignal.timeout(limits.timeout * 3)]),
    }).catch((err: Error) => {
      throw new FetchError(url, `cannot be fetched: ${err.message}`)
    })
    const response = { status: answer.statusCode, headers: answer.headers }
    if (answer.statusCode === 304 && cached !== undefined && policyBefore !== null) {
      await answer.body.dump()
      // `matches`: the 304 names the representation held (its strong ETag, or else its Last-Modified).
      const { policy, matches } = policyBefore.revalidatedPolicy(asked, response) as CachePolicy.RevalidationPolicy & {
        matches: boolean
      }
      if (!matches) throw new FetchError(url, 'answered 304 for a representation other than the one held')
      notModified++
      return remember(url, cached.body, policy, context.now())
    }
    if (answer.statusCode !== 200) {
      await answer.body.dump()
      throw new FetchError(url, `answered ${answer.statusCode}; a metadata resource must answer 200 or 304`)
    }
    const type = payloadType(answer.headers['content-type'])
    if (type === null || (type !== 'json' && expected !== null && type.toLowerCase() !== expected.toLowerCase())) {
      await answer.body.dump()
      throw new FetchError(
        url,
        `is ${String(answer.headers['content-type'] ?? 'sent without a media type')}, where ${expected === null ? 'CDNI metadata' : `${CDNI}; ptype=${expected}`} is expected`,
      )
    }
    const body = await readBody(url, answer.body, Math.min(limits.resourceBytes, limits.treeBytes - bytes))
    bytes += Buffer.byteLength(body)
    const policy = new CachePolicy(asked, response, { shared: false })
    const lastModified = Date.parse(String(answer.headers['last-modified']))
    const heldModified = cached === undefined ? NaN : Date.parse(String(cached.policy.resh['last-modified']))
    if (lastModified < heldModified) {
      throw new FetchError(
        url,
        `went backwards: Last-Modified ${String(answer.headers['last-modified'])} is older than the ${String(cached?.policy.resh['last-modified'])} held`,
      )
    }
    if (cached?.body !== body) changed = true
    return remember(url, body, policy, context.now())
  }

  const remember = (url: string, body: string, policy: CachePolicy, now: number): CachedResource => ({
    url,
    body,
    policy: policy.toObject(),
    validatedAt: now,
    freshUntil: now + (freshness(policy) ?? context.interval),
    staleIfError: staleIfErrorOf(policy),
  })

  /** Each resource fetched once per tree, however many Links name it. */
  const fetched = (url: string, ptype: string | null, linkType: string | null): Promise<CachedResource> => {
    let resource = pending.get(url)
    if (resource === undefined) {
      if (pending.size >= limits.objects) {
        throw new FetchError(url, `is one resource more than the ${limits.objects} a tree may have`)
      }
      resource = load(url, ptype, linkType).then((loaded) => {
        resources.set(url, loaded)
        return loaded
      })
      pending.set(url, resource)
    }
    return resource
  }

  /**
   * The object `url` holds, parsed afresh and expanded for this reference. `above` is the chain of
   * URLs that led here: a Link back into it is a loop (section 4.3.1.1), refused rather than
   * followed. Objects are expanded per reference (a resource named twice appears twice), and every
   * expansion counts against the limits, so a source cannot multiply its tree by sharing.
   */
  const expandResource = async (
    url: string,
    ptype: string | null,
    linkType: string | null,
    above: readonly string[],
  ): Promise<unknown> => {
    try {
      return await expandFetched(url, ptype, linkType, above)
    } catch (err) {
      // Whatever failed (a request, a limit, a Link, a body that is no JSON), the tree has failed:
      // nothing more is requested for it.
      failed.abort()
      throw err
    }
  }

  const expandFetched = async (
    url: string,
    ptype: string | null,
    linkType: string | null,
    above: readonly string[],
  ): Promise<unknown> => {
    const resource = await fetched(url, ptype, linkType)
    expanded += resource.body.length
    if (expanded > limits.treeBytes) {
      throw new FetchError(url, `takes the tree past ${limits.treeBytes} bytes`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(resource.body)
    } catch (err) {
      throw new FetchError(url, `is not JSON: ${(err as Error).message}`)
    }
    if (above.length === 0) rootText = resource.body
    return expand(parsed, ptype ?? linkType, [...above, url])
  }

  /** The object a Link names (`href` relative to the resource holding it), expanded. */
  const follow = (link: { href: unknown; type?: unknown }, ptype: string | null, above: readonly string[]) => {
    const base = above[above.length - 1] as string
    if (typeof link.href !== 'string') throw new FetchError(base, 'holds a Link whose "href" is not a string')
    let url: URL
    try {
      url = new URL(link.href, base)
    } catch {
      throw new FetchError(base, `holds a Link to ${JSON.stringify(link.href)}, which is no URL`)
    }
    url.hash = ''
    // The token and the client certificate are the source's: a Link elsewhere would hand them over.
    if (url.origin !== origin) {
      throw new FetchError(
        base,
        `links to ${publicName(url.href)}, outside the source ${origin}; only the source's own resources are followed`,
      )
    }
    const linkType = typeof link.type === 'string' ? link.type : null
    if (linkType !== null && ptype !== null && linkType.toLowerCase() !== ptype.toLowerCase()) {
      throw new FetchError(base, `holds a Link of type ${linkType} where an ${ptype} is expected`)
    }
    if (above.includes(url.href)) {
      throw new FetchError(
        base,
        `links back to ${publicName(url.href)}, which links here: a loop (RFC 8006 section 4.3.1.1)`,
      )
    }
    if (above.length > limits.depth) throw new FetchError(url.href, `is more than ${limits.depth} Links deep`)
    if (++links > limits.objects) {
      throw new FetchError(url.href, `is one Link more than the ${limits.objects} a tree may have`)
    }
    return expandResource(url.href, ptype, linkType, above)
  }

  /** Replaces the Links in the properties of a `ptype` object (the structural ones, section 4.1). */
  const expand = async (value: unknown, ptype: string | null, above: readonly string[]): Promise<unknown> => {
    if (!isObject(value)) return value
    const item = async (child: unknown, type: string | null) =>
      isLink(child) ? follow(child, type, above) : expand(child, type, above)
    const one = async (key: string, type: string) => {
      if (value[key] !== undefined) value[key] = await item(value[key], type)
    }
    const each = async (key: string, type: string | null) => {
      const list = value[key]
      if (Array.isArray(list)) value[key] = await Promise.all(list.map((child) => item(child, type)))
    }
    switch (ptype?.toLowerCase()) {
      case 'mi.hostindex':
        // Also the root of a delivery-criteria document, which has no `hosts` to follow.
        await each('hosts', HOST_MATCH)
        break
      case 'mi.hostmatch':
        await one('host-metadata', HOST_METADATA)
        break
      case 'mi.hostmetadata':
      case 'mi.pathmetadata':
        await each('metadata', null)
        await each('paths', PATH_MATCH)
        break
      case 'mi.pathmatch':
        await one('path-metadata', PATH_METADATA)
        break
    }
    return value
  }

  const document = await expandResource(root, null, HOST_INDEX, [])
  for (const url of cache.keys()) if (!resources.has(url)) changed = true
  return {
    document,
    rootText: links === 0 ? rootText : null,
    resources,
    changed,
    requests,
    notModified,
  }
}

/** The body as text, failing once it passes `limit` bytes (and so stopping the download). */
async function readBody(url: string, body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of body) {
      size += (chunk as Buffer).length
      if (size > limit) {
        body.destroy()
        throw new FetchError(url, `is larger than the ${limit} bytes left for it`)
      }
      chunks.push(chunk as Buffer)
    }
  } catch (err) {
    if (err instanceof FetchError) throw err
    throw new FetchError(url, `broke off: ${(err as Error).message}`)
  }
  return Buffer.concat(chunks).toString('utf8')
}
