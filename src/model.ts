/**
 * The internal policy model: where every metadata format meets (STYLE.md habit 3). Nothing
 * downstream of this module knows which format a policy came from.
 *
 * A policy is an ordered list of rules; the first rule whose clauses all match decides allow or
 * deny, and when none matches the request is denied. A clause is a disjunction of alternatives of
 * one kind (regions, protocols or time windows). A region matches when every field it names
 * matches (SPEC.md section 2).
 */
import type { IpPrefix } from './address.js'

/** A problem found in a metadata document, located by JSON pointer (RFC 6901). */
export interface Problem {
  pointer: string
  message: string
}

/** Prefixes of one region field, kept in flat arrays: a policy may hold millions of them. */
export class PrefixList {
  readonly v4Networks: number[] = []
  readonly v4Lengths: number[] = []
  /** Four words per IPv6 prefix. */
  readonly v6Words: number[] = []
  readonly v6Lengths: number[] = []

  add(prefix: IpPrefix): void {
    if (prefix.family === 4) {
      this.v4Networks.push(prefix.words[0] as number)
      this.v4Lengths.push(prefix.length)
    } else {
      for (let w = 0; w < 4; w++) this.v6Words.push(prefix.words[w] as number)
      this.v6Lengths.push(prefix.length)
    }
  }
}

/** MSISDN prefixes: `national` ones match the national significant number, `international`
 * ones (written with `+`) match country code + national number (SPEC.md section 6). */
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
