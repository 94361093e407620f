/**
 * The path a site's path patterns are matched against, read the way the router and the file
 * server behind the plugin read it. RFC 8006 matches patterns against the path as sent, but a
 * pattern only protects content if it sees the path that content is served under: Fastify's
 * router strips an absolute-form target to its path and percent-decodes, and @fastify/static
 * resolves dot segments and repeated slashes. Measured before this module, with `/secret/*`
 * denied: `/%73ecret/x`, `/./secret/x`, `/free/../secret/x`, `//secret/x`, `/secret%2Fx` and
 * `http://host/secret/x` were all served by a `/*` route.
 *
 * So the path is made canonical first (RFC 3986 section 6.2.2: percent-encoded unreserved
 * characters decoded, other encodings in upper case, a stray `%` written `%25`, dot segments
 * removed), and two readings the servers behind us make that RFC 3986 does not are applied too:
 * `%2F` is a `/`, and runs of `/` are one. Targets that are not a path under the request's host
 * are refused (null): the asterisk and authority forms, and an absolute form that names a scheme
 * other than http(s), carries user information, or names a host other than the Host header.
 */
import { normalizeHost } from './rfc8006.js'

const isHex = (code: number): boolean => (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66)

/** RFC 3986 unreserved: ALPHA, DIGIT, "-", ".", "_", "~". */
const isUnreserved = (code: number): boolean =>
  (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2e || code === 0x5f || code === 0x7e

/** Nothing to make canonical: no percent sign, no dot segment, no empty segment. */
const PLAIN = /^(?!.*(?:%|\/\.\.?(?:\/|$)|\/\/))/

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
  return PLAIN.test(path) ? path : normalize(path)
}

function normalize(path: string): string {
  // Percent-decoding first, so that `%2E%2E` is a dot segment and `%2F` a separator.
  let decoded = ''
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code === 0x25 && isHex(path.charCodeAt(i + 1)) && isHex(path.charCodeAt(i + 2))) {
      const octet = parseInt(path.slice(i + 1, i + 3), 16)
      decoded += isUnreserved(octet) || octet === 0x2f ? String.fromCharCode(octet) : `%${path.slice(i + 1, i + 3).toUpperCase()}`
      i += 2
    } else if (code === 0x25) {
      // A stray "%" is a literal percent sign: written %25, so that a decoded neighbour cannot
      // turn it into an escape (`%%41` is `%25A`, not `%A`).
      decoded += '%25'
    } else {
      decoded += path[i]
    }
  }
  const output: string[] = []
  const segments = decoded.split('/')
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string
    const last = i === segments.length - 1
    if (segment === '..') output.pop()
    if (segment === '.' || segment === '..' || (segment === '' && !last)) {
      // A dot segment at the end leaves the path ending in "/", as RFC 3986 section 5.2.4 does.
      if (last) output.push('')
      continue
    }
    output.push(segment)
  }
  return `/${output.join('/')}`
}
