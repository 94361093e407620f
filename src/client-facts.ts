/**
 * Which client facts the edge may believe (TRUST.md), established once per request.
 *
 * The walk is written by hand rather than taken from proxy-addr because it must do more than pick
 * a client address: it must also recognise an operator gateway, take the handset address that
 * gateway appended (the entry just left of it, never further) and read that gateway's MSISDN
 * header, all with strict parsing and caps, without allocating per request.
 *
 * Every rejected input gives "no fact"; nothing here throws on request input.
 */
import { parseAddress, parsePrefix, formatPrefix, type Family, type IpPrefix } from './address.js'
import { InvalidOptionError } from './errors.js'
import { isDigitString, normalizeMsisdn, type Msisdn, type MsisdnFormat } from './msisdn.js'
import { lookup1, lookup4, RangeTableBuilder, type RangeTable } from './range-table.js'
import { PROTOCOL_HTTP, PROTOCOL_HTTPS } from './compile.js'

/** One mobile operator's enriching gateways (TRUST.md, "Two trust lists"). */
export interface GatewayOptions {
  /** Operator name, used in logs. */
  name: string
  /** Egress CIDRs of the operator's enriching gateways. Host bits must be clear. */
  cidrs: string[]
  /** Header(s) in which this gateway sends the subscriber MSISDN. Default `['x-up-calling-line-id']`. */
  msisdnHeaders?: string[]
  /** Home country code, 1–3 digits (`"86"`). */
  countryCode: string
  /** How the gateway writes the number: `international` (country code first, no `+`; the usual
   * header-enrichment form, default) or `national`. */
  msisdnNumbering?: 'international' | 'national'
  /** Accept a leading `00` as the international prefix. Default false. */
  allowDoubleZero?: boolean
}

export interface TrustOptions {
  /** The dCDN's own load balancers in front of the surrogate (CIDRs). Default: none. */
  trustedProxies?: string[]
  /** Operator gateways. Default: none. */
  gateways?: GatewayOptions[]
  /** Most `X-Forwarded-For` entries considered; a longer header gives no fact. Default 16. */
  maxForwardedEntries?: number
  /** Longest `X-Forwarded-For` header considered, in characters. Default 1024. */
  maxForwardedLength?: number
}

interface CompiledGateway {
  name: string
  /** Header slots (see HeaderSlots) of this gateway's MSISDN headers and of their underscore
   * variants. */
  headerSlots: number[]
  underscoreSlots: number[]
  format: MsisdnFormat
}

/**
 * The request headers the walk may read, found in one pass over `rawHeaders` without building
 * Node's header object (which costs more than the whole decision). A raw name is compared only
 * with the wanted names of its length, and without a lower-cased copy: Node makes every name a
 * fresh string, so a Map lookup would hash each one again on every request.
 */
interface HeaderSlots {
  /** byLength[n]: the wanted names (lower case) of n characters, or undefined */
  byLength: (readonly string[] | undefined)[]
  /** byLength[n][i]'s slot is slotsByLength[n][i] */
  slotsByLength: (readonly number[] | undefined)[]
  /** per slot: how many lines carried it, and the value (lines joined by ", " as Node does) */
  counts: Int32Array
  values: (string | null)[]
}

const SLOT_XFF = 0
const SLOT_XFP = 1

/** Trust lists compiled once at register time. */
export interface TrustConfig {
  proxiesV4: RangeTable
  proxiesV6: RangeTable
  /** Gateway tables: set id = gateway index (CIDRs of two gateways never overlap). */
  gatewaysV4: RangeTable
  gatewaysV6: RangeTable
  gateways: CompiledGateway[]
  headers: HeaderSlots
  hasProxies: boolean
  maxForwardedEntries: number
  maxForwardedLength: number
}

/** Facts about one request. Reused between requests: the hook fills it synchronously. */
export interface ClientFacts {
  peerFamily: Family
  peer: Uint32Array
  sourceFamily: Family
  source: Uint32Array
  handsetFamily: Family
  handset: Uint32Array
  /** Index of the operator gateway the request came through, or -1. */
  gateway: number
  msisdn: Msisdn | null
  /** PROTOCOL_HTTP, PROTOCOL_HTTPS, or 0 when unknown. */
  protocol: number
  /** ISO 3166-1 alpha-2 of the source address, when a database says so. */
  country: string | null
  /** ISO 3166-2 codes (`US-NY`) of the source address, when a City database says so. */
  subdivisions: readonly string[]
  /** AS number of the source address, or -1. */
  asn: number
  now: number
}

const NO_SUBDIVISIONS: readonly string[] = Object.freeze([])

export function createClientFacts(): ClientFacts {
  return {
    peerFamily: 0,
    peer: new Uint32Array(4),
    sourceFamily: 0,
    source: new Uint32Array(4),
    handsetFamily: 0,
    handset: new Uint32Array(4),
    gateway: -1,
    msisdn: null,
    protocol: 0,
    country: null,
    subdivisions: NO_SUBDIVISIONS,
    asn: -1,
    now: 0,
  }
}

const DEFAULT_MSISDN_HEADERS = ['x-up-calling-line-id']
/** RFC 9110 token characters, lower case, for header names. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

function parseTrustedPrefix(text: unknown, option: string): IpPrefix {
  if (typeof text !== 'string') throw new InvalidOptionError(`${option} must be a CIDR string`)
  const parsed = parsePrefix(text)
  if (!parsed.ok) throw new InvalidOptionError(`${option}: "${text}": ${parsed.message}`)
  if (parsed.hostBitsSet) {
    // Metadata gets a warning for this; a trust list gets refused, because a typo here widens trust.
    throw new InvalidOptionError(`${option}: "${text}" has host bits set; write ${formatPrefix(parsed.prefix)} if that is meant`)
  }
  return parsed.prefix
}

function overlaps(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false
  const length = Math.min(a.length, b.length)
  for (let w = 0; w * 32 < length; w++) {
    const bits = Math.min(32, length - w * 32)
    const mask = bits === 32 ? 0xffffffff : ~(0xffffffff >>> bits)
    if ((((a.words[w] as number) ^ (b.words[w] as number)) & mask) !== 0) return false
  }
  return true
}

function positiveInteger(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1_000_000) {
    throw new InvalidOptionError(`${option} must be a positive integer`)
  }
  return value
}

/** Normalizes and compiles the trust options; throws an error naming the bad option. */
export function compileTrust(options: TrustOptions = {}): TrustConfig {
  const proxyList = options.trustedProxies ?? []
  if (!Array.isArray(proxyList)) throw new InvalidOptionError('trustedProxies must be an array of CIDR strings')
  const gatewayList = options.gateways ?? []
  if (!Array.isArray(gatewayList)) throw new InvalidOptionError('gateways must be an array')

  const proxies = proxyList.map((text, i) => parseTrustedPrefix(text, `trustedProxies[${i}]`))
  const proxiesV4 = new RangeTableBuilder(1)
  const proxiesV6 = new RangeTableBuilder(4)
  for (const p of proxies) (p.family === 4 ? proxiesV4 : proxiesV6).addPrefix(p.words, p.length, 0)

  const gatewaysV4 = new RangeTableBuilder(1)
  const gatewaysV6 = new RangeTableBuilder(4)
  const slots = new Map<string, number>([['x-forwarded-for', SLOT_XFF], ['x-forwarded-proto', SLOT_XFP]])
  const slotOf = (name: string): number => {
    let slot = slots.get(name)
    if (slot === undefined) {
      slot = slots.size
      slots.set(name, slot)
    }
    return slot
  }
  const seen: { prefix: IpPrefix; option: string }[] = proxies.map((prefix, i) => ({ prefix, option: `trustedProxies[${i}]` }))
  const gateways = gatewayList.map((gw, g): CompiledGateway => {
    const at = `gateways[${g}]`
    if (typeof gw !== 'object' || gw === null) throw new InvalidOptionError(`${at} must be an object`)
    if (typeof gw.name !== 'string' || gw.name.length === 0) throw new InvalidOptionError(`${at}.name must be a non-empty string`)
    if (!Array.isArray(gw.cidrs) || gw.cidrs.length === 0) throw new InvalidOptionError(`${at}.cidrs must be a non-empty array of CIDR strings`)
    if (typeof gw.countryCode !== 'string' || !isDigitString(gw.countryCode, 3)) {
      throw new InvalidOptionError(`${at}.countryCode must be 1–3 digits, such as "86"`)
    }
    gw.cidrs.forEach((text, i) => {
      const option = `${at}.cidrs[${i}]`
      const prefix = parseTrustedPrefix(text, option)
      const clash = seen.find((s) => overlaps(s.prefix, prefix))
      if (clash) throw new InvalidOptionError(`${option}: "${text}" overlaps ${clash.option}; an address must have one role`)
      seen.push({ prefix, option })
      ;(prefix.family === 4 ? gatewaysV4 : gatewaysV6).addPrefix(prefix.words, prefix.length, g)
    })
    const headers = gw.msisdnHeaders ?? DEFAULT_MSISDN_HEADERS
    if (!Array.isArray(headers) || headers.length === 0) throw new InvalidOptionError(`${at}.msisdnHeaders must be a non-empty array of header names`)
    const names = headers.map((name, i) => {
      if (typeof name !== 'string' || !HEADER_NAME.test(name.toLowerCase())) {
        throw new InvalidOptionError(`${at}.msisdnHeaders[${i}] must be an HTTP header name`)
      }
      return name.toLowerCase()
    })
    const numbering = gw.msisdnNumbering ?? 'international'
    if (numbering !== 'international' && numbering !== 'national') {
      throw new InvalidOptionError(`${at}.msisdnNumbering must be "international" or "national"`)
    }
    return {
      name: gw.name,
      headerSlots: names.map(slotOf),
      underscoreSlots: names.filter((n) => n.includes('-')).map((n) => slotOf(n.replace(/-/g, '_'))),
      format: { countryCode: gw.countryCode, numbering, allowDoubleZero: gw.allowDoubleZero === true },
    }
  })
  // Dense up to the longest wanted name, so the hot path reads no hole and no index past the end.
  const longest = Math.max(...[...slots.keys()].map((name) => name.length))
  const byLength = Array.from({ length: longest + 1 }, (): string[] | undefined => undefined)
  const slotsByLength = Array.from({ length: longest + 1 }, (): number[] | undefined => undefined)
  for (const [name, slot] of slots) {
    ;(byLength[name.length] ??= []).push(name)
    ;(slotsByLength[name.length] ??= []).push(slot)
  }
  return {
    proxiesV4: proxiesV4.compile(),
    proxiesV6: proxiesV6.compile(),
    gatewaysV4: gatewaysV4.compile(),
    gatewaysV6: gatewaysV6.compile(),
    gateways,
    headers: { byLength, slotsByLength, counts: new Int32Array(slots.size), values: new Array<string | null>(slots.size).fill(null) },
    hasProxies: proxies.length > 0,
    maxForwardedEntries: positiveInteger(options.maxForwardedEntries, 'maxForwardedEntries', 16),
    maxForwardedLength: positiveInteger(options.maxForwardedLength, 'maxForwardedLength', 1024),
  }
}

function isProxyAddress(trust: TrustConfig, family: Family, address: Uint32Array): boolean {
  if (!trust.hasProxies) return false
  return family === 4 ? lookup1(trust.proxiesV4, address[0] as number) !== 0 : lookup4(trust.proxiesV6, address) !== 0
}

/** Gateway index for an address, or -1. */
function gatewayOf(trust: TrustConfig, family: Family, address: Uint32Array): number {
  if (trust.gateways.length === 0) return -1
  const table = family === 4 ? trust.gatewaysV4 : trust.gatewaysV6
  const label = family === 4 ? lookup1(table, address[0] as number) : lookup4(table, address)
  return label === 0 ? -1 : ((table.labelSets[label] as readonly number[])[0] as number)
}

/**
 * Reads the `X-Forwarded-For` entry ending at `end` into `out`, without the HTTP optional
 * whitespace around it (space and tab only: other Unicode spaces are not OWS); returns its
 * family, and leaves the index of the comma before it in `at.start`.
 */
function readEntryBefore(header: string, end: number, out: Uint32Array, at: { start: number }): Family {
  const comma = header.lastIndexOf(',', end - 1)
  at.start = comma
  let start = comma + 1
  while (start < end && (header.charCodeAt(start) === 32 || header.charCodeAt(start) === 9)) start++
  while (end > start && (header.charCodeAt(end - 1) === 32 || header.charCodeAt(end - 1) === 9)) end--
  return parseAddress(header, out, start, end)
}

const cursor = { start: 0 }

/** Four word copies: cheaper than TypedArray.prototype.set for so few elements. */
function copyAddress(from: Uint32Array, to: Uint32Array): void {
  to[0] = from[0] as number
  to[1] = from[1] as number
  to[2] = from[2] as number
  to[3] = from[3] as number
}

/** Whether a header name as sent equals `lower` (a wanted name, lower case, same length) in
 * ASCII case-insensitive comparison. */
function sameName(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const want = lower.charCodeAt(i)
    const got = name.charCodeAt(i)
    // Only a letter may differ, and only by case (0x20): "X-Forwarded-For" is "x-forwarded-for".
    if (got !== want && !(want >= 97 && want <= 122 && got === want - 32)) return false
  }
  return true
}

/** Collects the wanted headers of a request from Node's `rawHeaders` (name, value, name, ...). */
function readHeaders(headers: HeaderSlots, rawHeaders: readonly string[]): void {
  const counts = headers.counts
  for (let slot = 0; slot < counts.length; slot++) counts[slot] = 0
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length >= headers.byLength.length) continue
    const wanted = headers.byLength[name.length]
    if (wanted === undefined) continue
    let slot = -1
    for (let w = 0; w < wanted.length; w++) {
      const lower = wanted[w] as string
      // Names usually arrive in lower case, and === compares those without a loop of ours.
      if (name === lower || sameName(name, lower)) {
        slot = (headers.slotsByLength[name.length] as readonly number[])[w] as number
        break
      }
    }
    if (slot < 0) continue
    const value = rawHeaders[i + 1] as string
    const count = (counts[slot] as number) + 1
    counts[slot] = count
    headers.values[slot] = count === 1 ? value : `${headers.values[slot] as string}, ${value}`
  }
}

/**
 * What the TCP peer of a connection is, worked out once per connection: the address, whether TLS
 * ended on the socket, and whether the peer is one of our proxies or an operator gateway. A
 * keep-alive connection from a load balancer carries thousands of requests, and none of this can
 * change while it is open.
 */
export interface PeerFacts {
  family: Family
  address: Uint32Array
  protocol: number
  isProxy: boolean
  /** Gateway index, or -1. */
  gateway: number
}

/** Classifies a TCP peer (`remoteAddress` as Node gives it; undefined on a closed socket). */
export function classifyPeer(trust: TrustConfig, remoteAddress: string | undefined, encrypted: boolean): PeerFacts {
  const address = new Uint32Array(4)
  const family = typeof remoteAddress === 'string' ? parseAddress(remoteAddress, address) : 0
  const isProxy = family !== 0 && isProxyAddress(trust, family, address)
  const gateway = family === 0 || isProxy ? -1 : gatewayOf(trust, family, address)
  return { family, address, protocol: encrypted ? PROTOCOL_HTTPS : PROTOCOL_HTTP, isProxy, gateway }
}

/**
 * Fills `facts` for one request (TRUST.md, "The walk"). `remoteAddress` is the TCP peer,
 * `encrypted` whether TLS ended on this socket, and `rawHeaders` the request's header lines as
 * Node gives them (`request.raw.rawHeaders`).
 */
export function extractClientFacts(
  trust: TrustConfig,
  remoteAddress: string | undefined,
  encrypted: boolean,
  rawHeaders: readonly string[],
  now: number,
  facts: ClientFacts,
): void {
  extractFromPeer(trust, classifyPeer(trust, remoteAddress, encrypted), rawHeaders, now, facts)
}

/** `extractClientFacts` for a peer already classified (the plugin keeps one per connection). */
export function extractFromPeer(trust: TrustConfig, peer: PeerFacts, rawHeaders: readonly string[], now: number, facts: ClientFacts): void {
  facts.sourceFamily = 0
  facts.handsetFamily = 0
  facts.gateway = -1
  facts.msisdn = null
  facts.country = null
  facts.subdivisions = NO_SUBDIVISIONS
  facts.asn = -1
  facts.now = now
  facts.protocol = peer.protocol
  const peerFamily = peer.family
  facts.peerFamily = peerFamily
  if (peerFamily === 0) return
  copyAddress(peer.address, facts.peer)

  const peerIsProxy = peer.isProxy
  const peerGateway = peer.gateway
  if (!peerIsProxy && peerGateway < 0) {
    // The common case: a direct client. X-Forwarded-For is the client's own writing: ignored.
    facts.sourceFamily = peerFamily
    copyAddress(peer.address, facts.source)
    return
  }

  const headers = trust.headers
  readHeaders(headers, rawHeaders)
  if (peerIsProxy) facts.protocol = headers.counts[SLOT_XFP] === 1 ? forwardedProto(headers.values[SLOT_XFP] as string) : 0
  const xff = headers.counts[SLOT_XFF] === 0 ? null : forwardedFor(trust, headers.values[SLOT_XFF] as string)
  let end = xff === null ? 0 : xff.length
  let sourceFamily: Family
  if (peerIsProxy) {
    // Right to left, skipping our own proxies; the first other entry is the source.
    sourceFamily = 0
    while (xff !== null && end > 0) {
      const family = readEntryBefore(xff, end, facts.source, cursor)
      end = cursor.start
      if (family === 0) return
      if (!isProxyAddress(trust, family, facts.source)) {
        sourceFamily = family
        break
      }
    }
    if (sourceFamily === 0) return
  } else {
    sourceFamily = peerFamily
    copyAddress(peer.address, facts.source)
  }
  facts.sourceFamily = sourceFamily
  const gateway = peerIsProxy ? gatewayOf(trust, sourceFamily, facts.source) : peerGateway
  if (gateway < 0) return

  // The source is an operator gateway: the entry it appended is just left of it. Anything further
  // left was written by the client and decides nothing.
  facts.gateway = gateway
  if (xff !== null && end > 0) facts.handsetFamily = readEntryBefore(xff, end, facts.handset, cursor)
  facts.msisdn = readMsisdn(trust.gateways[gateway] as CompiledGateway, headers)
}

/** The X-Forwarded-For list (all its lines, joined) when within the caps, else null. */
function forwardedFor(trust: TrustConfig, value: string): string | null {
  if (value.length === 0 || value.length > trust.maxForwardedLength) return null
  // indexOf finds the commas faster than a loop of ours over every character.
  let entries = 1
  for (let comma = value.indexOf(','); comma >= 0; comma = value.indexOf(',', comma + 1)) {
    if (++entries > trust.maxForwardedEntries) return null
  }
  return value
}

function forwardedProto(value: string): number {
  if (value === 'http' || value === 'HTTP') return PROTOCOL_HTTP
  if (value === 'https' || value === 'HTTPS') return PROTOCOL_HTTPS
  return 0
}

/** The gateway's MSISDN: exactly one line of exactly one of its headers, and no underscore twin. */
function readMsisdn(gateway: CompiledGateway, headers: HeaderSlots): Msisdn | null {
  for (const slot of gateway.underscoreSlots) if (headers.counts[slot] !== 0) return null
  let raw: string | null = null
  for (const slot of gateway.headerSlots) {
    const count = headers.counts[slot] as number
    if (count === 0) continue
    if (count > 1 || raw !== null) return null
    raw = headers.values[slot] as string
  }
  return raw === null ? null : normalizeMsisdn(raw, gateway.format)
}

/** Name of the gateway a request came through, for logs. */
export function gatewayName(trust: TrustConfig, index: number): string | null {
  return index < 0 ? null : (trust.gateways[index] as CompiledGateway).name
}
