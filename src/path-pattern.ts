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
  const tokens = pattern.tokens
  const sensitive = pattern.caseSensitive
  let t = 0
  let p = 0
  let starToken = -1
  let starPath = 0
  while (p < path.length) {
    const token = t < tokens.length ? (tokens[t] as number) : 0
    if (t < tokens.length && token === STAR) {
      starToken = t++
      starPath = p
      continue
    }
    if (t < tokens.length && token === ONE) {
      const length = pcharLength(path, p)
      if (length > 0) {
        t++
        p += length
        continue
      }
    } else if (t < tokens.length) {
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
  while (t < tokens.length && tokens[t] === STAR) t++
  return t === tokens.length
}
