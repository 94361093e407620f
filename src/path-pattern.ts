/**
 * RFC 8006 section 4.1.5 path patterns, matched against the raw (still percent-encoded) path.
 *
 * `*` matches any run of path characters, `/` included, even none; `?` matches exactly one pchar,
 * where a percent-encoded octet (`%2F`) is one pchar; `$$`, `$*` and `$?` are the literal
 * characters; everything else is literal. Case-insensitive patterns (the default) fold ASCII
 * letters only, before percent-decoding, as the RFC says.
 *
 * Written by hand rather than translated to a RegExp: a pattern comes from a partner's metadata,
 * and `*a*a*a*a*b` as a backtracking regex takes time exponential in the stars on a long path.
 * This is the classic two-pointer wildcard match (back up to the last star only): O(path ×
 * pattern) at worst, linear for the patterns people write.
 */

const STAR = -1
const ONE = -2

export interface PathPattern {
  /** The pattern as written, for explanations. */
  readonly source: string
  readonly caseSensitive: boolean
  /** Literal character codes (folded to lower case when case-insensitive), STAR or ONE. */
  readonly tokens: Int32Array
}

/** Why a pattern string is malformed, or null. A lone `$`, or `$` before anything else, is. */
export function patternError(pattern: string): string | null {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '$') continue
    const next = pattern[i + 1]
    if (next !== '$' && next !== '*' && next !== '?') return `"$" at ${i} must be followed by "$", "*" or "?" (the escapes of RFC 8006 section 4.1.5)`
    i++
  }
  return null
}

const fold = (code: number): number => (code >= 0x41 && code <= 0x5a ? code + 0x20 : code)

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
      tokens.push(caseSensitive ? code : fold(code))
    }
  }
  return { source: pattern, caseSensitive, tokens: Int32Array.from(tokens) }
}

const isHex = (code: number): boolean => (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66)

/** Length of the pchar at `i` < path.length (3 for `%XX`), or 0 when it is a `/`. */
function pcharLength(path: string, i: number): number {
  const code = path.charCodeAt(i)
  if (code === 0x2f) return 0
  return code === 0x25 && isHex(path.charCodeAt(i + 1)) && isHex(path.charCodeAt(i + 2)) ? 3 : 1
}

/** Does the whole of `path` (no query, no fragment) match? */
export function matchPattern(pattern: PathPattern, path: string): boolean {
  return matchTokens(pattern.tokens, 0, pattern.tokens.length, pattern.caseSensitive, path)
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
  /** 1 where pattern i is case-sensitive. */
  readonly sensitive: Uint8Array
  /** First segment (lower case) -> the patterns to try for it, in order; null: try them all. */
  readonly index: Map<string, Uint32Array> | null
  /** The patterns to try for a segment no indexed pattern has. */
  readonly unindexed: Uint32Array
}

/** Below this many patterns a level is not indexed: trying them all is as quick. */
const INDEX_FROM = 8
/** Above this many unindexable patterns a level is not indexed: each key would repeat them all. */
const INDEX_UNINDEXED_MAX = 32

/** The first segment of a pattern when it is all literal, lower-cased, else null. */
function literalFirstSegment(tokens: Int32Array): string | null {
  if (tokens[0] !== 0x2f) return null
  let key = ''
  for (let t = 1; t < tokens.length; t++) {
    const token = tokens[t] as number
    if (token === 0x2f) return key
    if (token < 0) return null
    key += String.fromCharCode(fold(token))
  }
  return key
}

export function compilePatternList(patterns: readonly PathPattern[]): PatternList {
  const bounds = new Uint32Array(patterns.length + 1)
  patterns.forEach((pattern, i) => (bounds[i + 1] = (bounds[i] as number) + pattern.tokens.length))
  const tokens = new Int32Array(bounds[patterns.length] as number)
  patterns.forEach((pattern, i) => tokens.set(pattern.tokens, bounds[i]))
  const keys = patterns.map((pattern) => literalFirstSegment(pattern.tokens))
  const unindexed = Uint32Array.from(keys.flatMap((key, i) => (key === null ? [i] : [])))
  let index: Map<string, Uint32Array> | null = null
  if (patterns.length >= INDEX_FROM && unindexed.length <= INDEX_UNINDEXED_MAX) {
    const byKey = new Map<string, number[]>()
    keys.forEach((key, i) => {
      if (key === null) return
      const own = byKey.get(key)
      if (own === undefined) byKey.set(key, [i])
      else own.push(i)
    })
    index = new Map([...byKey].map(([key, own]) => [key, Uint32Array.from([...own, ...unindexed].sort((a, b) => a - b))]))
  }
  return { tokens, bounds, sensitive: Uint8Array.from(patterns, (pattern) => (pattern.caseSensitive ? 1 : 0)), index, unindexed }
}

/** Index of the first pattern of the list that matches `path`, or -1. */
export function firstMatch(list: PatternList, path: string): number {
  const { tokens, bounds, sensitive, index } = list
  if (index === null) {
    for (let i = 0; i + 1 < bounds.length; i++) {
      if (matchTokens(tokens, bounds[i] as number, bounds[i + 1] as number, sensitive[i] === 1, path)) return i
    }
    return -1
  }
  let candidates = list.unindexed
  if (path.charCodeAt(0) === 0x2f) {
    const slash = path.indexOf('/', 1)
    candidates = index.get(path.slice(1, slash < 0 ? path.length : slash).toLowerCase()) ?? candidates
  }
  for (const i of candidates) {
    if (matchTokens(tokens, bounds[i] as number, bounds[i + 1] as number, sensitive[i] === 1, path)) return i
  }
  return -1
}

function matchTokens(tokens: Int32Array, from: number, end: number, sensitive: boolean, path: string): boolean {
  let t = from
  let p = 0
  let starToken = -1
  let starPath = 0
  while (p < path.length) {
    const token = t < end ? (tokens[t] as number) : 0
    if (t < end && token === STAR) {
      starToken = t++
      starPath = p
      continue
    }
    if (t < end && token === ONE) {
      const length = pcharLength(path, p)
      if (length > 0) {
        t++
        p += length
        continue
      }
    } else if (t < end) {
      const code = path.charCodeAt(p)
      if (token === (sensitive ? code : fold(code))) {
        t++
        p++
        continue
      }
    }
    // Mismatch: let the last star swallow one more character, or fail.
    if (starToken < 0) return false
    t = starToken + 1
    p = ++starPath
  }
  while (t < end && tokens[t] === STAR) t++
  return t === end
}
