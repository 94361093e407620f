/**
 * The plugin's options, checked and normalized at registration before any file is opened or list
 * compiled. Options come from code and from operators' config files alike, so any value may be of
 * any type: a wrong one fails registration with InvalidOptionError naming the option and what it
 * takes, never with a TypeError from somewhere deeper (or, thrown from a callback, a crash).
 *
 * The CIDRs' syntax and overlaps are left to compileTrust, which reports them in detail; here only
 * that they are strings.
 */
import type { GatewayOptions } from '../facts/trust-walk.js'
import { InvalidOptionError } from '../errors.js'
import { BUNDLED_COUNTRY_DB } from '../facts/ip-database.js'
import { isDigitString } from '../facts/msisdn.js'
import type { CdniAuthzOptions } from './plugin.js'

export type LogMsisdn = 'off' | 'masked' | 'full'

/** A gateway with its defaults filled in. */
export type NormalizedGateway = Required<GatewayOptions>

export interface NormalizedOptions {
  /** The initial document (an object, or JSON text), or undefined for none. */
  metadata: object | string | undefined
  /** Lower case, as types are compared. */
  enforcedElsewhere: string[]
  logMsisdn: LogMsisdn
  /** A .mmdb path (the bundled database by default) or false for none. */
  countryDb: string | false
  asnDb: string | false
  trustedProxies: string[]
  gateways: NormalizedGateway[]
  maxForwardedEntries: number
  maxForwardedLength: number
  /** Option names neither this plugin nor Fastify knows, in the order given. */
  unknown: string[]
}

const OPTIONS: readonly (keyof CdniAuthzOptions)[] = [
  'metadata',
  'enforcedElsewhere',
  'logMsisdn',
  'countryDb',
  'asnDb',
  'trustedProxies',
  'gateways',
  'maxForwardedEntries',
  'maxForwardedLength',
]

/** What Fastify's `register` reads from the same object: ours to ignore, not to report. */
const FASTIFY_OPTIONS: readonly string[] = ['prefix', 'logLevel', 'logSerializers']

const GATEWAY_FIELDS: readonly (keyof GatewayOptions)[] = [
  'name',
  'cidrs',
  'msisdnHeaders',
  'countryCode',
  'msisdnNumbering',
  'allowDoubleZero',
]

const DEFAULT_MSISDN_HEADERS: readonly string[] = ['x-up-calling-line-id']

/** RFC 9110 token characters, for header names (compared in lower case). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** The largest X-Forwarded-For cap: past this a cap no longer bounds the work done per request. */
const MAX_FORWARDED_CAP = 1_000_000

const fail = (message: string): never => {
  throw new InvalidOptionError(message)
}

/** Only undefined is an option left out: null is a value, and a wrong one. */
const given = (value: unknown, fallback: unknown): unknown => (value === undefined ? fallback : value)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** A copy of an array whose every element passes `check`; holes are read as undefined. */
function arrayOf<T>(
  value: unknown,
  name: string,
  expected: string,
  element: (item: unknown, at: string) => T,
  nonEmpty = false,
): T[] {
  if (!Array.isArray(value) || (nonEmpty && value.length === 0)) {
    return fail(`${name} must be ${nonEmpty ? 'a non-empty' : 'an'} array of ${expected}`)
  }
  const list: T[] = []
  for (let i = 0; i < value.length; i++) list.push(element(value[i], `${name}[${i}]`))
  return list
}

const cidrString = (item: unknown, at: string): string =>
  typeof item === 'string' ? item : fail(`${at} must be a CIDR string`)

function database(value: unknown, name: string, fallback: string | false): string | false {
  if (value === undefined) return fallback
  if (value === false || (typeof value === 'string' && value.length > 0)) return value
  return fail(`${name} must be a .mmdb file path or false`)
}

function cap(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_FORWARDED_CAP) return value
  return fail(`${name} must be a positive integer, at most ${MAX_FORWARDED_CAP}`)
}

function gateway(value: unknown, at: string): NormalizedGateway {
  if (!isRecord(value)) return fail(`${at} must be an object`)
  // Unlike the options object, Fastify adds nothing here: an unknown field is a typo, and a
  // misspelt msisdnHeaders would quietly read the default header instead.
  for (const key of Object.keys(value)) {
    if (!(GATEWAY_FIELDS as readonly string[]).includes(key)) {
      fail(`${at}.${key} is not a gateway field (${GATEWAY_FIELDS.join(', ')})`)
    }
  }
  const { name, cidrs, msisdnHeaders, countryCode, msisdnNumbering, allowDoubleZero } = value
  if (typeof name !== 'string' || name.length === 0) fail(`${at}.name must be a non-empty string`)
  const cidrList = arrayOf(cidrs, `${at}.cidrs`, 'CIDR strings', cidrString, true)
  if (typeof countryCode !== 'string' || !isDigitString(countryCode, 3)) {
    fail(`${at}.countryCode must be 1–3 digits, such as "86"`)
  }
  const headers = arrayOf(
    given(msisdnHeaders, DEFAULT_MSISDN_HEADERS),
    `${at}.msisdnHeaders`,
    'header names',
    (item, itemAt) =>
      typeof item === 'string' && HEADER_NAME.test(item.toLowerCase())
        ? item.toLowerCase()
        : fail(`${itemAt} must be an HTTP header name`),
    true,
  )
  const numbering = given(msisdnNumbering, 'international')
  if (numbering !== 'international' && numbering !== 'national') {
    fail(`${at}.msisdnNumbering must be "international" or "national"`)
  }
  if (allowDoubleZero !== undefined && typeof allowDoubleZero !== 'boolean') {
    fail(`${at}.allowDoubleZero must be true or false`)
  }
  return {
    name: name as string,
    cidrs: cidrList,
    msisdnHeaders: headers,
    countryCode: countryCode as string,
    msisdnNumbering: numbering as NormalizedGateway['msisdnNumbering'],
    allowDoubleZero: allowDoubleZero === true,
  }
}

/**
 * Checks every option and fills in the defaults; throws InvalidOptionError naming the first wrong
 * one. An option set to undefined is an option left out. The result shares nothing mutable with
 * `options`, so changing those later changes nothing here.
 */
export function normalizeOptions(options: unknown): NormalizedOptions {
  if (options === undefined) options = {}
  if (!isRecord(options)) return fail('options must be an object')
  const { metadata, enforcedElsewhere, logMsisdn = 'off' } = options
  if (metadata !== undefined && typeof metadata !== 'string' && !isRecord(metadata)) {
    fail('metadata must be a metadata document (an object) or its JSON text')
  }
  if (logMsisdn !== 'off' && logMsisdn !== 'masked' && logMsisdn !== 'full') {
    fail('logMsisdn must be "off", "masked" or "full"')
  }
  return {
    metadata: metadata as object | string | undefined,
    enforcedElsewhere: arrayOf(
      given(enforcedElsewhere, []),
      'enforcedElsewhere',
      'metadata type names, such as ["MI.SourceMetadata"]',
      (item, at) =>
        typeof item === 'string' && item.length > 0 ? item.toLowerCase() : fail(`${at} must be a non-empty string`),
    ),
    logMsisdn: logMsisdn as LogMsisdn,
    countryDb: database(options.countryDb, 'countryDb', BUNDLED_COUNTRY_DB),
    asnDb: database(options.asnDb, 'asnDb', false),
    trustedProxies: arrayOf(given(options.trustedProxies, []), 'trustedProxies', 'CIDR strings', cidrString),
    gateways: arrayOf(given(options.gateways, []), 'gateways', 'gateway objects', gateway),
    maxForwardedEntries: cap(options.maxForwardedEntries, 'maxForwardedEntries', 16),
    maxForwardedLength: cap(options.maxForwardedLength, 'maxForwardedLength', 1024),
    unknown: Object.keys(options).filter(
      (key) => !(OPTIONS as readonly string[]).includes(key) && !FASTIFY_OPTIONS.includes(key),
    ),
  }
}
