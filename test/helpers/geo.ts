// Small databases in the shapes operators' files have, for the country and AS tests.
import { buildMmdb } from './mmdb.js'

/** A GeoIP2-City-shaped database: country objects, subdivisions, a registered_country. */
export const CITY = buildMmdb(
  [
    [
      '81.2.69.0/24',
      {
        country: { iso_code: 'GB', names: { en: 'United Kingdom' } },
        subdivisions: [{ iso_code: 'ENG' }, { iso_code: 'WSM' }],
      },
    ],
    ['81.2.69.160/27', { country: { iso_code: 'GB' }, subdivisions: [{ iso_code: 'ENG' }, { iso_code: 'KEN' }] }],
    ['216.160.83.56/29', { country: { iso_code: 'US' }, subdivisions: [{ iso_code: 'WA' }] }],
    ['2001:480::/32', { country: { iso_code: 'US' }, subdivisions: [{ iso_code: 'CA' }] }],
    ['89.160.20.112/28', { registered_country: { iso_code: 'SE' } }],
  ],
  { databaseType: 'GeoIP2-City' },
)

/** GeoLite2-ASN-shaped. */
export const ASN = buildMmdb(
  [
    ['1.128.0.0/11', { autonomous_system_number: 1221, autonomous_system_organization: 'Telstra' }],
    ['2600::/24', { autonomous_system_number: 4_200_000_000 }],
  ],
  { databaseType: 'GeoLite2-ASN' },
)
