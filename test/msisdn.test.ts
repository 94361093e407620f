import t from 'tap'
import fc from 'fast-check'
import { maskMsisdn, msisdnKey, normalizeMsisdn, type Msisdn, type MsisdnFormat } from '../src/facts/msisdn.js'

const international: MsisdnFormat = { countryCode: '86', numbering: 'international', allowDoubleZero: false }

/** What normalizeMsisdn gives for these digits: both as keys, as the policy tables read them. */
const number = (digits: string, national: string | null): Msisdn => ({
  international: digits,
  key: msisdnKey(digits),
  nationalKey: national === null ? -1 : msisdnKey(national),
})

t.test('international header values give the international number and, at home, the national one', async (t) => {
  t.same(normalizeMsisdn('8613912345678', international), number('8613912345678', '13912345678'))
  t.same(normalizeMsisdn('+8613912345678', international), number('8613912345678', '13912345678'))
  t.same(
    normalizeMsisdn('+447700900123', international),
    number('447700900123', null),
    'a roaming foreign number has no national form here',
  )
  t.same(normalizeMsisdn('86', international), number('86', null), 'the bare country code is no national number')
})

t.test('00 is accepted only where the gateway is configured for it', async (t) => {
  t.equal(
    normalizeMsisdn('008613912345678', international),
    null,
    'without the setting, 00 is refused (no country code starts with 0)',
  )
  t.same(
    normalizeMsisdn('008613912345678', { ...international, allowDoubleZero: true }),
    number('8613912345678', '13912345678'),
  )
})

t.test('national numbering prepends the home country code', async (t) => {
  const national: MsisdnFormat = { countryCode: '86', numbering: 'national', allowDoubleZero: false }
  t.same(normalizeMsisdn('13912345678', national), number('8613912345678', '13912345678'))
  t.same(normalizeMsisdn('+8613912345678', national), number('8613912345678', '13912345678'))
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

/** The reference: the number's digits as strings, sliced, and each keyed on its own. */
function referenceNormalize(raw: string, format: MsisdnFormat): Msisdn | null {
  const digitsOnly = (text: string) => /^[0-9]{1,15}$/.test(text)
  let digits: string
  if (raw.startsWith('+')) digits = raw.slice(1)
  else if (format.allowDoubleZero && raw.startsWith('00')) digits = raw.slice(2)
  else if (format.numbering === 'national') {
    if (!digitsOnly(raw) || !digitsOnly(format.countryCode + raw)) return null
    return number(format.countryCode + raw, raw)
  } else digits = raw
  if (!digitsOnly(digits) || digits.startsWith('0')) return null
  const home = digits.startsWith(format.countryCode) && digits.length > format.countryCode.length
  return number(digits, home ? digits.slice(format.countryCode.length) : null)
}

t.test('the keys made in one pass are the keys of the digit strings', async (t) => {
  const digits = fc.stringMatching(/^[0-9]{0,17}$/)
  fc.assert(
    fc.property(
      fc.tuple(fc.constantFrom('', '+', '00', '0', '+0'), digits),
      fc.record({
        countryCode: fc.stringMatching(/^[1-9][0-9]{0,2}$/),
        numbering: fc.constantFrom('international' as const, 'national' as const),
        allowDoubleZero: fc.boolean(),
      }),
      ([lead, rest], format) => {
        // As drawn, and starting with the country code, so that home numbers are common.
        return [lead + rest, format.countryCode + rest].every(
          (raw) => JSON.stringify(normalizeMsisdn(raw, format)) === JSON.stringify(referenceNormalize(raw, format)),
        )
      },
    ),
    { seed: 20261205, numRuns: 2000 },
  )
  t.pass('no counterexample')
})
