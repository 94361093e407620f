/**
 * RFC 8006 section 4.1.5 path patterns, matched against the request path in the canonical form of
 * request-target.ts (the loader puts every pattern through the same form first).
 *
 * `*` matches any sequence of pchars and `/`, even none; `?` matches exactly one pchar; `$$`, `$*`
 * and `$?` are the literal characters; everything else is literal. A percent-encoded octet
 * (`%2F`) is one pchar, for `*` as for `?`: neither ever splits one, so `*3` does not match
 * `/%C3` (that path ends in the octet 0xC3, not in "3"), and hex digits compare in either case
 * (RFC 3986 section 2.1). Case-insensitive patterns (the default) fold ASCII letters only, before
 * percent-decoding, as the RFC says.
 *
 * Written by hand rather than translated to a RegExp: a pattern comes from a partner's metadata,
 * and `*a*a*a*a*b` as a backtracking regex takes time exponential in the stars on a long path.
 * The part before the first star is compared at the start of the path, the part after the last
 * star at its end, and each part between two stars is found at its leftmost place after the one
 * before (which is optimal: every part is a fixed number of pchars). So a pattern of at most one
 * star costs at most its own length whatever the path, and one of more stars at most the path's
 * length times its longest middle part: see patternCost, which the loader adds up to refuse a
 * document whose selection could cost more than SELECTION_BUDGET on some path.
 */

const STAR = -1
const ONE = -2
const SLASH = 0x2f

/**
 * Request paths longer than this (canonical, without query) are refused by canonicalPath
 * (request-target.ts): the bound on selection work is per character of path. The request-line
 * limit of Apache (8,190) and nginx's default buffers (8 KB) are of this size.
 */
export const MAX_PATH_LENGTH = 8192

/**
 * Most comparisons (of a pattern token with a path pchar, or one step back along the path)
 * selecting the node for one request may take, along the whole chain of levels, whatever the
 * path. A document that could exceed it is refused at load (rfc8006.ts).
 */
export const SELECTION_BUDGET = 1 << 20

export interface PathPattern {
  /** The pattern as written, for explanations. */
  readonly source: string
  readonly caseSensitive: boolean
  /** Literal pchars (ASCII letters folded to lower case when case-insensitive), STAR or ONE. */
  readonly tokens: Int32Array
}

/** Why a pattern string is malformed, or null. A lone `$`, or `$` before anything else, is. */
export function patternError(pattern: string): string | null {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '$') continue
    const next = pattern[i + 1]
    if (next !== '$' && next !== '*' && next !== '?') {
      return `"$" at ${i} must be followed by "$", "*" or "?" (the escapes of RFC 8006 section 4.1.5)`
    }
    i++
  }
  return null
}

/** ASCII letters only, the way RFC 8006 section 4.1.5 folds; index keys fold the same way. */
const fold = (code: number): number => (code >= 0x41 && code <= 0x5a ? code + 0x20 : code)

const hexValue = (code: number): number =>
  code >= 0x30 && code <= 0x39
    ? code - 0x30
    : code >= 0x41 && code <= 0x46
      ? code - 0x37
      : code >= 0x61 && code <= 0x66
        ? code - 0x57
        : -1

/**
 * A percent-encoded octet as one pchar: above every UTF-16 code unit, so it never equals a
 * character written plainly, and the same whatever the case of its hex digits.
 */
const ENCODED = 0x10000

/** The pchar (or `/`) at `i` < text.length: a code unit, or ENCODED | octet for `%XX`. */
function pcharAt(text: string, i: number): number {
  const code = text.charCodeAt(i)
  if (code !== 0x25) return code
  const high = hexValue(text.charCodeAt(i + 1))
  const low = hexValue(text.charCodeAt(i + 2))
  return high < 0 || low < 0 ? code : ENCODED | (high << 4) | low
}

const widthOf = (pchar: number): number => (pchar >= ENCODED ? 3 : 1)

/**
 * Where the pchar that ends at `end` (> 0) starts. A `%` is never inside an encoded octet (those
 * are hex digits), so `%XX` just before `end` is one, read forwards too.
 */
function pcharStartBefore(text: string, end: number): number {
  return end >= 3 &&
    text.charCodeAt(end - 3) === 0x25 &&
    hexValue(text.charCodeAt(end - 2)) >= 0 &&
    hexValue(text.charCodeAt(end - 1)) >= 0
    ? end - 3
    : end - 1
}

/** Compiles a pattern already checked by patternError. */
export function compilePattern(pattern: string, caseSensitive = false): PathPattern {
  const tokens: number[] = []
  for (let i = 0; i < pattern.length; i++) {
    const code = pattern.charCodeAt(i)
    if (code === 0x24 /* $ */) {
      const literal = pattern.charCodeAt(++i)
      tokens.push(caseSensitive ? literal : fold(literal))
    } else if (code === 0x2a /* * */) {
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR) // `**` is `*`
    } else if (code === 0x3f /* ? */) {
      tokens.push(ONE)
    } else {
      // `%` and two hex digits are one pchar (no escape is a hex digit, so none is in the way).
      const pchar = pcharAt(pattern, i)
      tokens.push(caseSensitive ? pchar : fold(pchar))
      i += widthOf(pchar) - 1
    }
  }
  return { source: pattern, caseSensitive, tokens: Int32Array.from(tokens) }
}

/** Comparisons made so far by every match in this process (tests read it to check the bound). */
let work = 0

/** Comparisons made by pattern matching in this process so far. */
export function matchWork(): number {
  return work
}

/** Does the whole of `path` (no query, no fragment) match? */
export function matchPattern(pattern: PathPattern, path: string): boolean {
  const { tokens } = pattern
  return matchTokens(
    tokens,
    0,
    tokens.length,
    tokens.indexOf(STAR),
    tokens.lastIndexOf(STAR),
    pattern.caseSensitive,
    path,
  )
}

/**
 * The most comparisons matching this pattern can take on a path of `pathLength` characters: its
 * parts before the first star and after the last (the last part is walked back, then compared),
 * plus, with two stars or more, the path's length times its longest middle part (each place a
 * middle part is tried at is a place no other part is tried at).
 */
export function patternCost(pattern: PathPattern, pathLength = MAX_PATH_LENGTH): number {
  const { tokens } = pattern
  let firstStar = -1
  let lastStar = -1
  let longestMiddle = 0
  for (let t = 0; t < tokens.length; t++) {
    if (tokens[t] !== STAR) continue
    if (firstStar < 0) firstStar = t
    else longestMiddle = Math.max(longestMiddle, t - lastStar - 1)
    lastStar = t
  }
  if (firstStar < 0) return Math.max(1, tokens.length)
  return Math.max(1, firstStar + 2 * (tokens.length - lastStar - 1) + pathLength * longestMiddle)
}

/**
 * The patterns of one level, in order, their tokens end to end in one array: trying twenty
 * patterns then reads one or two cache lines instead of chasing three pointers each (with 5,000
 * hosts, bench/site.js, that was most of an uncached selection).
 *
 * A level of many patterns is also indexed by its patterns' first path segment, when that is all
 * literal (`/sports/*` is indexed under `sports`; `/*.m3u8` and `/s?orts/*` are not): a path is
 * tried only against the patterns of its own first segment and the unindexed ones, still in the
 * order written, so the first match is the same and thousands of patterns cost a few.
 */
export interface PatternList {
  readonly tokens: Int32Array
  /** Pattern i's tokens are tokens[bounds[i]..bounds[i + 1]]. */
  readonly bounds: Uint32Array
  /** Index in `tokens` of pattern i's first and last STAR, or -1. */
  readonly firstStar: Int32Array
  readonly lastStar: Int32Array
  /** 1 where pattern i is case-sensitive. */
  readonly sensitive: Uint8Array
  /** First segment (ASCII letters in lower case) -> the patterns to try for it, in order; null: try them all. */
  readonly index: Map<string, Uint32Array> | null
  /** Length of the longest key of the index: a longer first segment has none. */
  readonly longestKey: number
  /** The patterns to try for a segment no indexed pattern has. */
  readonly unindexed: Uint32Array
  /** The most comparisons firstMatch can take on this list, for a path of MAX_PATH_LENGTH. */
  readonly cost: number
  /** The patterns tried for the path that costs `cost`, in order (for the loader's error). */
  readonly costliest: Uint32Array
}

/** Below this many patterns a level is not indexed: trying them all is as quick. */
const INDEX_FROM = 8
/** Above this many unindexable patterns a level is not indexed: each key would repeat them all. */
const INDEX_UNINDEXED_MAX = 32

/** How a first segment is written as an index key: ASCII letters folded, octets as `%xx`. */
function keyChar(pchar: number): string {
  return pchar >= ENCODED ? `%${(pchar & 0xff).toString(16).padStart(2, '0')}` : String.fromCharCode(fold(pchar))
}

/** The first segment of a pattern when it is all literal, as a key, else null. */
function literalFirstSegment(tokens: Int32Array): string | null {
  if (tokens[0] !== SLASH) return null
  let key = ''
  for (let t = 1; t < tokens.length; t++) {
    const token = tokens[t] as number
    if (token === SLASH) return key
    if (token < 0) return null
    key += keyChar(token)
  }
  return key
}

/** The key a path's first segment of `length` characters looks up: the same folding as keyChar. */
function pathKey(path: string, length: number): string {
  let key = ''
  for (let i = 1; i <= length;) {
    const pchar = pcharAt(path, i)
    key += keyChar(pchar)
    i += widthOf(pchar)
  }
  return key
}

export function compilePatternList(patterns: readonly PathPattern[]): PatternList {
  const bounds = new Uint32Array(patterns.length + 1)
  patterns.forEach((pattern, i) => (bounds[i + 1] = (bounds[i] as number) + pattern.tokens.length))
  const tokens = new Int32Array(bounds[patterns.length] as number)
  patterns.forEach((pattern, i) => tokens.set(pattern.tokens, bounds[i]))
  const firstStar = Int32Array.from(patterns, (pattern, i) =>
    pattern.tokens.includes(STAR) ? (bounds[i] as number) + pattern.tokens.indexOf(STAR) : -1,
  )
  const lastStar = Int32Array.from(patterns, (pattern, i) =>
    pattern.tokens.includes(STAR) ? (bounds[i] as number) + pattern.tokens.lastIndexOf(STAR) : -1,
  )
  const costs = patterns.map((pattern) => patternCost(pattern))
  const keys = patterns.map((pattern) => literalFirstSegment(pattern.tokens))
  const unindexed = Uint32Array.from(keys.flatMap((key, i) => (key === null ? [i] : [])))
  const sum = (list: Uint32Array): number => list.reduce((total, i) => total + (costs[i] as number), 0)
  let index: Map<string, Uint32Array> | null = null
  let longestKey = 0
  let costliest: Uint32Array = Uint32Array.from(patterns.keys())
  let cost = sum(costliest)
  if (patterns.length >= INDEX_FROM && unindexed.length <= INDEX_UNINDEXED_MAX) {
    const byKey = new Map<string, number[]>()
    keys.forEach((key, i) => {
      if (key === null) return
      const own = byKey.get(key)
      if (own === undefined) byKey.set(key, [i])
      else own.push(i)
    })
    index = new Map(
      [...byKey].map(([key, own]) => [key, Uint32Array.from([...own, ...unindexed].sort((a, b) => a - b))]),
    )
    for (const key of index.keys()) longestKey = Math.max(longestKey, key.length)
    costliest = unindexed
    for (const list of index.values()) if (sum(list) > sum(costliest)) costliest = list
    // Finding the key reads at most longestKey + 1 characters of the path, counted as comparisons.
    cost = longestKey + 2 + sum(costliest)
  }
  return {
    tokens,
    bounds,
    firstStar,
    lastStar,
    sensitive: Uint8Array.from(patterns, (pattern) => (pattern.caseSensitive ? 1 : 0)),
    index,
    longestKey,
    unindexed,
    cost,
    costliest,
  }
}

/** Whether pattern `i` of the list matches `path`. */
function patternMatches(list: PatternList, i: number, path: string): boolean {
  const { tokens, bounds, firstStar, lastStar, sensitive } = list
  return matchTokens(
    tokens,
    bounds[i] as number,
    bounds[i + 1] as number,
    firstStar[i] as number,
    lastStar[i] as number,
    sensitive[i] === 1,
    path,
  )
}

/** Index of the first pattern of the list that matches `path`, or -1. */
export function firstMatch(list: PatternList, path: string): number {
  const index = list.index
  if (index === null) {
    for (let i = 0; i + 1 < list.bounds.length; i++) {
      if (patternMatches(list, i, path)) return i
    }
    return -1
  }
  let candidates = list.unindexed
  if (path.charCodeAt(0) === SLASH) {
    // Only as far as the longest key: a path of one long segment costs no more than a short one.
    let end = 1
    while (end < path.length && end <= list.longestKey + 1 && path.charCodeAt(end) !== SLASH) end++
    work += end
    if (end - 1 <= list.longestKey) candidates = index.get(pathKey(path, end - 1)) ?? candidates
  }
  for (const i of candidates) {
    if (patternMatches(list, i, path)) return i
  }
  return -1
}

/**
 * Compares tokens[from..end) (no STAR among them) with the pchars of `path` from `at`, never
 * reading at or past `limit`: where the run ends in the path, or -1.
 */
function matchRun(
  tokens: Int32Array,
  from: number,
  end: number,
  sensitive: boolean,
  path: string,
  at: number,
  limit: number,
): number {
  let p = at
  for (let t = from; t < end; t++) {
    work++
    if (p >= limit) return -1
    const pchar = pcharAt(path, p)
    const token = tokens[t] as number
    if (token === ONE ? pchar === SLASH : token !== (sensitive ? pchar : fold(pchar))) return -1
    p += widthOf(pchar)
  }
  return p
}

function matchTokens(
  tokens: Int32Array,
  from: number,
  end: number,
  firstStar: number,
  lastStar: number,
  sensitive: boolean,
  path: string,
): boolean {
  if (firstStar < 0) return matchRun(tokens, from, end, sensitive, path, 0, path.length) === path.length
  let p = matchRun(tokens, from, firstStar, sensitive, path, 0, path.length)
  if (p < 0) return false
  // The part after the last star ends the path: walk back one pchar per token, then compare.
  let q = path.length
  for (let t = lastStar + 1; t < end; t++) {
    work++
    if (q <= p) return false
    q = pcharStartBefore(path, q)
  }
  if (q < p || matchRun(tokens, lastStar + 1, end, sensitive, path, q, path.length) < 0) return false
  // Each middle part at its leftmost place in what is left between them.
  for (let t = firstStar + 1; t < lastStar;) {
    let partEnd = t
    while (tokens[partEnd] !== STAR) partEnd++
    let found = -1
    for (let s = p; s < q && found < 0; s += widthOf(pcharAt(path, s))) {
      found = matchRun(tokens, t, partEnd, sensitive, path, s, q)
    }
    if (found < 0) return false
    p = found
    t = partEnd + 1
  }
  return true
}
