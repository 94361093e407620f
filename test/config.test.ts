import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { databaseOptions, DEFAULTS, loadConfig, type ConfigSources } from '../src/surrogate/config.js'

const dir = t.testdir({
  'config.json': JSON.stringify({
    port: 9000,
    root: 'content',
    trustedProxies: ['10.0.0.0/8'],
    apiToken: 'a-long-enough-token-123',
  }),
  'token.txt': 'file-token-0123456789abcdef\n',
  'short.txt': 'short',
  'array.json': '[]',
  'broken.json': '{ "port": ',
  'unknown.json': '{ "listen": 1 }',
})

const sources = (patch: Partial<ConfigSources>): ConfigSources => ({
  file: null,
  env: {},
  flags: {},
  cwd: dir,
  ...patch,
})

t.test('defaults, then the file, then the environment, then flags', async (t) => {
  const fromFile = loadConfig(sources({ file: join(dir, 'config.json') }))
  t.match(fromFile, {
    host: DEFAULTS.host,
    port: 9000,
    root: join(dir, 'content'),
    trustedProxies: ['10.0.0.0/8'],
    apiToken: 'a-long-enough-token-123',
  })
  const fromEnv = loadConfig(
    sources({
      file: join(dir, 'config.json'),
      env: {
        CDNI_PORT: '9100',
        CDNI_TRUSTED_PROXIES: '192.0.2.0/24, 198.51.100.0/24',
        CDNI_GATEWAYS: '[{"name":"op","cidrs":["203.0.113.0/28"],"countryCode":"86"}]',
      },
    }),
  )
  t.match(fromEnv, { port: 9100, trustedProxies: ['192.0.2.0/24', '198.51.100.0/24'], gateways: [{ name: 'op' }] })
  const fromFlags = loadConfig(
    sources({
      file: join(dir, 'config.json'),
      env: { CDNI_PORT: '9100' },
      flags: {
        port: '9200',
        'api-token-file': 'token.txt',
        'log-msisdn': 'masked',
        'body-limit': '2048',
        'request-timeout': '1500',
      },
    }),
  )
  t.match(fromFlags, {
    port: 9200,
    apiToken: 'file-token-0123456789abcdef',
    logMsisdn: 'masked',
    bodyLimit: 2048,
    requestTimeout: 1500,
  })
  t.match(loadConfig(sources({ flags: { origin: 'https://origin.example' } })), {
    origin: 'https://origin.example',
    root: null,
  })
  t.match(loadConfig(sources({}), 'check'), { root: null, origin: null }, 'checking a request needs no content source')
  t.equal(
    loadConfig(sources({ flags: { root: 'x' }, env: { CDNI_LOG_LEVEL: 'warn', CDNI_HOST: '' } })).logLevel,
    'warn',
    'an empty environment variable is unset',
  )
  writeFileSync(join(dir, 'numbers.json'), JSON.stringify({ bodyLimit: 4096, apiPort: 0, root: '/srv/content' }))
  t.match(
    loadConfig(sources({ file: join(dir, 'numbers.json') })),
    { bodyLimit: 4096, apiPort: 0, root: '/srv/content' },
    'absolute paths stay as they are',
  )
  t.match(
    loadConfig(sources({ flags: { root: 'x' } })),
    { countryDb: 'bundled', asnDb: 'none' },
    'databases: the bundled country one, no AS one',
  )
  t.match(loadConfig(sources({ flags: { root: 'x', 'country-db': 'none', 'asn-db': 'geo/asn.mmdb' } })), {
    countryDb: 'none',
    asnDb: join(dir, 'geo/asn.mmdb'),
  })
  t.match(
    loadConfig(sources({ flags: { root: 'x', 'asn-db': 'bundled' } })),
    { asnDb: join(dir, 'bundled') },
    'no AS database is bundled: "bundled" is a file name there',
  )
  writeFileSync(join(dir, 'geo.json'), JSON.stringify({ root: 'x', countryDb: '/var/lib/GeoIP/GeoLite2-City.mmdb' }))
  t.match(loadConfig(sources({ file: join(dir, 'geo.json') })), { countryDb: '/var/lib/GeoIP/GeoLite2-City.mmdb' })
  t.match(
    loadConfig(sources({ flags: { root: 'x' } })),
    { rootLayout: 'single', originHost: 'forward' },
    "one folder; the client's Host to an origin",
  )
  t.match(
    loadConfig(sources({ flags: { root: 'x', 'root-layout': 'per-host' }, env: { CDNI_ORIGIN_HOST: 'origin' } })),
    { rootLayout: 'per-host', originHost: 'origin' },
  )
  writeFileSync(join(dir, 'layout.json'), JSON.stringify({ origin: 'http://o', originHost: 'origin' }))
  t.match(loadConfig(sources({ file: join(dir, 'layout.json') })), { originHost: 'origin' })
  t.same(databaseOptions({ countryDb: 'bundled', asnDb: 'none' }), { countryDb: undefined, asnDb: false })
  t.same(databaseOptions({ countryDb: 'none', asnDb: '/a.mmdb' }), { countryDb: false, asnDb: '/a.mmdb' })
  t.same(databaseOptions({ countryDb: '/c.mmdb', asnDb: 'none' }), { countryDb: '/c.mmdb', asnDb: false })
})

t.test('every bad value is refused with the setting and every way to set it', async (t) => {
  const cases: [Partial<ConfigSources>, RegExp][] = [
    [
      { flags: { port: '80a', root: 'x' } },
      /setting "port" \(config "port", env CDNI_PORT, flag --port\): must be an integer 0–65535, got "80a"/,
    ],
    [{ env: { CDNI_API_PORT: '70000' }, flags: { root: 'x' } }, /"apiPort".*0–65535/],
    [{ flags: { 'body-limit': '12', root: 'x' } }, /"bodyLimit".*at least 1024/],
    [{ flags: { 'request-timeout': '5', root: 'x' } }, /"requestTimeout".*100–3600000, got "5"/],
    [{ flags: { 'log-level': 'loud', root: 'x' } }, /"logLevel".*fatal, error/],
    [{ flags: { 'log-msisdn': 'yes', root: 'x' } }, /"logMsisdn".*off, masked or full/],
    [{ flags: { origin: 'ftp://x' } }, /"origin".*http:\/\/ or https:\/\//],
    [
      { flags: { root: 'x', 'root-layout': 'per-site' } },
      /setting "rootLayout" \(config "rootLayout", env CDNI_ROOT_LAYOUT, flag --root-layout\): must be single or per-host, got "per-site"/,
    ],
    [
      { env: { CDNI_ORIGIN_HOST: 'client' }, flags: { origin: 'http://o' } },
      /setting "originHost" .*: must be forward or origin, got "client"/,
    ],
    [{ flags: { origin: 'not a url' } }, /"origin".*URL/],
    [{ env: { CDNI_GATEWAYS: '{broken' }, flags: { root: 'x' } }, /"gateways".*must be JSON/],
    [{ env: { CDNI_GATEWAYS: '{}' }, flags: { root: 'x' } }, /"gateways".*must be a list/],
    [{ flags: { 'api-token-file': 'short.txt', root: 'x' } }, /"apiToken".*at least 16 characters/],
    [{ flags: { 'api-token-file': 'missing.txt', root: 'x' } }, /"apiToken".*cannot read missing\.txt/],
    [{ flags: { 'tls-cert': 'cert.pem', root: 'x' } }, /"tlsCert" and "tlsKey" go together/],
    [{ flags: { root: 'x', origin: 'http://o' } }, /exclude each other/],
    [{}, /set "root".*or "origin"/],
    [{ file: join(dir, 'array.json') }, /must hold a JSON object/],
    [{ file: join(dir, 'broken.json') }, /config file .*broken\.json/],
    [{ file: join(dir, 'unknown.json') }, /unknown setting "listen"/],
    [{ file: join(dir, 'nowhere.json') }, /config file .*nowhere\.json/],
    [{ flags: { root: 'x', follow: ['ftp://u'] } }, /setting "follow" .*flag --follow\): must be a list of http/],
    [{ env: { CDNI_FOLLOW: ' ' }, flags: { root: 'x' } }, /"follow".*must be a list of http/],
    [{ flags: { root: 'x', follow: [] } }, /"follow".*must be a list of http/],
    [{ flags: { root: 'x', follow: ['http://u/a', 'http://u/a'] } }, /"follow".*names one URL twice/],
    [{ flags: { root: 'x', follow: ['https://me:secret@u/a'] } }, /"follow".*must not hold credentials/],
    [
      { flags: { root: 'x', follow: ['http://u/a'], metadata: 'm.json' } },
      /"follow" and "metadata" exclude each other/,
    ],
    [{ flags: { root: 'x', 'follow-cert': 'c.pem' } }, /"followCert" and "followKey" go together/],
    [{ flags: { root: 'x', 'follow-max-stale': '-1' } }, /"followMaxStale".*0–604800000/],
    [{ flags: { root: 'x', 'follow-token-file': 'missing.txt' } }, /"followToken".*cannot read missing\.txt/],
  ]
  for (const [patch, message] of cases) {
    t.throws(() => loadConfig(sources(patch)), { name: 'ConfigError', message }, String(message))
  }
  writeFileSync(join(dir, 'types.json'), JSON.stringify({ host: 5, root: 'x' }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'types.json') })), { message: /"host".*non-empty string, got 5/ })
  writeFileSync(join(dir, 'types.json'), JSON.stringify({ stateDir: '', root: 'x' }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'types.json') })), { message: /"stateDir".*path/ })
  writeFileSync(join(dir, 'types.json'), JSON.stringify({ countryDb: false, root: 'x' }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'types.json') })), {
    message: /"countryDb".*must be a \.mmdb path, "bundled" or "none", got false/,
  })
  writeFileSync(join(dir, 'types.json'), JSON.stringify({ trustedProxies: [1], root: 'x' }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'types.json') })), {
    message: /"trustedProxies".*must be a list of strings/,
  })
  writeFileSync(join(dir, 'types.json'), JSON.stringify({ port: '80', root: 'x' }))
  t.throws(
    () => loadConfig(sources({ file: join(dir, 'types.json') })),
    { message: /"port".*got "80"/ },
    'the file takes JSON numbers, not strings',
  )
})

t.test('followed sources: repeated flags, space-separated env, a token from a file', async (t) => {
  const flags = loadConfig(
    sources({
      flags: { root: 'x', follow: ['http://a.example/index', 'https://b.example/i'], 'follow-token-file': 'token.txt' },
    }),
  )
  t.same(flags.follow, ['http://a.example/index', 'https://b.example/i'])
  t.equal(flags.followToken, 'file-token-0123456789abcdef')
  t.same(
    loadConfig(sources({ env: { CDNI_FOLLOW: 'http://a.example/x  http://b.example/y' }, flags: { root: 'x' } }))
      .follow,
    ['http://a.example/x', 'http://b.example/y'],
  )
  writeFileSync(join(dir, 'one.json'), JSON.stringify({ root: 'x', follow: 'http://a.example/x' }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'one.json') })), { message: /"follow".*must be a list/ })
  writeFileSync(join(dir, 'one.json'), JSON.stringify({ root: 'x', follow: [5] }))
  t.throws(() => loadConfig(sources({ file: join(dir, 'one.json') })), { message: /"follow".*must be a list of http/ })
  writeFileSync(
    join(dir, 'follow.json'),
    JSON.stringify({ root: 'x', follow: ['http://a.example/x'], followMaxStale: 0 }),
  )
  t.match(loadConfig(sources({ file: join(dir, 'follow.json') })), {
    follow: ['http://a.example/x'],
    followMaxStale: 0,
    followInterval: 30_000,
  })
})

t.test('the settings handed to the plugin are checked as the plugin checks them, and a bad one is named', async (t) => {
  let files = 0
  const file = (settings: Record<string, unknown>) => {
    const path = join(dir, `plugin-${++files}.json`)
    writeFileSync(path, JSON.stringify({ root: 'x', ...settings }))
    return sources({ file: path })
  }
  const gateway = { name: 'op', cidrs: ['203.0.113.0/28'], countryCode: '86' }
  const cases: [ConfigSources, RegExp][] = [
    [
      file({ enforcedElsewhere: 'MI.SourceMetadata' }),
      /^setting "enforcedElsewhere" \(config "enforcedElsewhere", env CDNI_ENFORCED_ELSEWHERE, flag --enforced-elsewhere\): must be a list of strings, got "MI.SourceMetadata"$/,
    ],
    [
      file({ enforcedElsewhere: ['MI.SourceMetadata', ''] }),
      /^setting "enforcedElsewhere" \(.*\): enforcedElsewhere\[1\] must be a non-empty string$/,
    ],
    [file({ trustedProxies: '10.0.0.0/8' }), /^setting "trustedProxies" .*: must be a list of strings/],
    [
      sources({ flags: { root: 'x', 'trusted-proxies': '10.0.0.0/8, 10.0.0.1/8' } }),
      /^setting "trustedProxies" \(config "trustedProxies", env CDNI_TRUSTED_PROXIES, flag --trusted-proxies\): trustedProxies\[1\]: "10\.0\.0\.1\/8" has host bits set/,
    ],
    [
      sources({ env: { CDNI_TRUSTED_PROXIES: '10.0.0.0/33' }, flags: { root: 'x' } }),
      /^setting "trustedProxies" .*: trustedProxies\[0\]: "10\.0\.0\.0\/33"/,
    ],
    [
      file({ gateways: [{ ...gateway, countryCode: 86 }] }),
      /^setting "gateways" \(config "gateways", env CDNI_GATEWAYS, flag --gateways\): gateways\[0\]\.countryCode must be 1–3 digits/,
    ],
    [
      file({ gateways: [{ ...gateway, msisdnHeader: ['x-msisdn'] }] }),
      /^setting "gateways" .*: gateways\[0\]\.msisdnHeader is not a gateway field/,
    ],
    [
      file({ gateways: [gateway, { ...gateway, name: 'other' }] }),
      /^setting "gateways" .*: gateways\[1\]\.cidrs\[0\]: "203\.0\.113\.0\/28" overlaps gateways\[0\]\.cidrs\[0\]/,
    ],
    [
      sources({
        env: { CDNI_GATEWAYS: '[{"name":"op","cidrs":["10.1.0.0/16"],"countryCode":"86"}]' },
        flags: { root: 'x', 'trusted-proxies': '10.0.0.0/8' },
      }),
      /^settings "trustedProxies" and "gateways": gateways\[0\]\.cidrs\[0\]: "10\.1\.0\.0\/16" overlaps trustedProxies\[0\]/,
    ],
  ]
  for (const [from, message] of cases) {
    t.throws(() => loadConfig(from), { name: 'ConfigError', message }, String(message))
  }
  t.match(
    loadConfig(
      file({
        enforcedElsewhere: ['MI.SourceMetadata'],
        trustedProxies: ['10.0.0.0/8'],
        gateways: [{ ...gateway, msisdnHeaders: ['X-MSISDN'], allowDoubleZero: true }],
      }),
    ),
    {
      enforcedElsewhere: ['MI.SourceMetadata'],
      gateways: [{ msisdnHeaders: ['X-MSISDN'] }],
    },
    'valid values pass as they were written',
  )
})
