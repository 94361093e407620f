import t from 'tap'
import { formatAddress } from '../src/facts/address.js'
import { compileTrust, extractClientFacts, gatewayName, type TrustOptions } from '../src/facts/trust-walk.js'
import { createClientFacts, factNames } from '../src/facts/facts.js'
import { PROTOCOL_HTTP, PROTOCOL_HTTPS } from '../src/facts/facts.js'

const trustOptions: TrustOptions = {
  trustedProxies: ['192.0.2.0/29', '2001:db8:ff::/48'],
  gateways: [
    { name: 'op-a', cidrs: ['203.0.113.0/28', '2001:db8:a::/48'], countryCode: '86' },
    {
      name: 'op-b',
      cidrs: ['198.51.100.128/25'],
      countryCode: '44',
      msisdnHeaders: ['X-MSISDN', 'x-up-calling-line-id'],
    },
  ],
}
const trust = compileTrust(trustOptions)

interface Seen {
  source: string | null
  handset: string | null
  msisdn: string | null
  gateway: string | null
  protocol: number
  /** Facts there but not to be believed. */
  unknowable: string[]
}

/** Header lines as Node's rawHeaders holds them; an array value is that many lines. */
function raw(headers: Record<string, string | string[]>): string[] {
  return Object.entries(headers).flatMap(([name, value]) =>
    Array.isArray(value) ? value.flatMap((v) => [name, v]) : [name, value],
  )
}

function walk(
  peer: string | undefined,
  headers: Record<string, string | string[]>,
  encrypted = false,
  options = trust,
): Seen {
  const facts = createClientFacts()
  extractClientFacts(options, peer, encrypted, raw(headers), 0, facts)
  return {
    source: facts.sourceFamily === 0 ? null : formatAddress(facts.sourceFamily, facts.source),
    handset: facts.handsetFamily === 0 ? null : formatAddress(facts.handsetFamily, facts.handset),
    msisdn: facts.msisdn?.international ?? null,
    gateway: gatewayName(options, facts.gateway),
    protocol: facts.protocol,
    unknowable: factNames(facts.unknowable),
  }
}

const MSISDN = { 'x-up-calling-line-id': '8613503812345' }

t.test('the example rows of the trust rules, one by one', async (t) => {
  t.match(
    walk('198.51.100.7', { 'x-forwarded-for': '10.1.2.3', ...MSISDN }),
    { source: '198.51.100.7', handset: null, msisdn: null, gateway: null },
    'untrusted peer: its headers are not believed',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '10.1.2.3', ...MSISDN }),
    { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345', gateway: 'op-a' },
    'gateway peer',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '6.6.6.6, 10.1.2.3', ...MSISDN }),
    { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345' },
    'client-written entries left of the handset decide nothing',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '6.6.6.6, 10.1.2.3, 203.0.113.10', ...MSISDN }),
    { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345', gateway: 'op-a' },
    'our proxy in front of the gateway',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '0177.0.0.1', ...MSISDN }),
    { source: '203.0.113.10', handset: null, msisdn: '8613503812345', unknowable: ['handset'] },
    'octal handset entry: unknowable',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '10.1.2.3:5678', ...MSISDN }),
    { source: '203.0.113.10', handset: null, msisdn: '8613503812345', unknowable: ['handset'] },
    'handset entry with a port: unknowable',
  )
})

t.test('the walk through our own proxies fails closed', async (t) => {
  t.match(walk('192.0.2.5', {}), { source: null, unknowable: ['source'] }, 'a proxy without X-Forwarded-For: no source')
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '192.0.2.6, 192.0.2.7' }),
    { source: null, unknowable: ['source'] },
    'every entry trusted: no source',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '10.1.2.3, unknown' }),
    { source: null, unknowable: ['source'] },
    'an unparsable entry reached: no source',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '6.6.6.6, 198.51.100.9, 192.0.2.6' }),
    { source: '198.51.100.9', handset: null, gateway: null },
    'skips trusted proxies, stops at the first other entry',
  )
  t.match(
    walk('2001:db8:ff::1', { 'x-forwarded-for': '2001:db8:a::5' }),
    { source: '2001:db8:a::5', gateway: 'op-a', handset: null, unknowable: ['protocol'] },
    'IPv6 proxy and gateway; nothing left of the gateway: the handset is absent',
  )
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '10.9.9.9, 203.0.113.1' }), {
    source: '203.0.113.1',
    handset: '10.9.9.9',
  })
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': ',203.0.113.1', 'x-forwarded-proto': 'http' }),
    { source: '203.0.113.1', handset: null, unknowable: [] },
    'an empty element left of the gateway: the handset is absent',
  )
})

t.test('caps bound what the walk reads, from the right; what lies beyond them is never read', async (t) => {
  const many = Array.from({ length: 40 }, (_, i) => `10.0.0.${i}`)
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': many.join(', ') }),
    { handset: '10.0.0.39', unknowable: [] },
    'the gateway needs one entry: 40 entries, the last one read',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': `${'6'.repeat(1100)}, 10.1.2.3` }),
    { handset: '10.1.2.3', unknowable: [] },
    'an entry of 1,100 characters further left is never read',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': ' '.repeat(1020) + '10.1.2.3' }),
    { handset: null, unknowable: ['handset'] },
    'the one entry needed goes on past 1,024 characters: unknowable',
  )
  const proxies = (n: number) => Array.from({ length: n }, (_, i) => `192.0.2.${i % 8}`)
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': ['10.1.2.3', ...proxies(15)].join(', '), 'x-forwarded-proto': 'http' }),
    { source: '10.1.2.3', unknowable: [] },
    'fifteen of our proxies and the source: 16 entries, within the default cap',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': ['10.1.2.3', ...proxies(16)].join(', '), 'x-forwarded-proto': 'http' }),
    { source: null, unknowable: ['source'] },
    'sixteen of our proxies: the source lies beyond the cap',
  )
  t.match(
    walk('192.0.2.5', {
      'x-forwarded-for': ['10.9.9.9', '203.0.113.1', ...proxies(14)].join(', '),
      'x-forwarded-proto': 'http',
    }),
    { source: '203.0.113.1', handset: '10.9.9.9', unknowable: [] },
    'the handset as the 16th entry',
  )
  t.match(
    walk('192.0.2.5', {
      'x-forwarded-for': ['10.9.9.9', '203.0.113.1', ...proxies(15)].join(', '),
      'x-forwarded-proto': 'http',
    }),
    { source: '203.0.113.1', handset: null, unknowable: ['handset'] },
    'the handset as the 17th entry: unknowable',
  )
  const tight = compileTrust({ ...trustOptions, maxForwardedEntries: 1, maxForwardedLength: 20 })
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '1.1.1.1, 10.1.2.3' }, false, tight),
    { handset: '10.1.2.3' },
    'a configured entry cap of one is enough behind a gateway',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '10.9.9.9, 203.0.113.1', 'x-forwarded-proto': 'http' }, false, tight),
    { source: '203.0.113.1', handset: null, unknowable: ['handset'] },
    'and one short behind a proxy and a gateway',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': `${'1'.repeat(30)},10.1.2.3` }, false, tight),
    { handset: '10.1.2.3' },
    'a configured character cap',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': ['6.6.6.6', '10.1.2.3'] }),
    { handset: '10.1.2.3' },
    'two X-Forwarded-For lines are one list, as Node joins them',
  )
})

t.test('list elements and header shapes', async (t) => {
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': ',, ,10.5.31.77,,' }),
    { handset: '10.5.31.77', unknowable: [] },
    'empty list elements are ignored (RFC 9110 section 5.6.1)',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '10.9.9.9 ,, 203.0.113.1 , ,', 'x-forwarded-proto': 'http' }),
    { source: '203.0.113.1', handset: '10.9.9.9' },
    'between every entry the walk reads',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '' }),
    { handset: null, unknowable: [] },
    'an empty header: the gateway appended nothing',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': ' , ' }),
    { handset: null, unknowable: [] },
    'only empty elements: nothing appended',
  )
  t.match(walk('203.0.113.10', { 'X-Forwarded-For': '10.1.2.3' }), { handset: '10.1.2.3' }, 'header names in any case')
  t.match(
    walk('203.0.113.10', { ['x-'.padEnd(300, 'a')]: 'x', 'x-forwarded-for': '10.1.2.3' }),
    { handset: '10.1.2.3' },
    'an overlong header name is skipped',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': ' \t10.1.2.3\t ' }),
    { handset: '10.1.2.3' },
    'spaces and tabs around an entry are HTTP whitespace',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '\u00a010.1.2.3' }),
    { handset: null, unknowable: ['handset'] },
    'a no-break space is not',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '[2001:db8::1]' }),
    { handset: null, unknowable: ['handset'] },
    'bracketed IPv6',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': 'fe80::1%eth0' }),
    { handset: null, unknowable: ['handset'] },
    'zone id',
  )
  t.match(
    walk('203.0.113.10', { 'x-forwarded-for': '::ffff:10.1.2.3' }),
    { handset: '10.1.2.3' },
    'IPv4-mapped handset unwrapped',
  )
  t.match(
    walk('::ffff:203.0.113.10', { 'x-forwarded-for': '10.1.2.3' }),
    { source: '203.0.113.10', gateway: 'op-a' },
    'IPv4-mapped peer unwrapped',
  )
  t.match(
    walk(undefined, MSISDN),
    { source: null, gateway: null, unknowable: ['source'] },
    'no peer address (closed socket)',
  )
  t.match(walk('not-an-ip', MSISDN), { source: null, unknowable: ['source'] }, 'garbage peer address')
  t.match(
    walk('198.51.100.7', {
      'x-forwarded-for': 'garbage',
      'x-forwarded-proto': 'x',
      x_up_calling_line_id: '1',
      ...MSISDN,
    }),
    { source: '198.51.100.7', unknowable: [] },
    'a direct client: nothing it sends is read, so nothing is unknowable',
  )
})

t.test('MSISDN headers: one instance of a configured header from a gateway, strictly parsed', async (t) => {
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '+8613503812345' }), { msisdn: '8613503812345' })
  const unknowable = { msisdn: null, unknowable: ['msisdn'] }
  t.match(walk('203.0.113.10', {}), { msisdn: null, unknowable: [] }, 'no header: the gateway sent no number, absent')
  t.match(
    walk('203.0.113.10', { 'x-up-calling-line-id': '8613503812345, 8613503899999' }),
    unknowable,
    'a repeated header (joined by Node)',
  )
  t.match(
    walk('203.0.113.10', { 'x-up-calling-line-id': ['8613503812345', '8613503812345'] }),
    unknowable,
    'two lines of the header, even equal ones',
  )
  t.match(
    walk('203.0.113.10', { 'X-Up-Calling-Line-Id': '8613503812345' }),
    { msisdn: '8613503812345', unknowable: [] },
    'the header name in any case',
  )
  for (const twin of [
    'X_Up_Calling_Line_Id',
    'x_up_calling_line_id',
    'x-up_calling-line-id',
    'X-UP-CALLING-LINE_ID',
    'x_up-calling-line-id',
  ]) {
    t.match(walk('203.0.113.10', { ...MSISDN, [twin]: '8613900000000' }), unknowable, `a twin beside it: ${twin}`)
    t.match(walk('203.0.113.10', { [twin]: '8613503812345' }), unknowable, `a twin alone: ${twin}`)
  }
  t.match(
    walk('203.0.113.10', { ...MSISDN, 'x-up-calling-line-ix': '1', 'x-up.calling-line-id': '1' }),
    { msisdn: '8613503812345' },
    'names that differ elsewhere are other headers',
  )
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '８６１３５０３８' }), unknowable, 'full-width digits')
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '8'.repeat(16) }), unknowable, 'over 15 digits')
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '' }), unknowable, 'an empty value')
  t.match(
    walk('203.0.113.10', { 'x-msisdn': '8613503812345' }),
    { msisdn: null, unknowable: [] },
    "another gateway's header name is not this gateway's",
  )
  t.match(
    walk('198.51.100.130', { 'x-msisdn': '447700900123' }),
    { msisdn: '447700900123', gateway: 'op-b' },
    'a second configured header name',
  )
  t.match(
    walk('198.51.100.130', { 'x-msisdn': '447700900123', 'x-up-calling-line-id': '447700900123' }),
    unknowable,
    'two configured headers at once: ambiguous',
  )
  t.match(
    walk('198.51.100.130', { 'x-msisdn': '447700900123', X_MSISDN: '447700900123' }),
    unknowable,
    "a twin of the gateway's second header",
  )
})

t.test('protocol from the socket, or X-Forwarded-Proto from a trusted proxy only', async (t) => {
  t.match(walk('198.51.100.7', {}), { protocol: PROTOCOL_HTTP })
  t.match(walk('198.51.100.7', {}, true), { protocol: PROTOCOL_HTTPS }, 'TLS on the socket')
  t.match(walk('198.51.100.7', { 'x-forwarded-proto': 'https' }), { protocol: PROTOCOL_HTTP }, 'ignored from a client')
  t.match(walk('203.0.113.10', { 'x-forwarded-proto': 'https' }), { protocol: PROTOCOL_HTTP }, 'ignored from a gateway')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' }), {
    protocol: PROTOCOL_HTTPS,
  })
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'HTTP' }), {
    protocol: PROTOCOL_HTTP,
  })
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https, http' }),
    { protocol: 0, unknowable: ['protocol'] },
    'a list: unknowable',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': ['https', 'https'] }),
    { protocol: 0, unknowable: ['protocol'] },
    'two lines: unknowable',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7' }, true),
    { protocol: 0, unknowable: ['protocol'] },
    'a proxy that does not say: unknowable',
  )
  t.match(
    walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https', x_forwarded_proto: 'http' }),
    { protocol: PROTOCOL_HTTPS, unknowable: [] },
    'a twin of X-Forwarded-Proto is another header',
  )
})

t.test('trust options are checked at start with errors naming the option', async (t) => {
  const cases: [TrustOptions, RegExp][] = [
    [{ trustedProxies: ['10.0.0.1/8'] }, /trustedProxies\[0\].*host bits set; write 10\.0\.0\.0\/8/],
    [{ trustedProxies: ['10.0.0.0/33'] }, /trustedProxies\[0\]/],
    [{ trustedProxies: [42 as unknown as string] }, /trustedProxies\[0\] must be a CIDR string/],
    [{ trustedProxies: '10.0.0.0/8' as unknown as string[] }, /trustedProxies must be an array/],
    [{ gateways: {} as unknown as [] }, /gateways must be an array/],
    [{ gateways: [null as unknown as never] }, /gateways\[0\] must be an object/],
    [{ gateways: [{ name: '', cidrs: ['1.0.0.0/8'], countryCode: '1' }] }, /gateways\[0\]\.name/],
    [{ gateways: [{ name: 'x', cidrs: [], countryCode: '1' }] }, /gateways\[0\]\.cidrs must be a non-empty array/],
    [{ gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '+86' }] }, /gateways\[0\]\.countryCode/],
    [
      { gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: [] }] },
      /msisdnHeaders must be a non-empty/,
    ],
    [
      { gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: ['bad header'] }] },
      /msisdnHeaders\[0\] must be an HTTP header name/,
    ],
    [
      { gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: ['x-msisdn', 'X_MSISDN'] }] },
      /msisdnHeaders\[1\]: "X_MSISDN" is the same header as msisdnHeaders\[0\]/,
    ],
    [
      { gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: ['x_forwarded_for'] }] },
      /msisdnHeaders\[0\]: "x_forwarded_for" is read for the client's address or protocol/,
    ],
    [
      { gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnNumbering: 'e164' as 'national' }] },
      /msisdnNumbering/,
    ],
    [
      { trustedProxies: ['10.0.0.0/8'], gateways: [{ name: 'x', cidrs: ['10.1.0.0/16'], countryCode: '86' }] },
      /gateways\[0\]\.cidrs\[0\].*overlaps trustedProxies\[0\]/,
    ],
    [
      {
        gateways: [
          { name: 'x', cidrs: ['2001:db8::/32'], countryCode: '86' },
          { name: 'y', cidrs: ['1.0.0.0/8', '2001:db8:1::/48'], countryCode: '86' },
        ],
      },
      /gateways\[1\]\.cidrs\[1\].*overlaps gateways\[0\]\.cidrs\[0\]/,
    ],
    [{ maxForwardedEntries: 0 }, /maxForwardedEntries must be a positive integer/],
    [{ maxForwardedLength: 1.5 }, /maxForwardedLength must be a positive integer/],
  ]
  for (const [options, message] of cases) {
    t.throws(() => compileTrust(options), { code: 'FST_CDNI_INVALID_OPTION', message }, String(message))
  }
  t.doesNotThrow(
    () =>
      compileTrust({
        trustedProxies: ['10.0.0.0/8'],
        gateways: [{ name: 'x', cidrs: ['2001:db8::/32'], countryCode: '86' }],
      }),
    'different families never overlap',
  )
})
