// A client could remove a fact the policy reads and so step around a deny rule to a later allow:
// an underscore or mixed twin of the MSISDN header, a second MSISDN line, an X-Forwarded-For
// prefix of 16 entries or of one 1,100-character entry pushed the handset past the walk's caps,
// and behind our proxy a missing or padded X-Forwarded-For escaped a country deny. Each fact is
// now present, absent or unknowable, and an unknowable fact the policy reads denies first.
import { buildApp } from '../helpers/app.js'
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CdniAuthzOptions } from '../../src/index.js'
import { CITY } from '../helpers/geo.js'

const GATEWAY = '203.0.113.10'
const PROXY = '192.0.2.5'
const TRUST: CdniAuthzOptions = {
  trustedProxies: ['192.0.2.0/29'],
  gateways: [{ name: 'op-a', cidrs: ['203.0.113.0/28'], countryCode: '86' }],
}

async function app(metadata: unknown, options: CdniAuthzOptions = {}) {
  const instance = await buildApp(t, { ...TRUST, ...options, metadata })
  return (remoteAddress: string, headers: Record<string, string | string[]>) =>
    instance.inject({ url: '/content', remoteAddress, headers }).then((r) => r.statusCode)
}

const allowAll = { deliveryCriteria: [{ protocol: ['http', 'https'] }], deliveryRules: { allow: true } }
const profiles = {
  deliveryProfiles: [
    { deliveryCriteria: [{ region: { msdnPrefix: '135038' } }], deliveryRules: { allow: false } },
    { deliveryCriteria: [{ region: { subnet2: '10.5.31.0/24' } }], deliveryRules: { allow: false } },
    allowAll,
  ],
}
const sixteen = Array.from({ length: 16 }, (_, i) => `1.1.1.${i + 1}`).join(', ')

t.test('deny rules on the MSISDN and the handset hold whatever the client adds', async (t) => {
  const get = await app(profiles)
  const number = { 'x-up-calling-line-id': '8613503812345' }
  t.equal(await get(GATEWAY, number), 403, 'the number is in the denied prefix')
  t.equal(await get(GATEWAY, { ...number, x_up_calling_line_id: 'x' }), 403, 'plus an underscore twin')
  t.equal(await get(GATEWAY, { ...number, 'x-up_calling-line-id': 'x' }), 403, 'plus a mixed twin')
  t.equal(
    await get(GATEWAY, { 'x-up-calling-line-id': ['0', '8613503812345'] }),
    403,
    "the same line twice, one of them the client's",
  )
  t.equal(await get(GATEWAY, { 'x-forwarded-for': '10.5.31.7' }), 403, 'the handset is in the denied subnet')
  t.equal(await get(GATEWAY, { 'x-forwarded-for': `${sixteen}, 10.5.31.7` }), 403, 'the client prefixed 16 entries')
  t.equal(
    await get(GATEWAY, { 'x-forwarded-for': `${'7'.repeat(1100)}, 10.5.31.7` }),
    403,
    'the client prefixed one 1,100-character entry',
  )
  t.equal(
    await get(GATEWAY, { 'x-forwarded-for': ',, ,10.5.31.77,,' }),
    403,
    'empty list elements around the handset are ignored, not read as no handset',
  )
  t.equal(
    await get(GATEWAY, { 'x-forwarded-for': '10.6.0.1', 'x-up-calling-line-id': '8613600000000' }),
    200,
    'a handset and a number outside both: allowed',
  )
  t.equal(
    await get(GATEWAY, { 'x-forwarded-for': '10.6.0.1' }),
    200,
    'no number at all (the gateway sent none): absent, allowed',
  )
  t.equal(
    await get('198.51.100.7', { x_up_calling_line_id: 'x', 'x-up-calling-line-id': '8613503812345' }),
    200,
    'from a direct client nothing of this is read',
  )
})

t.test('behind our proxy, a country deny holds without X-Forwarded-For or with a padded one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cdni-authz-regression-'))
  writeFileSync(join(dir, 'city.mmdb'), CITY)
  const get = await app(
    {
      deliveryProfiles: [
        { deliveryCriteria: [{ region: { country: 'GB' } }], deliveryRules: { allow: false } },
        allowAll,
      ],
    },
    { countryDb: join(dir, 'city.mmdb') },
  )
  const proto = { 'x-forwarded-proto': 'http' }
  t.equal(await get(PROXY, { ...proto, 'x-forwarded-for': '81.2.69.1' }), 403, 'a British client is denied')
  t.equal(await get(PROXY, { ...proto, 'x-forwarded-for': '216.160.83.57' }), 200, 'an American one is not')
  t.equal(await get(PROXY, proto), 403, 'no X-Forwarded-For: no source, denied')
  t.equal(
    await get(PROXY, { ...proto, 'x-forwarded-for': `${sixteen}, 81.2.69.1` }),
    403,
    'the proxy appended to a 16-entry client prefix',
  )
})

t.test('RFC 8006 deny actions on the vendor footprints hold the same way', async (t) => {
  const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
  const footprint = (type: string, value: string) => ({ 'footprint-type': type, 'footprint-value': [value] })
  const get = await app({
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [
            acl('MI.LocationACL', {
              locations: [
                { action: 'deny', footprints: [footprint('x-msisdn-prefix', '135038')] },
                { action: 'deny', footprints: [footprint('x-handset-cidr', '10.5.31.0/24')] },
                { action: 'allow', footprints: [footprint('ipv4cidr', '0.0.0.0/0')] },
              ],
            }),
          ],
        },
      },
    ],
  })
  const host = { host: 'video.example.com' }
  t.equal(await get(GATEWAY, { ...host, 'x-up-calling-line-id': '8613503812345' }), 403, 'the number is denied')
  t.equal(
    await get(GATEWAY, { ...host, 'x-up-calling-line-id': '8613503812345', x_up_calling_line_id: 'x' }),
    403,
    'plus a twin',
  )
  t.equal(
    await get(GATEWAY, { ...host, 'x-forwarded-for': `${sixteen}, 10.5.31.7` }),
    403,
    'the handset behind a long client prefix',
  )
  t.equal(await get(GATEWAY, { ...host, 'x-forwarded-for': '10.6.0.1' }), 200, 'others pass')
})
