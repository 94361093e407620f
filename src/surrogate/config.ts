/**
 * Surrogate configuration: built-in defaults, then a JSON config file, then environment
 * variables, then command-line flags (each overriding the one before). Everything is validated
 * once, at start, and an error names the setting and every way to set it.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { isAbsolute, resolve, dirname } from 'node:path'
import { compileTrust, type GatewayOptions } from '../facts/trust-walk.js'
import { normalizeOptions } from '../plugin/options.js'
import type { CdniAuthzOptions } from '../plugin/plugin.js'

export interface ServerConfig {
  host: string
  port: number
  tlsCert: string | null
  tlsKey: string | null
  metadata: string | null
  stateDir: string
  root: string | null
  /** `single`: `root` is one site's content; `per-host`: `root/<host>/` is each host's. */
  rootLayout: 'single' | 'per-host'
  origin: string | null
  /** Host header sent to the origin: the client's (`forward`) or the origin URL's (`origin`). */
  originHost: 'forward' | 'origin'
  trustedProxies: string[]
  gateways: GatewayOptions[]
  enforcedElsewhere: string[]
  /** A .mmdb path, `bundled` (the package's country database) or `none`. */
  countryDb: string
  /** A .mmdb path or `none`. */
  asnDb: string
  apiHost: string
  apiPort: number
  apiToken: string | null
  bodyLimit: number
  requestTimeout: number
  logLevel: string
  logMsisdn: 'off' | 'masked' | 'full'
  /** URLs of the metadata sources followed (RFC 8006 Metadata Interface); empty: pushes only. */
  follow: string[]
  /** Bearer token sent to the sources, or null. */
  followToken: string | null
  /** Client certificate, key and CA bundle for mutual TLS with the sources (PEM files), or null. */
  followCert: string | null
  followKey: string | null
  followCa: string | null
  /** Poll interval when a source gives no freshness, in milliseconds. */
  followInterval: number
  /** How long metadata past its freshness may still be served while it cannot be revalidated. */
  followMaxStale: number
  /** Processes serving content: 1 serves in this one; more fork workers (node:cluster). */
  workers: number
}

/** The plugin's `countryDb` / `asnDb` options for the surrogate's settings. */
export function databaseOptions(config: Pick<ServerConfig, 'countryDb' | 'asnDb'>): {
  countryDb: string | false | undefined
  asnDb: string | false
} {
  return {
    countryDb: config.countryDb === 'bundled' ? undefined : config.countryDb === 'none' ? false : config.countryDb,
    asnDb: config.asnDb === 'none' ? false : config.asnDb,
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Kind =
  | 'string'
  | 'path'
  | 'database'
  | 'port'
  | 'size'
  | 'millis'
  | 'list'
  | 'gateways'
  | 'url'
  | 'level'
  | 'msisdnLog'
  | 'choice'
  | 'urls'
  | 'staleness'
  | 'workers'

interface Setting {
  key: keyof ServerConfig
  flag: string
  env: string
  kind: Kind
  help: string
  /** The values a `choice` takes, the default first. */
  choices?: readonly string[]
  /** The flag may be given more than once. */
  repeatable?: true
  /** The flag names a file holding the value (a secret would show in `ps`). */
  fromFile?: true
}

/** Every setting, with its flag and environment variable. The README's table is this list. */
export const SETTINGS: Setting[] = [
  { key: 'host', flag: 'host', env: 'CDNI_HOST', kind: 'string', help: 'content listen address' },
  { key: 'port', flag: 'port', env: 'CDNI_PORT', kind: 'port', help: 'content listen port' },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'CDNI_TLS_CERT',
    kind: 'path',
    help: 'TLS certificate file (PEM); with tlsKey, content and push API speak HTTPS',
  },
  { key: 'tlsKey', flag: 'tls-key', env: 'CDNI_TLS_KEY', kind: 'path', help: 'TLS private key file (PEM)' },
  {
    key: 'metadata',
    flag: 'metadata',
    env: 'CDNI_METADATA',
    kind: 'path',
    help: 'metadata loaded at start when the state directory holds none',
  },
  { key: 'stateDir', flag: 'state-dir', env: 'CDNI_STATE_DIR', kind: 'path', help: 'where accepted metadata is kept' },
  { key: 'root', flag: 'root', env: 'CDNI_ROOT', kind: 'path', help: 'folder of content to serve' },
  {
    key: 'rootLayout',
    flag: 'root-layout',
    env: 'CDNI_ROOT_LAYOUT',
    kind: 'choice',
    choices: ['single', 'per-host'],
    help: 'single: root is one site (metadata may name one host); per-host: root/<host>/ for each host',
  },
  {
    key: 'origin',
    flag: 'origin',
    env: 'CDNI_ORIGIN',
    kind: 'url',
    help: 'origin or cache to proxy to, instead of a folder',
  },
  {
    key: 'originHost',
    flag: 'origin-host',
    env: 'CDNI_ORIGIN_HOST',
    kind: 'choice',
    choices: ['forward', 'origin'],
    help: "Host header to the origin: forward the client's, or origin (the origin URL's; metadata may name one host)",
  },
  {
    key: 'trustedProxies',
    flag: 'trusted-proxies',
    env: 'CDNI_TRUSTED_PROXIES',
    kind: 'list',
    help: 'comma-separated CIDRs of our own load balancers',
  },
  { key: 'gateways', flag: 'gateways', env: 'CDNI_GATEWAYS', kind: 'gateways', help: 'operator gateways, as JSON' },
  {
    key: 'enforcedElsewhere',
    flag: 'enforced-elsewhere',
    env: 'CDNI_ENFORCED_ELSEWHERE',
    kind: 'list',
    help: 'comma-separated RFC 8006 metadata types enforced behind us (not denied as unenforceable)',
  },
  {
    key: 'countryDb',
    flag: 'country-db',
    env: 'CDNI_COUNTRY_DB',
    kind: 'database',
    help: 'country database (.mmdb): a path, "bundled" (IPtoASN country data, PDDL) or "none"',
  },
  {
    key: 'asnDb',
    flag: 'asn-db',
    env: 'CDNI_ASN_DB',
    kind: 'database',
    help: 'AS-number database (.mmdb): a path or "none"',
  },
  { key: 'apiHost', flag: 'api-host', env: 'CDNI_API_HOST', kind: 'string', help: 'push API listen address' },
  { key: 'apiPort', flag: 'api-port', env: 'CDNI_API_PORT', kind: 'port', help: 'push API listen port' },
  {
    key: 'apiToken',
    flag: 'api-token-file',
    env: 'CDNI_API_TOKEN',
    kind: 'string',
    fromFile: true,
    help: 'bearer token of the push API (the flag names a file holding it)',
  },
  {
    key: 'bodyLimit',
    flag: 'body-limit',
    env: 'CDNI_BODY_LIMIT',
    kind: 'size',
    help: 'largest metadata push, in bytes',
  },
  {
    key: 'requestTimeout',
    flag: 'request-timeout',
    env: 'CDNI_REQUEST_TIMEOUT',
    kind: 'millis',
    help: 'longest a client may take to send a whole request, in milliseconds (both listeners)',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'CDNI_LOG_LEVEL',
    kind: 'level',
    help: 'fatal, error, warn, info, debug, trace or silent',
  },
  {
    key: 'logMsisdn',
    flag: 'log-msisdn',
    env: 'CDNI_LOG_MSISDN',
    kind: 'msisdnLog',
    help: 'off, masked or full: MSISDNs in deny lines',
  },
  {
    key: 'follow',
    flag: 'follow',
    env: 'CDNI_FOLLOW',
    kind: 'urls',
    repeatable: true,
    help: "follow the metadata at this URL (a HostIndex, or another surrogate's /cdni/metadata) instead of taking pushes; one per uCDN (env: space-separated)",
  },
  {
    key: 'followToken',
    flag: 'follow-token-file',
    env: 'CDNI_FOLLOW_TOKEN',
    kind: 'string',
    fromFile: true,
    help: 'bearer token sent to the followed sources (the flag names a file holding it)',
  },
  {
    key: 'followCert',
    flag: 'follow-cert',
    env: 'CDNI_FOLLOW_CERT',
    kind: 'path',
    help: 'client certificate (PEM) for mutual TLS with the followed sources',
  },
  { key: 'followKey', flag: 'follow-key', env: 'CDNI_FOLLOW_KEY', kind: 'path', help: 'its private key (PEM)' },
  {
    key: 'followCa',
    flag: 'follow-ca',
    env: 'CDNI_FOLLOW_CA',
    kind: 'path',
    help: 'CA certificates (PEM) the followed sources are checked against, in place of the system ones',
  },
  {
    key: 'followInterval',
    flag: 'follow-interval',
    env: 'CDNI_FOLLOW_INTERVAL',
    kind: 'millis',
    help: 'poll interval when a source gives no freshness, in milliseconds (jittered)',
  },
  {
    key: 'followMaxStale',
    flag: 'follow-max-stale',
    env: 'CDNI_FOLLOW_MAX_STALE',
    kind: 'staleness',
    help: "how long followed metadata past its freshness is served while it cannot be revalidated, in milliseconds (at least the source's stale-if-error)",
  },
  {
    key: 'workers',
    flag: 'workers',
    env: 'CDNI_WORKERS',
    kind: 'workers',
    help: 'processes serving content: a number, or auto (one per core); above 1 this process keeps the push API and the policy and serves none',
  },
]

export const DEFAULTS: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  tlsCert: null,
  tlsKey: null,
  metadata: null,
  stateDir: 'state',
  root: null,
  rootLayout: 'single',
  origin: null,
  originHost: 'forward',
  trustedProxies: [],
  gateways: [],
  enforcedElsewhere: [],
  countryDb: 'bundled',
  asnDb: 'none',
  apiHost: '127.0.0.1',
  apiPort: 8081,
  apiToken: null,
  bodyLimit: 64 * 1024 * 1024,
  requestTimeout: 30_000,
  logLevel: 'info',
  logMsisdn: 'off',
  follow: [],
  followToken: null,
  followCert: null,
  followKey: null,
  followCa: null,
  followInterval: 30_000,
  followMaxStale: 0,
  workers: 1,
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

function describe(setting: Setting): string {
  return `setting "${setting.key}" (config "${setting.key}", env ${setting.env}, flag --${setting.flag})`
}

/** Text of digits from env or flags as a number; anything else (and file values) as it is. */
function wholeNumber(raw: unknown, from: 'file' | 'text'): unknown {
  return from === 'text' && typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw
}

/** Converts one raw value (a string from env or flags, or a JSON value from the file). */
function convert(setting: Setting, raw: unknown, from: 'file' | 'text', baseDir: string): unknown {
  const fail = (expected: string): never => {
    throw new ConfigError(`${describe(setting)}: ${expected}, got ${JSON.stringify(raw)}`)
  }
  switch (setting.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) fail('must be a non-empty string')
      return raw
    case 'path':
      if (typeof raw !== 'string' || raw.length === 0) fail('must be a file or folder path')
      return isAbsolute(raw as string) ? raw : resolve(baseDir, raw as string)
    case 'database':
      if (typeof raw !== 'string' || raw.length === 0) fail('must be a .mmdb path, "bundled" or "none"')
      if (raw === 'none' || (raw === 'bundled' && setting.key === 'countryDb')) return raw
      return isAbsolute(raw as string) ? raw : resolve(baseDir, raw as string)
    case 'port': {
      const n = wholeNumber(raw, from)
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) fail('must be an integer 0–65535')
      return n
    }
    case 'size': {
      const n = wholeNumber(raw, from)
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1024) {
        fail('must be a whole number of bytes, at least 1024')
      }
      return n
    }
    case 'millis': {
      const n = wholeNumber(raw, from)
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 100 || n > 3_600_000) {
        fail('must be a whole number of milliseconds, 100–3600000')
      }
      return n
    }
    case 'list': {
      const list =
        from === 'text' && typeof raw === 'string'
          ? raw
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : raw
      if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) fail('must be a list of strings')
      return list
    }
    case 'gateways': {
      let value = raw
      if (from === 'text') {
        try {
          value = JSON.parse(raw as string)
        } catch {
          fail('must be JSON: a list of { name, cidrs, countryCode, msisdnHeaders }')
        }
      }
      if (!Array.isArray(value)) fail('must be a list of { name, cidrs, countryCode, msisdnHeaders }')
      return value
    }
    case 'url': {
      let url: URL | null = null
      try {
        url = new URL(String(raw))
      } catch {
        fail('must be an http:// or https:// URL')
      }
      if (typeof raw !== 'string' || (url?.protocol !== 'http:' && url?.protocol !== 'https:')) {
        fail('must be an http:// or https:// URL')
      }
      return raw
    }
    case 'staleness': {
      const n = wholeNumber(raw, from)
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 604_800_000) {
        fail('must be a whole number of milliseconds, 0–604800000 (a week)')
      }
      return n
    }
    case 'urls': {
      // Env text is split on white space (a URL holds none); a flag given twice is a list already.
      const list = from === 'text' && typeof raw === 'string' ? raw.split(/\s+/).filter(Boolean) : raw
      if (!Array.isArray(list) || list.length === 0) fail('must be a list of http:// or https:// URLs')
      const urls = (list as unknown[]).map((item) => {
        const url = typeof item === 'string' && URL.canParse(item) ? new URL(item) : null
        if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
          fail('must be a list of http:// or https:// URLs')
        }
        if (url?.username !== '' || url.password !== '') {
          fail('must not hold credentials (user:password@): set followToken, or a client certificate')
        }
        return (url as URL).href
      })
      if (new Set(urls).size !== urls.length) fail('names one URL twice')
      return urls
    }
    case 'level':
      if (typeof raw !== 'string' || !LEVELS.includes(raw)) fail(`must be one of ${LEVELS.join(', ')}`)
      return raw
    case 'msisdnLog':
      if (raw !== 'off' && raw !== 'masked' && raw !== 'full') fail('must be off, masked or full')
      return raw
    case 'workers': {
      if (raw === 'auto') return availableParallelism()
      const n = wholeNumber(raw, from)
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 256) fail('must be auto or an integer 1–256')
      return n
    }
    case 'choice': {
      const choices = setting.choices as readonly string[]
      if (typeof raw !== 'string' || !choices.includes(raw)) fail(`must be ${choices.join(' or ')}`)
      return raw
    }
  }
}

/**
 * The settings the plugin takes as they are, checked here as the plugin checks them (CIDRs and
 * gateway fields included): a wrong one is a ConfigError naming the setting and every way to set
 * it, rather than a failed registration that names only the plugin option.
 */
function checkPluginSettings(config: ServerConfig): void {
  const check = (what: string, options: CdniAuthzOptions): void => {
    try {
      compileTrust(normalizeOptions({ ...options, countryDb: false }))
    } catch (err) {
      throw new ConfigError(`${what}: ${(err as Error).message.replace(/^cdni-authz: /, '')}`)
    }
  }
  for (const key of ['trustedProxies', 'gateways', 'enforcedElsewhere'] as const) {
    check(describe(SETTINGS.find((s) => s.key === key) as Setting), { [key]: config[key] })
  }
  // Each list is sound alone; together, a gateway may still overlap one of our proxies.
  check('settings "trustedProxies" and "gateways"', {
    trustedProxies: config.trustedProxies,
    gateways: config.gateways,
  })
}

export interface ConfigSources {
  /** Path of a JSON config file, or null. */
  file: string | null
  env: Record<string, string | undefined>
  /** Parsed flags: flag name → value (values, for a repeatable flag). */
  flags: Record<string, string | string[] | undefined>
  /** Folder relative paths in flags and env resolve against. */
  cwd: string
}

/**
 * Builds and validates the configuration. Throws ConfigError naming the setting. `purpose`
 * `check` skips what only serving needs (a content source).
 */
export function loadConfig(sources: ConfigSources, purpose: 'serve' | 'check' = 'serve'): ServerConfig {
  const config: Record<string, unknown> = { ...DEFAULTS }
  if (sources.file !== null) {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(sources.file, 'utf8'))
    } catch (err) {
      throw new ConfigError(`config file ${sources.file}: ${(err as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${sources.file}: must hold a JSON object`)
    }
    for (const [key, value] of Object.entries(parsed)) {
      const setting = SETTINGS.find((s) => s.key === key)
      if (!setting) {
        throw new ConfigError(
          `config file ${sources.file}: unknown setting "${key}" (known: ${SETTINGS.map((s) => s.key).join(', ')})`,
        )
      }
      config[key] = convert(setting, value, 'file', dirname(sources.file))
    }
  }
  for (const setting of SETTINGS) {
    const fromEnv = sources.env[setting.env]
    if (fromEnv !== undefined && fromEnv !== '') config[setting.key] = convert(setting, fromEnv, 'text', sources.cwd)
    const fromFlag = sources.flags[setting.flag]
    if (fromFlag === undefined) continue
    if (setting.fromFile === true) {
      // A token on the command line would show in `ps`: the flag names a file instead.
      let token: string
      try {
        token = readFileSync(resolve(sources.cwd, fromFlag as string), 'utf8').trim()
      } catch (err) {
        throw new ConfigError(`${describe(setting)}: cannot read ${String(fromFlag)}: ${(err as Error).message}`)
      }
      config[setting.key] = convert(setting, token, 'text', sources.cwd)
    } else {
      config[setting.key] = convert(setting, fromFlag, 'text', sources.cwd)
    }
  }
  const result = config as unknown as ServerConfig
  const tokenSetting = SETTINGS.find((s) => s.key === 'apiToken') as Setting
  if (result.apiToken !== null && result.apiToken.length < 16) {
    throw new ConfigError(`${describe(tokenSetting)}: must be at least 16 characters to be a secret`)
  }
  if ((result.followCert === null) !== (result.followKey === null)) {
    throw new ConfigError('settings "followCert" and "followKey" go together: set both or neither')
  }
  if (result.follow.length > 0 && result.metadata !== null) {
    throw new ConfigError(
      'settings "follow" and "metadata" exclude each other: a followed surrogate takes its metadata from its sources',
    )
  }
  if ((result.tlsCert === null) !== (result.tlsKey === null)) {
    throw new ConfigError('settings "tlsCert" and "tlsKey" go together: set both or neither')
  }
  if (result.root !== null && result.origin !== null) {
    throw new ConfigError('settings "root" and "origin" exclude each other: serve a folder or proxy to an origin')
  }
  if (purpose === 'serve' && result.root === null && result.origin === null) {
    throw new ConfigError('set "root" (a folder to serve) or "origin" (a URL to proxy to)')
  }
  checkPluginSettings(result)
  return result
}
