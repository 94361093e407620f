import t from 'tap'
import fc from 'fast-check'
import ipaddr from 'ipaddr.js'
import { formatAddress, formatPrefix, parseAddress, parseIPv4, parsePrefix } from '../src/facts/address.js'

const out = new Uint32Array(4)

t.test('IPv4 accepts exactly four decimal parts 0-255 without leading zeros', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0)
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff)
  t.equal(parseIPv4('10.1.2.3'), 0x0a010203)
  for (const bad of [
    '0177.0.0.1',
    '10.01.0.1',
    '00.0.0.0',
    '0x7f.0.0.1',
    '127.1',
    '2130706433',
    '1.2.3',
    '1.2.3.4.5',
    '256.0.0.1',
    '1.2.3.',
    '.1.2.3',
    '1..2.3',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1.2.3.4:80',
    '１.2.3.4',
    '1.2.3.٤',
    'unknown',
    '',
    '1.2.3.1000',
    '10.20.30.',
    '1.2.3.4.',
  ]) {
    t.equal(parseIPv4(bad), -1, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('IPv6 accepts the standard text forms and unwraps IPv4-mapped addresses', async (t) => {
  t.equal(parseAddress('2001:db8::1', out), 6)
  t.same([...out], [0x20010db8, 0, 0, 1])
  t.equal(parseAddress('::', out), 6)
  t.same([...out], [0, 0, 0, 0])
  t.equal(parseAddress('::1', out), 6)
  t.equal(parseAddress('1::', out), 6)
  t.same([...out], [0x00010000, 0, 0, 0])
  t.equal(parseAddress('FFFF:ffff:FFFF:ffff:ffff:ffff:ffff:ffff', out), 6)
  t.equal(parseAddress('64:ff9b::192.0.2.33', out), 6)
  t.same([...out], [0x0064ff9b, 0, 0, 0xc0000221])
  t.equal(parseAddress('::ffff:10.1.2.3', out), 4, 'IPv4-mapped is unwrapped')
  t.equal(out[0], 0x0a010203)
  t.equal(parseAddress('::ffff:a01:203', out), 4, 'IPv4-mapped in hex form is unwrapped too')
  t.equal(out[0], 0x0a010203)
  for (const bad of [
    'fe80::1%eth0',
    '[2001:db8::1]',
    '[2001:db8::1]:443',
    '2001:db8::1:443:1:2:3:4',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    ':1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:',
    '1::2::3',
    '12345::',
    'g::1',
    '::ffff:0177.0.0.1',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3',
    ':',
    ':::',
    '1:2:3:4:5:6:7:8::',
    'a'.repeat(46),
    '2001:db8::1 ',
  ]) {
    t.equal(parseAddress(bad, out), 0, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('::a.b.c.d is the IPv4-compatible address of RFC 4291 section 2.5.5.1, not IPv4-mapped', async (t) => {
  t.equal(parseAddress('::1.2.3.4', out), 6)
  t.same([...out], [0, 0, 0, 0x01020304])
})

/** ipaddr.js reads "::a.b.c.d" as "::ffff:a.b.c.d"; that form is compared in the test above instead. */
const ipv4Compatible = /^::[0-9.]+$/

t.test('parsing agrees with ipaddr.js on every address ipaddr.js prints', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.ipV4(),
        fc.ipV6().filter((text) => !ipv4Compatible.test(text)),
      ),
      (text) => {
        const family = parseAddress(text, out)
        const parsed = ipaddr.parse(text)
        const bytes =
          parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()
            ? (parsed as ipaddr.IPv6).toIPv4Address().toByteArray()
            : parsed.toByteArray()
        const words = family === 4 ? [out[0]] : [...out]
        const want: number[] = []
        for (let i = 0; i < bytes.length; i += 4) {
          want.push(
            (((bytes[i] as number) << 24) |
              ((bytes[i + 1] as number) << 16) |
              ((bytes[i + 2] as number) << 8) |
              (bytes[i + 3] as number)) >>>
              0,
          )
        }
        return family === (bytes.length === 4 ? 4 : 6) && JSON.stringify(words) === JSON.stringify(want)
      },
    ),
    { seed: 7, numRuns: 2000 },
  )
  t.pass('no disagreement')
})

t.test('prefixes: CIDR and dotted masks, host bits reported, bad forms refused with a reason', async (t) => {
  const cidr = parsePrefix('10.1.0.0/18')
  t.ok(cidr.ok && !cidr.hostBitsSet && cidr.prefix.length === 18)
  const dotted = parsePrefix('10.1.0.0/255.255.192.0')
  t.ok(dotted.ok && dotted.prefix.length === 18 && dotted.prefix.words[0] === 0x0a010000)
  const zeroMask = parsePrefix('0.0.0.0/0.0.0.0')
  t.ok(zeroMask.ok && zeroMask.prefix.length === 0)
  const host = parsePrefix('10.1.0.54/18')
  t.ok(host.ok && host.hostBitsSet)
  t.equal(host.ok && formatPrefix(host.prefix), '10.1.0.0/18')
  const v6 = parsePrefix('2001:db8::1/32')
  t.ok(v6.ok && v6.hostBitsSet)
  t.equal(v6.ok && formatPrefix(v6.prefix), '2001:db8::/32')
  const cases: [string, RegExp][] = [
    ['10.1.0.0', /CIDR/],
    ['10.1.0.0/18/3', /CIDR/],
    ['10.1.0.0/33', /0–32/],
    ['2001:db8::/129', /0–128/],
    ['10.1.0.0/018', /leading zeros/],
    ['2001:db8::/0128', /leading zeros/],
    ['10.1.0.0/1x', /0–32/],
    ['10.1.0.0/', /0–32/],
    ['10.1.0.0/255.0.255.0', /not contiguous/],
    ['10.1.0.0/255.255.256.0', /dotted IPv4 mask/],
    ['2001:db8::/255.255.0.0', /dotted IPv4 mask/],
    ['010.1.0.0/16', /not a strict/],
    ['::ffff:10.0.0.0/104', /IPv4-mapped/],
    ['1'.repeat(70), /too long/],
  ]
  for (const [text, message] of cases) {
    const parsed = parsePrefix(text)
    t.match(parsed, { ok: false, message }, `refuses ${text}`)
  }
  t.equal(formatAddress(4, Uint32Array.of(0x0a010203)), '10.1.2.3')
  t.equal(formatAddress(6, Uint32Array.of(0x20010db8, 0, 0, 1)), '2001:db8::1')
})
