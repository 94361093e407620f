import t from 'tap'
import fc from 'fast-check'
import Fastify from 'fastify'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import cdniAuthz from '../src/index.js'
import { canonicalPath, canonicalPattern } from '../src/policy/request-target.js'
import { compilePattern, matchPattern, MAX_PATH_LENGTH, patternError } from '../src/policy/path-pattern.js'

/** The generated cases are the same on every run (CI must not fail on a new draw); FUZZ_SEED picks others.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261205)

t.test('canonicalPath: the path the router and the file server read', async (t) => {
  const host = 'video.example.com'
  const cases: [string, string | null][] = [
    ['/movies/a.mp4', '/movies/a.mp4'],
    ['/movies/a.mp4?x=%2F..&y#frag', '/movies/a.mp4'],
    ['/%6Dovies/%41.mp4', '/movies/A.mp4'],
    ['/movies/%7e%2d%5F%2E', '/movies/~-_.'],
    ['/a%20b/%c3%a9', '/a%20b/%C3%A9'],
    ['/a%2fb', '/a/b'],
    ['/a%2Fb', '/a/b'],
    ['/a%25%2F', '/a%25/'],
    ['/a%zz%', '/a%25zz%25'],
    ['/%%41a', '/%25Aa'],
    ['/./a/./b/.', '/a/b/'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/../../a', '/a'],
    ['/a/%2e%2E/b', '/b'],
    ['/a/.b/..c/...', '/a/.b/..c/...'],
    ['//a///b//', '/a/b/'],
    ['/', '/'],
    ['http://video.example.com/a/b', '/a/b'],
    ['HTTPS://Video.Example.COM/a/../b', '/b'],
    ['http://video.example.com', '/'],
    ['http://video.example.com?q', '/'],
    ['http://video.example.com:80/a', null],
    ['http://other.example/a', null],
    ['http://user@video.example.com/a', null],
    ['ftp://video.example.com/a', null],
    ['video.example.com:443', null],
    ['*', null],
    ['', null],
  ]
  for (const [url, expected] of cases) t.equal(canonicalPath(url, host), expected, url)
  t.equal(
    canonicalPath('http://[2001:db8::1]:8080/a', '[2001:DB8:0::1]:8080'),
    '/a',
    'IPv6 literals compare in any spelling',
  )
  t.equal(canonicalPath('http://video.example.com/a', undefined), null, 'absolute form and no Host header')
  t.equal(canonicalPath('http://bad host/a', 'bad host'), null, 'an authority that is no host')
  t.equal(canonicalPath('/a', undefined), '/a', 'origin form needs no Host')
})

t.test('no spelling of a protected path reaches the content behind the plugin', async (t) => {
  const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
  const metadata = {
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [],
          paths: [
            {
              'path-pattern': { pattern: '/secret/*' },
              'path-metadata': { metadata: [acl('MI.LocationACL', { locations: [] })] },
            },
          ],
        },
      },
    ],
  }
  const app = Fastify()
  await app.register(cdniAuthz, { metadata })
  const served: string[] = []
  app.get('/*', async (request) => {
    served.push((request.params as Record<string, string>)['*'] as string)
    return 'content'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const get = (target: string, host = 'video.example.com') =>
    new Promise<number>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      )
      let data = ''
      socket.on('data', (chunk) => (data += String(chunk)))
      socket.on('end', () => resolve(Number(data.slice(9, 12))))
    })
  // Each of these reached the route as secret/x before (Fastify decodes, strips the absolute form).
  for (const target of [
    '/secret/x',
    '/%73ecret/x',
    '/./secret/x',
    '/free/../secret/x',
    '//secret/x',
    '/secret%2Fx',
    '/%2e%2e/secret/x',
    'http://video.example.com/secret/x',
    '/SECRET/x',
  ]) {
    t.equal(await get(target), 403, target)
  }
  t.equal(await get('http://other.example/free/x'), 403, 'an absolute form naming another host')
  t.equal(await get('*'), 403, 'the asterisk form')
  t.equal(await get('/free/x'), 200)
  t.equal(await get('http://video.example.com/free/x'), 200, 'an absolute form naming this host is read as its path')
  t.same(served, ['free/x', 'free/x'], 'only the allowed requests reached the route')
  t.match(app.cdniAuthz.counts.denied, { 'no-rule-matched': 9, 'bad-request-target': 2 })
})

t.test('canonicalPath on any string: no throw, and a path with nothing left to make canonical', async (t) => {
  const piece = fc.constantFrom(
    '/',
    '.',
    '..',
    '%',
    '%2e',
    '%2F',
    '%2f',
    '%41',
    '%zz',
    'a',
    'B',
    '?',
    '#',
    '//',
    'http://',
    'h',
    ':',
    '@',
    '*',
    '~',
    '%25',
  )
  let paths = 0
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.array(piece, { maxLength: 12 }).map((parts) => parts.join('')),
        fc.array(piece, { maxLength: 12 }).map((parts) => `/${parts.join('')}`),
      ),
      (url) => {
        const path = canonicalPath(url, 'h')
        if (path === null) return true
        paths++
        // Canonical means a fixed point: made canonical again, it does not change.
        return (
          path.startsWith('/') && !/\/\.\.?(\/|$)|\/\/|%2F|%2f|[?#]/.test(path) && canonicalPath(path, 'h') === path
        )
      },
    ),
    { numRuns: 5000, seed: SEED },
  )
  t.ok(paths > 1000, `most inputs gave a path (${paths})`)
})

t.test(
  'canonicalPath: one spelling per octet; what the servers behind would read differently is refused',
  async (t) => {
    const cases: [string, string | null][] = [
      ['/%7Ealice/a.txt', '/~alice/a.txt'],
      ['/a%3Ab%40c%21%24%26%27%28%29%2A%2B%2C%3B%3D', "/a:b@c!$&'()*+,;="],
      ['/a"b<c>d[e]f^g`h{i|j}k', '/a%22b%3Cc%3Ed%5Be%5Df%5Eg%60h%7Bi%7Cj%7Dk'],
      ['/a%22b%3c%7C', '/a%22b%3C%7C'],
      ['/a%3Fb%23c%25d', '/a%3Fb%23c%25d'],
      ['/secret\\x.txt', null],
      ['/secret%5Cx.txt', null],
      ['/secret%5cx.txt', null],
      ['/sec\tret/x', null],
      ['/a\nb', null],
      ['/a b', null],
      ['/a\x7fb', null],
      ['/caf\xc3\xa9/x', null],
      ['/café/x', null],
      ['/a\uE000', null],
      ['/' + 'a'.repeat(MAX_PATH_LENGTH - 1), '/' + 'a'.repeat(MAX_PATH_LENGTH - 1)],
      ['/' + 'a'.repeat(MAX_PATH_LENGTH), null],
      ['/' + '%61'.repeat(MAX_PATH_LENGTH - 1), '/' + 'a'.repeat(MAX_PATH_LENGTH - 1)],
      ['/' + '"'.repeat(2730), '/' + '%22'.repeat(2730)],
      ['/' + '"'.repeat(2731), null],
      ['/secret//../x', null],
      ['/secret%2F/../x', null],
      ['/secret/%2F../x', null],
      ['/a//./../b', null],
      ['/a//b/../c', '/a/c'],
    ]
    for (const [url, expected] of cases) {
      t.equal(
        canonicalPath(url, 'h'),
        expected,
        JSON.stringify(url.length > 40 ? `${url.slice(0, 20)}… (${url.length})` : url),
      )
    }
  },
)

t.test('canonicalPattern: the same form, wildcards untouched, escapes written back', async (t) => {
  const cases: [string, string][] = [
    ['/%7Ealice/*', '/~alice/*'],
    ['/caf%c3%a9/*', '/caf%C3%A9/*'],
    ['/café/*', '/caf%C3%A9/*'],
    ['/a b/😀', '/a%20b/%F0%9F%98%80'],
    ['/price$$/a$*b$?', '/price$$/a$*b%3F'],
    ['/a%24%2a%3f/*', '/a$$$*%3F/*'],
    ['/a#b', '/a%23b'],
    ['/a//b/./c/../d', '/a/b/d'],
    ['/a/%2e%2E/b', '/b'],
    ['/a%2Fb*', '/a/b*'],
    ['*.m3u8', '*.m3u8'],
    ['*/v?/../x', '*/x'],
    ['/a/?/../x', '/a/x'],
    ['/%*', '/%25*'],
    ['/%4?', '/%254?'],
    ['/a"b|*', '/a%22b%7C*'],
    ['', ''],
  ]
  for (const [pattern, expected] of cases) t.same(canonicalPattern(pattern), { ok: true, pattern: expected }, pattern)
  t.match(canonicalPattern('/secret\\*'), { ok: false, message: /backslash/ })
  t.match(canonicalPattern('/secret%5c*'), { ok: false, message: /backslash/ })
  t.match(canonicalPattern('/a*/../b'), { ok: false, message: /"\.\." segment after a segment with "\*"/ })
  t.match(canonicalPattern('*/../b'), { ok: false, message: /"\.\." segment after/ })
  t.match(canonicalPattern('/a//../b'), { ok: false, message: /after an empty one/ })
  t.match(canonicalPattern('/a\uD800b'), { ok: false, message: /lone surrogate at 2/ })
  t.match(canonicalPattern('/a\uDC00b'), { ok: false, message: /lone surrogate/ })
})

// Octets of a resource's path, each with the spellings a client may use for it.
const OCTETS = [
  'a',
  'Z',
  '0',
  '-',
  '.',
  '_',
  '~',
  '!',
  '$',
  '&',
  "'",
  '(',
  ')',
  '*',
  '+',
  ',',
  ';',
  '=',
  ':',
  '@',
  '"',
  '<',
  '[',
  '^',
  '`',
  '{',
  '|',
  '%',
  '?',
  '#',
  ' ',
  '\x7f',
  'é',
]
const hex = (octet: number, lower: boolean) =>
  `%${octet.toString(16).padStart(2, '0')[lower ? 'toLowerCase' : 'toUpperCase']()}`
const plainInPath = /^[\w\-.~!$&'()*+,;=:@]$/
/** The canonical spelling of a segment of octets. */
const canonicalSegment = (octets: string[]) =>
  octets.map((o) => (plainInPath.test(o) ? o : [...Buffer.from(o)].map((b) => hex(b, false)).join(''))).join('')
/** A random spelling of one octet in a request target, as generated choices say. */
const spellOctet = (o: string, encode: boolean, lower: boolean) => {
  const mustEncode = !/^[\x21-\x7e]$/.test(o) || o === '%' || o === '?' || o === '#'
  return encode || mustEncode ? [...Buffer.from(o)].map((b) => hex(b, lower)).join('') : o
}
const segmentArb = fc
  .array(fc.constantFrom(...OCTETS), { minLength: 1, maxLength: 5 })
  .filter((octets) => octets.join('') !== '.' && octets.join('') !== '..')
const spellingArb = fc.array(
  fc.tuple(
    segmentArb,
    fc.array(fc.tuple(fc.boolean(), fc.boolean()), { minLength: 5, maxLength: 5 }),
    fc.constantFrom('/', '/', '%2F', '%2f', '//', '/./', '/x/../', '/%2e/', '/x/%2E%2e/'),
  ),
  { minLength: 1, maxLength: 5 },
)

/** Whether a spelling puts an encoded slash and a `..` segment in one path: the proxy and the
 * router resolve those differently, so such a target is refused. */
const mixesEncodedSlashAndDotSegment = (segments: [unknown, unknown, string][]) =>
  segments.some(([, , slash], i) => i > 0 && slash.toLowerCase() === '%2f') &&
  segments.some(([, , slash], i) => i > 0 && /\/x\/(\.\.|%2e%2e)\//i.test(slash))

t.test('every spelling of a resource is one canonical path (generated)', async (t) => {
  fc.assert(
    fc.property(spellingArb, fc.boolean(), (segments, trailing) => {
      const canonical = segments.map(([octets]) => `/${canonicalSegment(octets)}`).join('') + (trailing ? '/' : '')
      const spelled =
        segments
          .map(
            ([octets, choices, slash], i) =>
              (i === 0 ? '/' : slash) +
              octets
                .map((o, j) =>
                  spellOctet(o, (choices[j] as [boolean, boolean])[0], (choices[j] as [boolean, boolean])[1]),
                )
                .join(''),
          )
          .join('') + (trailing ? '/' : '')
      if (mixesEncodedSlashAndDotSegment(segments)) return canonicalPath(spelled, 'h') === null
      return canonicalPath(spelled, 'h') === canonical && canonicalPath(canonical, 'h') === canonical
    }),
    { numRuns: 3000, seed: SEED },
  )
  t.pass('3,000 generated spellings')
})

t.test('a pattern spelled any way matches every spelling of the resource it names (generated)', async (t) => {
  /** A pattern's literal spelling of an octet: $-escaped wildcards, or percent-encoded, or (non-ASCII)
   * as the character. */
  const patternOctet = (o: string, encode: boolean, lower: boolean) => {
    // A "%" is written %25 in a pattern as in a path: before hex digits it would be an escape.
    if (encode || o === '%') return [...Buffer.from(o)].map((b) => hex(b, lower)).join('')
    if (o === '$' || o === '*' || o === '?') return `$${o}`
    return o
  }
  type Spelling = [string[], [boolean, boolean][], string][]
  const spell = (segments: Spelling, octet: (o: string, encode: boolean, lower: boolean) => string) =>
    segments
      .map(
        ([octets, choices, slash], i) =>
          (i === 0 ? '/' : slash) + octets.map((o, j) => octet(o, ...(choices[j] as [boolean, boolean]))).join(''),
      )
      .join('')
  fc.assert(
    fc.property(
      spellingArb,
      spellingArb,
      spellingArb,
      fc.boolean(),
      fc.boolean(),
      (resource, respelled, below, wildcard, sensitive) => {
        // The request names the same resource with other choices (and, under "/*", goes below it).
        const again: Spelling = resource.map(([octets], i) => [
          octets,
          (respelled[i] ?? (resource[i] as Spelling[number]))[1],
          (respelled[i] ?? (resource[i] as Spelling[number]))[2],
        ])
        const pattern = canonicalPattern(spell(resource, patternOctet) + (wildcard ? '/*' : ''))
        const path = canonicalPath(spell(again, spellOctet) + (wildcard ? spell(below, spellOctet) : ''), 'h')
        // Spellings that put an encoded slash and a `..` in one path have no canonical form.
        const requested: Spelling = wildcard
          ? [...again, ...below.map(([o, c, slash], i): Spelling[number] => [o, c, i === 0 ? '/' : slash])]
          : again
        const patternRefused = mixesEncodedSlashAndDotSegment(resource)
        const pathRefused = mixesEncodedSlashAndDotSegment(requested)
        if (patternRefused || pathRefused) return pattern.ok === !patternRefused && (path === null) === pathRefused
        return pattern.ok && path !== null && matchPattern(compilePattern(pattern.pattern, sensitive), path)
      },
    ),
    { numRuns: 3000, seed: SEED },
  )
  // The loader checks escapes (patternError) first; what it then makes canonical stays as it is.
  const piece = fc.constantFrom(
    '/',
    '//',
    '.',
    '..',
    '%',
    '%2e',
    '%2F',
    '%5c',
    '*',
    '?',
    '$$',
    '$*',
    '$?',
    '#',
    'a',
    'B',
    '%41',
    '%c3',
    'é',
    ' ',
    '"',
  )
  const anyPattern = fc.oneof(
    fc.string({ maxLength: 30, unit: 'binary' }),
    fc.array(piece, { maxLength: 12 }).map((parts) => parts.join('')),
  )
  let canonical = 0
  fc.assert(
    fc.property(
      anyPattern.filter((pattern) => patternError(pattern) === null),
      (pattern) => {
        const once = canonicalPattern(pattern)
        if (once.ok) canonical++
        return (
          !once.ok ||
          (patternError(once.pattern) === null &&
            JSON.stringify(canonicalPattern(once.pattern)) === JSON.stringify(once))
        )
      },
    ),
    { numRuns: 3000, seed: SEED },
  )
  t.ok(canonical > 1500, `most had a canonical form (${canonical})`)
  t.pass('3,000 generated patterns and requests; 3,000 patterns canonical twice')
})

t.test('what the proxy sends the origin is the path the patterns saw (generated, WHATWG URL)', async (t) => {
  // @fastify/http-proxy hands the target to new URL() (by way of @fastify/reply-from): whatever
  // it accepted, made canonical again, must be what canonicalPath made of the target.
  const piece = fc.constantFrom(
    '/',
    '/',
    'a',
    'B',
    '.',
    '..',
    '%2e',
    '%2E',
    '%2f',
    '%5C',
    '%5c',
    '\\',
    '\t',
    '\n',
    '%09',
    '%',
    '%41',
    '%7e',
    '"',
    '|',
    '^',
    '[',
    '#',
    '?',
    '//',
    ' ',
    'é',
    '\x7f',
    '%00',
    ';',
    '@',
    ':',
  )
  let accepted = 0
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 14 }), (parts) => {
      const target = `/${parts.join('')}`
      const ours = canonicalPath(target, 'h')
      if (ours === null) return true
      accepted++
      const source = target.split('?')[0] as string
      const sent = new URL(source.startsWith('//') ? `.${source}` : source, 'http://origin.example/').pathname
      return canonicalPath(sent, 'h') === ours
    }),
    { numRuns: 5000, seed: SEED },
  )
  t.ok(accepted > 1000, `targets accepted and compared (${accepted})`)
  t.equal(
    new URL('/secret\\x.txt', 'http://o/').pathname,
    '/secret/x.txt',
    'why a backslash is refused: the proxy reads it as "/"',
  )
  t.equal(canonicalPath('/secret\\x.txt', 'h'), null)
})
