/**
 * The internal policy model: where every metadata format meets (docs/ARCHITECTURE.md). Nothing
 * downstream of this module knows which format a policy came from.
 *
 * A policy is an ordered list of rules; the first rule whose clauses all match decides allow or
 * deny, and when none matches the request is denied. A clause is a disjunction of alternatives of
 * one kind (regions, protocols or time windows). A region matches when every field it names
 * matches (README, "The seed's format").
 */

/** A problem found in a metadata document, located by JSON pointer (RFC 6901). */
export interface Problem {
  pointer: string
  message: string
}

/**
 * Prefixes of one region field, kept in flat typed arrays that double as they fill: a policy may
 * hold millions of them, and a million small objects (or boxed numbers) is what makes a large
 * push slow, in the garbage collector.
 */
export class PrefixList {
  v4Networks = new Uint32Array(16)
  v4Lengths = new Uint8Array(16)
  v4Count = 0
  /** Four words per IPv6 prefix. */
  v6Words = new Uint32Array(64)
  v6Lengths = new Uint8Array(16)
  v6Count = 0

  addWords(family: 4 | 6, words: ArrayLike<number>, length: number): void {
    if (family === 4) {
      if (this.v4Count === this.v4Lengths.length) {
        this.v4Networks = grow(this.v4Networks)
        this.v4Lengths = grow(this.v4Lengths)
      }
      this.v4Networks[this.v4Count] = words[0] as number
      this.v4Lengths[this.v4Count++] = length
    } else {
      if (this.v6Count === this.v6Lengths.length) {
        this.v6Words = grow(this.v6Words)
        this.v6Lengths = grow(this.v6Lengths)
      }
      for (let w = 0; w < 4; w++) this.v6Words[this.v6Count * 4 + w] = words[w] as number
      this.v6Lengths[this.v6Count++] = length
    }
  }

  /** Appends every prefix of `other`. */
  addAll(other: PrefixList): void {
    for (let i = 0; i < other.v4Count; i++) {
      this.addWords(4, other.v4Networks.subarray(i, i + 1), other.v4Lengths[i] as number)
    }
    for (let i = 0; i < other.v6Count; i++) {
      this.addWords(6, other.v6Words.subarray(i * 4, i * 4 + 4), other.v6Lengths[i] as number)
    }
  }

  copy(): PrefixList {
    const copy = new PrefixList()
    copy.addAll(this)
    return copy
  }
}

function grow<T extends Uint8Array | Uint32Array>(array: T): T {
  const bigger = new (array.constructor as new (n: number) => T)(array.length * 2)
  bigger.set(array)
  return bigger
}

/** MSISDN prefixes: `national` ones match the national significant number, `international`
 * ones (written with `+`) match country code + national number (README, "The seed's format"). */
export interface MsisdnPrefixes {
  national: string[]
  international: string[]
}

export interface RegionModel {
  /** Where the region came from, for explanations and logs. */
  pointer: string
  subnet: PrefixList | null
  subnet2: PrefixList | null
  msisdn: MsisdnPrefixes | null
  /** ISO 3166-1 alpha-2, upper case. */
  country: string[] | null
  asn: number[] | null
}

export type Protocol = 'http' | 'https'

/** [start, end) in milliseconds since the epoch, UTC. */
export interface TimeWindow {
  start: number
  end: number
}

export type ClauseModel =
  | { kind: 'region'; pointer: string; regions: RegionModel[] }
  | { kind: 'protocol'; pointer: string; protocols: Protocol[] }
  | { kind: 'timeWindow'; pointer: string; windows: TimeWindow[] }

export type ClauseKind = ClauseModel['kind']

export interface RuleModel {
  pointer: string
  allow: boolean
  clauses: ClauseModel[]
}

export interface PolicyModel {
  rules: RuleModel[]
}

/** Escapes one JSON pointer reference token (RFC 6901 section 4). */
export function pointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1')
}

/*
 * RFC 8006 metadata is per host and per path, and its three ACL kinds are ANDed. Each ACL is a
 * first-match rule list with a default of deny, which is exactly a PolicyModel; so a host or path
 * carries up to three of them, and nothing below the model needs to know more.
 */

/** A metadata object the edge must enforce and cannot: the content it covers is denied. */
export interface Unenforceable {
  pointer: string
  type: string
  reason: string
}

/** The ACLs in force for a host or path, after inheritance. null: that kind allows all. */
export interface AclSet {
  location: PolicyModel | null
  time: PolicyModel | null
  protocol: PolicyModel | null
  unenforceable: Unenforceable[]
}

export interface PathNode {
  pointer: string
  /** The pattern as RFC 8006 writes it, and its case flag. */
  pattern: string
  caseSensitive: boolean
  acls: AclSet
  paths: PathNode[]
}

export interface HostNode {
  pointer: string
  /** Lower case; IPv6 literals in RFC 5952 form. */
  host: string
  acls: AclSet
  paths: PathNode[]
}

/** A HostIndex: the first HostMatch for a request's host decides; no match is a denial. */
export interface SiteModel {
  hosts: HostNode[]
}
