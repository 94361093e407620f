/**
 * Which client facts the edge may believe (docs/TRUST.md), established once per request.
 *
 * The walk is written by hand rather than taken from proxy-addr because it must do more than pick
 * a client address: it must also recognise an operator gateway, take the handset address that
 * gateway appended (the entry just left of it, never further) and read that gateway's MSISDN
 * header, all with strict parsing and caps, without allocating per request.
 *
 * Every rejected input gives "no fact"; nothing here throws on request input.
 */
import { parseAddress, parsePrefix, formatPrefix, type Family, type IpPrefix } from './address.js'
import { InvalidOptionError } from '../errors.js'
import { isDigitString, normalizeMsisdn, type MsisdnFormat } from './msisdn.js'
import { lookup1, lookup4, RangeTableBuilder, type RangeTable } from '../table/range-table.js'
import {
  FACT_HANDSET,
  FACT_MSISDN,
  FACT_PROTOCOL,
  FACT_SOURCE,
  NO_SUBDIVISIONS,
  PROTOCOL_HTTP,
  PROTOCOL_HTTPS,
  type ClientFacts,
} from './facts.js'

/** One mobile operator's enriching gateways (docs/TRUST.md, "The two trust lists"). */
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
  /** Most `X-Forwarded-For` entries the walk reads, from the right: our proxies, the source and
   * the handset. A fact that lies further left is unknowable (and its request denied); what lies
   * further left is never read. Default 16. */
  maxForwardedEntries?: number
  /** Most characters of `X-Forwarded-For` the walk reads, from the right; the same rule.
   * Default 1024. */
  maxForwardedLength?: number
}

interface CompiledGateway {
  name: string
  /** Header slots (see HeaderSlots) of this gateway's MSISDN headers. */
  headerSlots: number[]
  format: MsisdnFormat
}

/**
 * The request headers the walk may read, found in one pass over `rawHeaders` without building
 * Node's header object (which costs more than the whole decision). A raw name is compared only
 * with the wanted names of its length, and without a lower-cased copy: Node makes every name a
 * fresh string, so a Map lookup would hash each one again on every request. The raw lines are
 * read rather than Node's header object because the walk must see every line and every name as
 * sent: a second line of a header Node keeps once, and the header-name twins below.
 */
interface HeaderSlots {
  /** byLength[n]: the wanted names (lower case) of n characters, or undefined */
  byLength: (readonly string[] | undefined)[]
  /** byLength[n][i]'s slot is slotsByLength[n][i] */
  slotsByLength: (readonly number[] | undefined)[]
  /** per slot: how many lines carried it, and the value (lines joined by ", " as Node does) */
  counts: Int32Array
  values: (string | null)[]
  /**
   * per slot: how many lines carried a twin of its name, one equal to it once case is folded and
   * `_` is read as `-` (`x_up_calling_line_id`, `x-up_calling-line-id`). Servers and gateways
   * that map header names to variables (CGI, some proxies and frameworks) read a twin as the
   * header itself, so a twin of the MSISDN header makes the number unknowable (docs/TRUST.md).
   */
  twins: Int32Array
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

const DEFAULT_MSISDN_HEADERS = ['x-up-calling-line-id']
/** RFC 9110 token characters, lower case, for header names. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

function parseTrustedPrefix(text: unknown, option: string): IpPrefix {
  if (typeof text !== 'string') throw new InvalidOptionError(`${option} must be a CIDR string`)
  const parsed = parsePrefix(text)
  if (!parsed.ok) throw new InvalidOptionError(`${option}: "${text}": ${parsed.message}`)
  if (parsed.hostBitsSet) {
    // Metadata gets a warning for this; a trust list gets refused, because a typo here widens trust.
    throw new InvalidOptionError(
      `${option}: "${text}" has host bits set; write ${formatPrefix(parsed.prefix)} if that is meant`,
    )
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
  const slots = new Map<string, number>([
    ['x-forwarded-for', SLOT_XFF],
    ['x-forwarded-proto', SLOT_XFP],
  ])
  const slotOf = (name: string): number => {
    let slot = slots.get(name)
    if (slot === undefined) {
      slot = slots.size
      slots.set(name, slot)
    }
    return slot
  }
  const seen: { prefix: IpPrefix; option: string }[] = proxies.map((prefix, i) => ({
    prefix,
    option: `trustedProxies[${i}]`,
  }))
  const gateways = gatewayList.map((gw, g): CompiledGateway => {
    const at = `gateways[${g}]`
    if (typeof gw !== 'object' || gw === null) throw new InvalidOptionError(`${at} must be an object`)
    if (typeof gw.name !== 'string' || gw.name.length === 0) {
      throw new InvalidOptionError(`${at}.name must be a non-empty string`)
    }
    if (!Array.isArray(gw.cidrs) || gw.cidrs.length === 0) {
      throw new InvalidOptionError(`${at}.cidrs must be a non-empty array of CIDR strings`)
    }
    if (typeof gw.countryCode !== 'string' || !isDigitString(gw.countryCode, 3)) {
      throw new InvalidOptionError(`${at}.countryCode must be 1–3 digits, such as "86"`)
    }
    gw.cidrs.forEach((text, i) => {
      const option = `${at}.cidrs[${i}]`
      const prefix = parseTrustedPrefix(text, option)
      const clash = seen.find((s) => overlaps(s.prefix, prefix))
      if (clash) {
        throw new InvalidOptionError(`${option}: "${text}" overlaps ${clash.option}; an address must have one role`)
      }
      seen.push({ prefix, option })
      ;(prefix.family === 4 ? gatewaysV4 : gatewaysV6).addPrefix(prefix.words, prefix.length, g)
    })
    const headers = gw.msisdnHeaders ?? DEFAULT_MSISDN_HEADERS
    if (!Array.isArray(headers) || headers.length === 0) {
      throw new InvalidOptionError(`${at}.msisdnHeaders must be a non-empty array of header names`)
    }
    const names = headers.map((name, i) => {
      if (typeof name !== 'string' || !HEADER_NAME.test(name.toLowerCase())) {
        throw new InvalidOptionError(`${at}.msisdnHeaders[${i}] must be an HTTP header name`)
      }
      const lower = name.toLowerCase()
      // One header may carry one fact: a name that folds (`_` read as `-`) onto a header the walk
      // reads for something else, or onto another of this list, would be counted twice.
      const folded = lower.replace(/_/g, '-')
      if (folded === 'x-forwarded-for' || folded === 'x-forwarded-proto') {
        throw new InvalidOptionError(
          `${at}.msisdnHeaders[${i}]: "${name}" is read for the client's address or protocol`,
        )
      }
      const twin = headers.findIndex(
        (other, j) => j < i && typeof other === 'string' && other.toLowerCase().replace(/_/g, '-') === folded,
      )
      if (twin >= 0) {
        throw new InvalidOptionError(
          `${at}.msisdnHeaders[${i}]: "${name}" is the same header as msisdnHeaders[${twin}] once "_" is read as "-"`,
        )
      }
      return lower
    })
    const numbering = gw.msisdnNumbering ?? 'international'
    if (numbering !== 'international' && numbering !== 'national') {
      throw new InvalidOptionError(`${at}.msisdnNumbering must be "international" or "national"`)
    }
    return {
      name: gw.name,
      headerSlots: names.map(slotOf),
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
    headers: {
      byLength,
      slotsByLength,
      counts: new Int32Array(slots.size),
      values: new Array<string | null>(slots.size).fill(null),
      twins: new Int32Array(slots.size),
    },
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

/** `previousEntry`: no entry is left of the cursor. */
const NO_ENTRY = -1
/** `previousEntry`: an entry is there but lies beyond the walk's caps, so it cannot be read. */
const UNREADABLE = -2

/**
 * Where the walk over one request's `X-Forwarded-For` stands: the value (every line, joined),
 * the end of what is still unread, the first character the walk may read (the character cap,
 * counted from the right) and how many more entries it may read (the entry cap).
 */
interface ForwardedWalk {
  value: string
  end: number
  floor: number
  entriesLeft: number
}

const forwarded: ForwardedWalk = { value: '', end: 0, floor: 0, entriesLeft: 0 }

function startWalk(trust: TrustConfig, value: string | null): void {
  forwarded.value = value ?? ''
  forwarded.end = forwarded.value.length
  forwarded.floor = Math.max(0, forwarded.end - trust.maxForwardedLength)
  forwarded.entriesLeft = trust.maxForwardedEntries
}

/**
 * Reads the next `X-Forwarded-For` entry right to left into `out`: its family, 0 for an entry
 * that is not an address, NO_ENTRY when none is left, UNREADABLE when the next one lies beyond
 * the caps. Empty list elements are skipped (RFC 9110 section 5.6.1), and the HTTP optional
 * whitespace around an entry is space and tab only (other Unicode spaces are not OWS). Nothing
 * left of the caps is ever read: what a client wrote there cannot change the answer, and no
 * request makes the walk longer than the caps.
 */
function previousEntry(out: Uint32Array): number {
  const { value, floor } = forwarded
  let end = forwarded.end
  for (;;) {
    if (end <= 0) return NO_ENTRY
    let comma = end - 1
    while (comma >= floor && value.charCodeAt(comma) !== 44) comma--
    // Without its comma in sight the entry may go on beyond the window: it cannot be read whole.
    if (comma < floor && floor > 0) return UNREADABLE
    let start = comma + 1
    forwarded.end = comma
    while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++
    while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--
    if (start < end) {
      if (forwarded.entriesLeft === 0) return UNREADABLE
      forwarded.entriesLeft--
      return parseAddress(value, out, start, end)
    }
    end = comma
  }
}

/** Four word copies: cheaper than TypedArray.prototype.set for so few elements. */
function copyAddress(from: Uint32Array, to: Uint32Array): void {
  to[0] = from[0] as number
  to[1] = from[1] as number
  to[2] = from[2] as number
  to[3] = from[3] as number
}

/** `compareName`: the names differ. */
const OTHER_NAME = 0
/** `compareName`: the same header name. */
const SAME_NAME = 1
/** `compareName`: a twin (see HeaderSlots). */
const TWIN_NAME = 2

/**
 * Compares a header name as sent with `lower` (a wanted name, lower case, same length): the same
 * name in ASCII case-insensitive comparison, a twin of it, or another name.
 */
function compareName(name: string, lower: string): number {
  let twin = false
  for (let i = 0; i < lower.length; i++) {
    const want = lower.charCodeAt(i)
    const got = name.charCodeAt(i)
    if (got === want) continue
    // Only a letter may differ, and only by case (0x20): "X-Forwarded-For" is "x-forwarded-for".
    if (want >= 97 && want <= 122 && got === want - 32) continue
    if ((want === 45 || want === 95) && (got === 45 || got === 95)) {
      twin = true
      continue
    }
    return OTHER_NAME
  }
  return twin ? TWIN_NAME : SAME_NAME
}

/** Collects the wanted headers of a request from Node's `rawHeaders` (name, value, name, ...). */
function readHeaders(headers: HeaderSlots, rawHeaders: readonly string[]): void {
  const { counts, twins } = headers
  for (let slot = 0; slot < counts.length; slot++) {
    counts[slot] = 0
    twins[slot] = 0
  }
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length >= headers.byLength.length) continue
    const wanted = headers.byLength[name.length]
    if (wanted === undefined) continue
    for (let w = 0; w < wanted.length; w++) {
      const lower = wanted[w] as string
      // Names usually arrive in lower case, and === compares those without a loop of ours.
      const kind = name === lower ? SAME_NAME : compareName(name, lower)
      if (kind === OTHER_NAME) continue
      const slot = (headers.slotsByLength[name.length] as readonly number[])[w] as number
      if (kind === TWIN_NAME) {
        twins[slot] = (twins[slot] as number) + 1
        continue
      }
      const value = rawHeaders[i + 1] as string
      const count = (counts[slot] as number) + 1
      counts[slot] = count
      headers.values[slot] = count === 1 ? value : `${headers.values[slot] as string}, ${value}`
      break
    }
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
 * Fills `facts` for one request (docs/TRUST.md, "The walk"). `remoteAddress` is the TCP peer,
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
export function extractFromPeer(
  trust: TrustConfig,
  peer: PeerFacts,
  rawHeaders: readonly string[],
  now: number,
  facts: ClientFacts,
): void {
  facts.sourceFamily = 0
  facts.handsetFamily = 0
  facts.gateway = -1
  facts.msisdn = null
  facts.country = null
  facts.subdivisions = NO_SUBDIVISIONS
  facts.asn = -1
  facts.now = now
  facts.protocol = peer.protocol
  facts.unknowable = 0
  const peerFamily = peer.family
  facts.peerFamily = peerFamily
  if (peerFamily === 0) {
    // No peer address (a socket already closed): nothing to start the walk from.
    facts.unknowable = FACT_SOURCE
    return
  }
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
  if (peerIsProxy) {
    // Our proxy says the protocol in exactly one line; anything else (no line, two, a value that
    // is neither) leaves a protocol that is there but cannot be known.
    facts.protocol = headers.counts[SLOT_XFP] === 1 ? forwardedProto(headers.values[SLOT_XFP] as string) : 0
    if (facts.protocol === 0) facts.unknowable = FACT_PROTOCOL
  }
  startWalk(trust, headers.counts[SLOT_XFF] === 0 ? null : (headers.values[SLOT_XFF] as string))
  let sourceFamily: number
  if (peerIsProxy) {
    // Right to left, skipping our own proxies; the first other entry is the source. No entry, an
    // entry that is no address, or one beyond the caps: our proxy vouches for a client we cannot
    // name, so the source (and all that derives from it) is unknowable.
    for (;;) {
      sourceFamily = previousEntry(facts.source)
      if (sourceFamily <= 0) {
        facts.unknowable |= FACT_SOURCE
        return
      }
      if (!isProxyAddress(trust, sourceFamily as Family, facts.source)) break
    }
  } else {
    sourceFamily = peerFamily
    copyAddress(peer.address, facts.source)
  }
  facts.sourceFamily = sourceFamily as Family
  const gateway = peerIsProxy ? gatewayOf(trust, sourceFamily as Family, facts.source) : peerGateway
  if (gateway < 0) return

  // The source is an operator gateway: the entry it appended is just left of it. Anything further
  // left was written by the client and decides nothing. No entry there: the gateway added none,
  // and the handset is absent; an entry that is no address, or beyond the caps, is unknowable.
  facts.gateway = gateway
  const handset = previousEntry(facts.handset)
  if (handset > 0) facts.handsetFamily = handset as Family
  else if (handset !== NO_ENTRY) facts.unknowable |= FACT_HANDSET
  readMsisdn(trust.gateways[gateway] as CompiledGateway, headers, facts)
}

/** The X-Forwarded-Proto line of our proxy: HTTP or HTTPS, else 0. */
function forwardedProto(value: string): number {
  if (value === 'http' || value === 'HTTP') return PROTOCOL_HTTP
  if (value === 'https' || value === 'HTTPS') return PROTOCOL_HTTPS
  return 0
}

/**
 * The gateway's MSISDN: exactly one line of exactly one of its headers, no twin of any of them,
 * and a value that parses. No line at all: the gateway sent no number, and the MSISDN is absent.
 * Anything else is unknowable: two lines or two names (a client may have sent one before the
 * gateway added its own), a twin, or a value that is not a number.
 */
function readMsisdn(gateway: CompiledGateway, headers: HeaderSlots, facts: ClientFacts): void {
  let raw: string | null = null
  let lines = 0
  for (const slot of gateway.headerSlots) {
    lines += (headers.counts[slot] as number) + (headers.twins[slot] as number)
    if (headers.counts[slot] === 1) raw = headers.values[slot] as string
  }
  if (lines === 0) return
  facts.msisdn = lines === 1 && raw !== null ? normalizeMsisdn(raw, gateway.format) : null
  if (facts.msisdn === null) facts.unknowable |= FACT_MSISDN
}

/** Name of the gateway a request came through, for logs. */
export function gatewayName(trust: TrustConfig, index: number): string | null {
  return index < 0 ? null : (trust.gateways[index] as CompiledGateway).name
}
