/**
 * What the request path knows of one request: the client facts the trust walk establishes
 * (facts/trust-walk.ts) and the IP databases add (facts/ip-database.ts), which the policy stages
 * read. A leaf module, so that the stages that fill the facts and those that read them depend on
 * it and not on each other.
 */
import type { Family } from './address.js'
import type { Msisdn } from './msisdn.js'

export const PROTOCOL_HTTP = 1
export const PROTOCOL_HTTPS = 2

/**
 * Facts a request may carry that the client could make unknowable, as bits of
 * `ClientFacts.unknowable` and of a compiled policy's `reads` (docs/TRUST.md, "Present, absent,
 * unknowable"). A fact is present (established by the walk), absent (it does not apply, as the
 * handset of a direct client) or unknowable (the input that would establish it is there but
 * cannot be believed). An unknowable fact the live policy reads anywhere denies the request
 * before any rule is tried: were it read as absent, a client could delete a fact to step around
 * a deny rule. Country and AS number come from the source address, so they stand or fall with it.
 */
export const FACT_SOURCE = 1
export const FACT_HANDSET = 2
export const FACT_MSISDN = 4
export const FACT_PROTOCOL = 8

/** The name of each unknowable-fact bit, in the order deny reasons name them. */
export const UNKNOWABLE_FACTS = [
  [FACT_SOURCE, 'source'],
  [FACT_HANDSET, 'handset'],
  [FACT_MSISDN, 'msisdn'],
  [FACT_PROTOCOL, 'protocol'],
] as const
export type FactName = (typeof UNKNOWABLE_FACTS)[number][1]

/** The names of the facts set in `bits`. */
export function factNames(bits: number): FactName[] {
  return UNKNOWABLE_FACTS.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name)
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
  /** FACT_* bits of the facts that are there but cannot be believed. */
  unknowable: number
}

/** The subdivisions of an address no City database describes: one frozen empty list. */
export const NO_SUBDIVISIONS: readonly string[] = Object.freeze([])

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
    unknowable: 0,
  }
}
