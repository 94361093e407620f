/**
 * What a request is compared with: its host, and its path read the way the servers behind the
 * plugin read it. RFC 8006 matches patterns against the path as sent, but a pattern only protects
 * content if it sees the path that content is served under: Fastify's router strips an
 * absolute-form target to its path and percent-decodes, @fastify/static resolves dot segments and
 * repeated slashes, and @fastify/http-proxy hands the path to the WHATWG URL parser, which reads
 * `\` as `/`. Measured before this module, with `/secret/*` denied: `/%73ecret/x`, `/./secret/x`,
 * `/free/../secret/x`, `//secret/x`, `/secret%2Fx`, `http://host/secret/x` and (to the origin)
 * `/secret\x` were all served.
 *
 * So the path is made canonical first, and every pattern is put through the same function at load
 * (canonicalPattern), so that the two are compared in one form. In that form each octet has one
 * spelling (RFC 3986 section 6.2.2, taken as far as the servers behind us go, which decode every
 * octet): an octet allowed plainly in a path segment (unreserved, sub-delims, ":", "@") is written
 * plainly, any other as `%XX` in upper case, a stray `%` as `%25`; `%2F` is a `/`, runs of `/`
 * are one, and dot segments are removed (section 5.2.4). What the servers would read differently
 * from one another is refused (null): a backslash, plain or `%5C` (a `/` to the proxy, a
 * character to the file server), any character outside visible ASCII (the WHATWG parser drops
 * tabs and newlines, and re-encodes other octets as UTF-8), and a `..` right after an empty
 * segment (see canonicalForm). So are targets that are not a path
 * under the request's host: the asterisk and authority forms, and an absolute form that names a
 * scheme other than http(s), carries user information, or names a host other than the Host
 * header; and paths longer than MAX_PATH_LENGTH, the bound selection work is counted against.
 */
import type { IncomingHttpHeaders } from 'node:http'
import ipaddr from 'ipaddr.js'
import { MAX_PATH_LENGTH } from './path-pattern.js'

/**
 * A host as RFC 8006 section 4.1.2 compares it: lower case, an IPv6 literal in RFC 5952 form (so
 * every spelling RFC 4291 allows compares equal), the port kept. null when the text is no host.
 */
export function normalizeHost(text: string): string | null {
  const lower = text.toLowerCase()
  if (!lower.startsWith('[')) return /^[a-z0-9._~%!$&'()*+,;=:-]+$/.test(lower) ? lower : null
  const close = lower.indexOf(']')
  const literal = lower.slice(1, close)
  const rest = lower.slice(close + 1)
  if (close < 0 || !ipaddr.IPv6.isValid(literal) || literal.includes('%') || !/^(:\d{1,5})?$/.test(rest)) return null
  return `[${ipaddr.IPv6.parse(literal).toString()}]${rest}`
}

/**
 * The host a request names, as the server behind the plugin reads it: the Host header as Node
 * gives it, or HTTP/2's `:authority` (RFC 9113 section 8.3.1). Never `X-Forwarded-Host` or
 * `Forwarded: host=`, which a client writes as it likes (Fastify's `request.host` follows them
 * under its `trustProxy`), and the content served is the Host's. undefined when there is none, or
 * when the request names two: Host lines beyond the first (RFC 9112 section 3.2 makes that a bad
 * request; Node keeps the first, a server in front of us may keep another) or a Host that is not
 * its `:authority`.
 */
export function requestHost(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): string | undefined {
  const host = headers.host
  const authority = headers[':authority']
  let lines = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 4 && name.toLowerCase() === 'host') lines++
  }
  if (lines > 1) return undefined
  if (typeof authority !== 'string') return host
  return host === undefined || host.toLowerCase() === authority.toLowerCase() ? authority : undefined
}

const isHex = (code: number): boolean =>
  (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66)

/** 1 for the octets a path segment holds plainly (RFC 3986 section 3.3: unreserved, sub-delims, ":", "@"); "/" too. */
const PLAIN_OCTET = new Uint8Array(128)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") {
  PLAIN_OCTET[c.charCodeAt(0)] = 1
}

/** Already canonical: only plain octets, no dot segment, no empty segment. */
const PLAIN = /^(?!.*(?:\/\.\.?(?:\/|$)|\/\/))[\w\-.~!$&'()*+,;=:@/]*$/

/**
 * Wildcards while a pattern is made canonical: private-use characters, opaque to the canonical
 * form. A request path never holds one (they are outside visible ASCII, so refused).
 */
const STAR_MARK = '\uE000'
const ONE_MARK = '\uE001'

/** Why a path or pattern has no canonical form. */
export type Refusal =
  | 'backslash'
  | 'not-visible-ascii'
  | 'dot-segment-after-star'
  | 'dot-segment-after-empty'
  | 'dot-segment-after-encoded-slash'

/**
 * The canonical form described above, of a path (which starts with "/") or of a pattern with its
 * wildcards marked (which may start with one). The one function both sides are compared through.
 */
function canonicalForm(path: string, marks: boolean): string | { refused: Refusal } {
  let decoded = ''
  let encodedSlash = false
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code === 0x25 /* % */ && isHex(path.charCodeAt(i + 1)) && isHex(path.charCodeAt(i + 2))) {
      const octet = parseInt(path.slice(i + 1, i + 3), 16)
      if (octet === 0x5c) return { refused: 'backslash' }
      if (octet === 0x2f) encodedSlash = true
      decoded += PLAIN_OCTET[octet] === 1 ? String.fromCharCode(octet) : `%${path.slice(i + 1, i + 3).toUpperCase()}`
      i += 2
    } else if (code === 0x25) {
      // A stray "%" is a literal percent sign: written %25, so that a decoded neighbour cannot
      // turn it into an escape (`%%41` is `%25A`, not `%A`).
      decoded += '%25'
    } else if (PLAIN_OCTET[code] === 1) {
      decoded += path[i]
    } else if (code === 0x5c) {
      return { refused: 'backslash' }
    } else if (code > 0x20 && code < 0x7f) {
      // `"`, `<`, `[`, `^`, `{`, `|` and the like: the same octet as their %XX to every server.
      decoded += `%${code.toString(16).toUpperCase()}`
    } else if (marks && (path[i] === STAR_MARK || path[i] === ONE_MARK)) {
      decoded += path[i]
    } else {
      return { refused: 'not-visible-ascii' }
    }
  }
  // What precedes the first "/" stays first: nothing for a path, a leading wildcard for a pattern.
  // Empty segments are kept until the end, as the WHATWG parser keeps them: `..` after one removes
  // it there (`/secret//../x` reaches the origin as `/secret/x`) but removes `secret` in the file
  // server (path.normalize skips empty segments), so that is refused.
  const segments = decoded.split('/')
  const kept = [segments[0] as string]
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string
    const last = i === segments.length - 1
    if (segment === '..') {
      // The router and file server read %2F as "/" before `..` removes a segment; the proxy's URL
      // parser keeps it inside one (`/a%2Fb/..` is `/a/` to the one, `/` to the other).
      if (encodedSlash) return { refused: 'dot-segment-after-encoded-slash' }
      // At the root it removes nothing (and may not remove a pattern's leading wildcard).
      const removed = kept.length > 1 ? (kept.pop() as string) : null
      if (removed === '') return { refused: 'dot-segment-after-empty' }
      // A star may span segments: which one `..` would remove is not said.
      if ((removed ?? (kept[0] as string)).includes(STAR_MARK)) return { refused: 'dot-segment-after-star' }
    }
    // A dot segment at the end leaves the path ending in "/", as RFC 3986 section 5.2.4 does.
    if (segment !== '.' && segment !== '..') kept.push(segment)
    else if (last) kept.push('')
  }
  // Runs of "/" are one: the empty segments go, but for a last one (the path ends in "/").
  let output = kept[0] as string
  for (let i = 1; i < kept.length; i++) if (kept[i] !== '' || i === kept.length - 1) output += `/${kept[i] as string}`
  return output
}

/** The request's path (no query, no fragment) made canonical, or null for a refused target. */
export function canonicalPath(url: string, hostHeader: string | undefined): string | null {
  const end = url.search(/[?#]/)
  let path = end < 0 ? url : url.slice(0, end)
  if (path.charCodeAt(0) !== 0x2f) {
    const absolute = /^https?:\/\/([^/]*)(.*)$/i.exec(path)
    if (absolute === null) return null
    const authority = absolute[1] as string
    if (authority.includes('@') || hostHeader === undefined) return null
    const host = normalizeHost(authority)
    if (host === null || host !== normalizeHost(hostHeader)) return null
    path = absolute[2] || '/'
  }
  const canonical = PLAIN.test(path) ? path : canonicalForm(path, false)
  return typeof canonical === 'string' && canonical.length <= MAX_PATH_LENGTH ? canonical : null
}

const REFUSALS: Record<Refusal, string> = {
  backslash:
    'has a backslash ("\\" or %5C), which no URI path holds (RFC 3986 section 3.3): requests with one are refused, the proxy reading it as "/" and the file server as a character',
  'not-visible-ascii': 'has a character outside visible ASCII',
  'dot-segment-after-star':
    'has a ".." segment after a segment with "*": which part of the path it would remove is not said, so it has no canonical form',
  'dot-segment-after-empty':
    'has a ".." segment after an empty one ("//.."), which the proxy and the file server resolve differently',
  'dot-segment-after-encoded-slash':
    'has a ".." segment and an encoded slash (%2F), which the proxy and the file server resolve differently',
}

/**
 * A pattern (RFC 8006 section 4.1.5) in the canonical form of the paths it is compared with, or
 * why it has none. Literal characters go through canonicalForm, the wildcards untouched: `%7E` is
 * `~`, `%c3%a9` is `%C3%A9`, `/a//b/./c` is `/a/b/c`. A literal `?` is `%3F` (in a path it can
 * only be encoded), and a character outside visible ASCII is its UTF-8 octets percent-encoded
 * (RFC 3987 section 3.1: `é` is `%C3%A9`). Escapes are written back as `$$`, `$*`.
 */
export function canonicalPattern(pattern: string): { ok: true; pattern: string } | { ok: false; message: string } {
  let marked = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string
    const code = pattern.codePointAt(i) as number
    if (c === '$') {
      const literal = pattern[++i]
      marked += literal === '?' ? '%3F' : literal
    } else if (c === '*') {
      marked += STAR_MARK
    } else if (c === '?') {
      marked += ONE_MARK
    } else if (c === '#') {
      marked += '%23'
    } else if (code > 0x20 && code < 0x7f) {
      marked += c
    } else if (code >= 0xd800 && code <= 0xdfff) {
      return { ok: false, message: `"${pattern}" is not well-formed Unicode (a lone surrogate at ${i})` }
    } else {
      const character = String.fromCodePoint(code)
      marked += encodeURIComponent(character)
      i += character.length - 1
    }
  }
  const form = canonicalForm(marked, true)
  if (typeof form !== 'string') return { ok: false, message: `"${pattern}" ${REFUSALS[form.refused]}` }
  let written = ''
  for (const c of form) written += c === STAR_MARK ? '*' : c === ONE_MARK ? '?' : c === '$' || c === '*' ? `$${c}` : c
  return { ok: true, pattern: written }
}
