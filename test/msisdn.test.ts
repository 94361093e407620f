import t from 'tap'
import { maskMsisdn, normalizeMsisdn, type MsisdnFormat } from '../src/facts/msisdn.js'

const international: MsisdnFormat = { countryCode: '86', numbering: 'international', allowDoubleZero: false }

t.test('international header values give the international number and, at home, the national one', async (t) => {
  t.same(normalizeMsisdn('8613912345678', international), { international: '8613912345678', national: '13912345678' })
  t.same(normalizeMsisdn('+8613912345678', international), { international: '8613912345678', national: '13912345678' })
  t.same(
    normalizeMsisdn('+447700900123', international),
    { international: '447700900123', national: null },
    'a roaming foreign number has no national form here',
  )
  t.same(
    normalizeMsisdn('86', international),
    { international: '86', national: null },
    'the bare country code is no national number',
  )
})

t.test('00 is accepted only where the gateway is configured for it', async (t) => {
  t.equal(
    normalizeMsisdn('008613912345678', international),
    null,
    'without the setting, 00 is refused (no country code starts with 0)',
  )
  t.same(normalizeMsisdn('008613912345678', { ...international, allowDoubleZero: true }), {
    international: '8613912345678',
    national: '13912345678',
  })
})

t.test('national numbering prepends the home country code', async (t) => {
  const national: MsisdnFormat = { countryCode: '86', numbering: 'national', allowDoubleZero: false }
  t.same(normalizeMsisdn('13912345678', national), { international: '8613912345678', national: '13912345678' })
  t.same(normalizeMsisdn('+8613912345678', national), { international: '8613912345678', national: '13912345678' })
  t.equal(normalizeMsisdn('13912345678901', national), null, 'country code + national number over 15 digits')
  t.equal(normalizeMsisdn('139-1234', national), null)
})

t.test('anything but ASCII digits, one optional +, at most 15 digits is refused', async (t) => {
  for (const bad of [
    '',
    '+',
    '+0861391234567',
    '0861391234567',
    '++8613912345678',
    '86 139',
    '8613912345678, 8613912345679',
    '8613912345678,8613912345679',
    '٨٦١٣٩١٢٣٤٥٦٧٨',
    '８６１３９',
    '1234567890123456',
    '+1234567890123456',
    '86139123456789012',
    'unknown',
    '86139e10',
    '-8613912345678',
    '8613912345678\n',
  ]) {
    t.equal(normalizeMsisdn(bad, international), null, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('masking keeps five digits', async (t) => {
  t.equal(maskMsisdn('8613912345678'), '86139xxxxxxxx')
  t.equal(maskMsisdn('123'), '123')
})
