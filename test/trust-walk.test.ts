import t from 'tap'
import { formatAddress } from '../src/address.js'
import { compileTrust, createClientFacts, extractClientFacts, gatewayName, type TrustOptions } from '../src/client-facts.js'
import { PROTOCOL_HTTP, PROTOCOL_HTTPS } from '../src/compile.js'

const trustOptions: TrustOptions = {
  trustedProxies: ['192.0.2.0/29', '2001:db8:ff::/48'],
  gateways: [
    { name: 'op-a', cidrs: ['203.0.113.0/28', '2001:db8:a::/48'], countryCode: '86' },
    { name: 'op-b', cidrs: ['198.51.100.128/25'], countryCode: '44', msisdnHeaders: ['X-MSISDN', 'x-up-calling-line-id'] },
  ],
}
const trust = compileTrust(trustOptions)

interface Seen {
  source: string | null
  handset: string | null
  msisdn: string | null
  gateway: string | null
  protocol: number
}

/** Header lines as Node's rawHeaders holds them; an array value is that many lines. */
function raw(headers: Record<string, string | string[]>): string[] {
  return Object.entries(headers).flatMap(([name, value]) => (Array.isArray(value) ? value.flatMap((v) => [name, v]) : [name, value]))
}

function walk(peer: string | undefined, headers: Record<string, string | string[]>, encrypted = false, options = trust): Seen {
  const facts = createClientFacts()
  extractClientFacts(options, peer, encrypted, raw(headers), 0, facts)
  return {
    source: facts.sourceFamily === 0 ? null : formatAddress(facts.sourceFamily, facts.source),
    handset: facts.handsetFamily === 0 ? null : formatAddress(facts.handsetFamily, facts.handset),
    msisdn: facts.msisdn?.international ?? null,
    gateway: gatewayName(options, facts.gateway),
    protocol: facts.protocol,
  }
}

const MSISDN = { 'x-up-calling-line-id': '8613503812345' }

t.test("TRUST.md's example table, row by row", async (t) => {
  t.match(walk('198.51.100.7', { 'x-forwarded-for': '10.1.2.3', ...MSISDN }), { source: '198.51.100.7', handset: null, msisdn: null, gateway: null }, 'untrusted peer: its headers are not believed')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '10.1.2.3', ...MSISDN }), { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345', gateway: 'op-a' }, 'gateway peer')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '6.6.6.6, 10.1.2.3', ...MSISDN }), { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345' }, 'client-written entries left of the handset decide nothing')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '6.6.6.6, 10.1.2.3, 203.0.113.10', ...MSISDN }), { source: '203.0.113.10', handset: '10.1.2.3', msisdn: '8613503812345', gateway: 'op-a' }, 'our proxy in front of the gateway')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '0177.0.0.1', ...MSISDN }), { source: '203.0.113.10', handset: null, msisdn: '8613503812345' }, 'octal handset entry: no handset')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '10.1.2.3:5678', ...MSISDN }), { source: '203.0.113.10', handset: null, msisdn: '8613503812345' }, 'handset entry with a port: no handset')
})

t.test('the walk through our own proxies fails closed', async (t) => {
  t.match(walk('192.0.2.5', {}), { source: null }, 'a proxy without X-Forwarded-For: no source')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '192.0.2.6, 192.0.2.7' }), { source: null }, 'every entry trusted: no source')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '10.1.2.3, unknown' }), { source: null }, 'an unparsable entry reached: no source')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '6.6.6.6, 198.51.100.9, 192.0.2.6' }), { source: '198.51.100.9', handset: null, gateway: null }, 'skips trusted proxies, stops at the first other entry')
  t.match(walk('2001:db8:ff::1', { 'x-forwarded-for': '2001:db8:a::5' }), { source: '2001:db8:a::5', gateway: 'op-a', handset: null }, 'IPv6 proxy and gateway; nothing left of the gateway: no handset')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '10.9.9.9, 203.0.113.1' }), { source: '203.0.113.1', handset: '10.9.9.9' })
  t.match(walk('192.0.2.5', { 'x-forwarded-for': ',203.0.113.1' }), { source: '203.0.113.1', handset: null }, 'an empty entry left of the gateway is no handset')
})

t.test('caps and header shapes: over the cap or not a single string, no fact', async (t) => {
  const many = Array.from({ length: 16 }, (_, i) => `10.0.0.${i}`)
  t.match(walk('203.0.113.10', { 'x-forwarded-for': many.join(', ') }), { handset: '10.0.0.15' }, '16 entries is within the default cap')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': ['10.0.0.1', ...many].join(', ') }), { handset: null }, '17 entries is over it')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': ' '.repeat(1020) + '10.1.2.3' }), { handset: null }, 'over 1024 characters')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': ['6.6.6.6', '10.1.2.3'] }), { handset: '10.1.2.3' }, 'two X-Forwarded-For lines are one list, as Node joins them')
  t.match(walk('203.0.113.10', { 'X-Forwarded-For': '10.1.2.3' }), { handset: '10.1.2.3' }, 'header names in any case')
  t.match(walk('203.0.113.10', { ['x-'.padEnd(300, 'a')]: 'x', 'x-forwarded-for': '10.1.2.3' }), { handset: '10.1.2.3' }, 'an overlong header name is skipped')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '' }), { handset: null }, 'an empty header')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': ' \t10.1.2.3\t ' }), { handset: '10.1.2.3' }, 'spaces and tabs around an entry are HTTP whitespace')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '\u00a010.1.2.3' }), { handset: null }, 'a no-break space is not')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '[2001:db8::1]' }), { handset: null }, 'bracketed IPv6')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': 'fe80::1%eth0' }), { handset: null }, 'zone id')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '::ffff:10.1.2.3' }), { handset: '10.1.2.3' }, 'IPv4-mapped handset unwrapped')
  t.match(walk('::ffff:203.0.113.10', { 'x-forwarded-for': '10.1.2.3' }), { source: '203.0.113.10', gateway: 'op-a' }, 'IPv4-mapped peer unwrapped')
  t.match(walk(undefined, MSISDN), { source: null, gateway: null }, 'no peer address (closed socket)')
  t.match(walk('not-an-ip', MSISDN), { source: null }, 'garbage peer address')
  const tight = compileTrust({ ...trustOptions, maxForwardedEntries: 1, maxForwardedLength: 20 })
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '1.1.1.1, 10.1.2.3' }, false, tight), { handset: null }, 'a configured entry cap')
  t.match(walk('203.0.113.10', { 'x-forwarded-for': '10.1.2.3' }, false, tight), { handset: '10.1.2.3' })
})

t.test('MSISDN headers: one instance of a configured header from a gateway, strictly parsed', async (t) => {
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '+8613503812345' }), { msisdn: '8613503812345' })
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '8613503812345, 8613503899999' }), { msisdn: null }, 'a repeated header (joined by Node)')
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': ['8613503812345', '8613503812345'] }), { msisdn: null }, 'two lines of the header, even equal ones')
  t.match(walk('203.0.113.10', { 'X-Up-Calling-Line-Id': '8613503812345' }), { msisdn: '8613503812345' }, 'the header name in any case')
  t.match(walk('203.0.113.10', { ...MSISDN, 'X_Up_Calling_Line_Id': '8613900000000' }), { msisdn: null }, 'an underscore variant in any case')
  t.match(walk('203.0.113.10', { ...MSISDN, x_up_calling_line_id: '8613900000000' }), { msisdn: null }, 'an underscore variant is present')
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '８６１３５０３８' }), { msisdn: null }, 'full-width digits')
  t.match(walk('203.0.113.10', { 'x-up-calling-line-id': '8'.repeat(16) }), { msisdn: null }, 'over 15 digits')
  t.match(walk('203.0.113.10', { 'x-msisdn': '8613503812345' }), { msisdn: null }, "another gateway's header name is not this gateway's")
  t.match(walk('198.51.100.130', { 'x-msisdn': '447700900123' }), { msisdn: '447700900123', gateway: 'op-b' }, 'a second configured header name')
  t.match(walk('198.51.100.130', { 'x-msisdn': '447700900123', 'x-up-calling-line-id': '447700900123' }), { msisdn: null }, 'two configured headers at once: ambiguous')
})

t.test('protocol from the socket, or X-Forwarded-Proto from a trusted proxy only', async (t) => {
  t.match(walk('198.51.100.7', {}), { protocol: PROTOCOL_HTTP })
  t.match(walk('198.51.100.7', {}, true), { protocol: PROTOCOL_HTTPS }, 'TLS on the socket')
  t.match(walk('198.51.100.7', { 'x-forwarded-proto': 'https' }), { protocol: PROTOCOL_HTTP }, 'ignored from a client')
  t.match(walk('203.0.113.10', { 'x-forwarded-proto': 'https' }), { protocol: PROTOCOL_HTTP }, 'ignored from a gateway')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' }), { protocol: PROTOCOL_HTTPS })
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'HTTP' }), { protocol: PROTOCOL_HTTP })
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https, http' }), { protocol: 0 }, 'a list: unknown')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': ['https', 'https'] }), { protocol: 0 }, 'two lines: unknown')
  t.match(walk('192.0.2.5', { 'x-forwarded-for': '198.51.100.7' }, true), { protocol: 0 }, 'a proxy that does not say: unknown')
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
    [{ gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: [] }] }, /msisdnHeaders must be a non-empty/],
    [{ gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnHeaders: ['bad header'] }] }, /msisdnHeaders\[0\] must be an HTTP header name/],
    [{ gateways: [{ name: 'x', cidrs: ['1.0.0.0/8'], countryCode: '86', msisdnNumbering: 'e164' as 'national' }] }, /msisdnNumbering/],
    [{ trustedProxies: ['10.0.0.0/8'], gateways: [{ name: 'x', cidrs: ['10.1.0.0/16'], countryCode: '86' }] }, /gateways\[0\]\.cidrs\[0\].*overlaps trustedProxies\[0\]/],
    [{ gateways: [{ name: 'x', cidrs: ['2001:db8::/32'], countryCode: '86' }, { name: 'y', cidrs: ['1.0.0.0/8', '2001:db8:1::/48'], countryCode: '86' }] }, /gateways\[1\]\.cidrs\[1\].*overlaps gateways\[0\]\.cidrs\[0\]/],
    [{ maxForwardedEntries: 0 }, /maxForwardedEntries must be a positive integer/],
    [{ maxForwardedLength: 1.5 }, /maxForwardedLength must be a positive integer/],
  ]
  for (const [options, message] of cases) {
    t.throws(() => compileTrust(options), { code: 'FST_CDNI_INVALID_OPTION', message }, String(message))
  }
  t.doesNotThrow(() => compileTrust({ trustedProxies: ['10.0.0.0/8'], gateways: [{ name: 'x', cidrs: ['2001:db8::/32'], countryCode: '86' }] }), 'different families never overlap')
})
