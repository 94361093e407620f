import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main, type Io } from '../src/surrogate/cli.js'
import { SETTINGS } from '../src/surrogate/config.js'
import { TOKEN, workspace } from './helpers/surrogate.js'
import { buildMmdb } from './helpers/mmdb.js'

function io(stop: Promise<string> = new Promise(() => {})): Io & { out: string; err: string } {
  const captured = {
    out: '',
    err: '',
    stdout: (text: string) => {
      captured.out += text
    },
    stderr: (text: string) => {
      captured.err += text
    },
    env: {},
    cwd: process.cwd(),
    stopSignal: () => stop,
  }
  return captured
}

const dir = t.testdir({
  'valid.json': JSON.stringify({ deliveryCriteria: [{ region: { subnet: '10.1.0.54/18' } }, { protocol: 'http' }] }),
  'mobile.json': JSON.stringify({ deliveryCriteria: [{ region: { subnet2: '10.5.31.0/24', msdnPrefix: '135038' } }] }),
  'invalid.json': JSON.stringify({ deliveryCriteria: [{ region: { subnet: '10.0.0.0/33', country: 'ZZ' } }] }),
  // The seed's Example Object 3 as printed: a trailing comma and a missing one.
  'seed-verbatim.json':
    '{ "deliveryCriteria" :\n  [\n    {\n      "region" : { "msdnPrefix" : "135038" },\n    }\n    {\n      "protocol" : "http"\n    }\n  ]\n}\n',
  'two-warnings.json': JSON.stringify({ deliveryCriteria: [{ region: { subnet: ['10.1.0.1/16', '10.2.0.1/16'] } }] }),
  'profiles.json': JSON.stringify({
    deliveryProfiles: [
      {
        deliveryCriteria: [{ region: { subnet: '10.9.0.0/16' } }, { region: { subnet: '10.8.0.0/16' } }],
        deliveryRules: { allow: false },
      },
      { deliveryCriteria: [{ protocol: 'http' }], deliveryRules: { allow: true } },
    ],
  }),
  'gateway.json': JSON.stringify({
    trustedProxies: ['192.0.2.0/29'],
    gateways: [{ name: 'op', cidrs: ['203.0.113.0/28'], countryCode: '86' }],
  }),
})
const file = (name: string) => join(dir, name)

t.test('usage, help and unknown commands', async (t) => {
  const none = io()
  t.equal(await main([], none), 2)
  t.match(none.out, /Usage: cdni-authz <command>/)
  const help = io()
  t.equal(await main(['--help'], help), 0)
  const unknown = io()
  t.equal(await main(['frobnicate'], unknown), 2)
  t.match(unknown.err, /unknown command "frobnicate"/)
  for (const command of ['serve', 'validate', 'check']) {
    const each = io()
    t.equal(await main([command, '--help'], each), 0)
    t.match(each.out, new RegExp(`Usage: cdni-authz ${command}`))
  }
  const badFlag = io()
  t.equal(await main(['validate', '--nope'], badFlag), 2)
  t.match(badFlag.err, /nope/)
})

t.test(
  'help: every flag a command takes has a line, every line names a flag it takes, the texts in one column',
  async (t) => {
    for (const command of ['serve', 'validate', 'check']) {
      const help = io()
      t.equal(await main([command, '--help'], help), 0)
      const lines = help.out.split('\n').filter((line) => line.startsWith('  --'))
      const columns = new Set(lines.map((line) => /^ {2}--[\w-]+(?: (?:"[^"]*"|\S+))? {2,}/.exec(line)?.[0].length))
      t.equal(columns.size, 1, `${command}: each text two spaces or more past its flag, all in one column`)
      for (const line of lines) {
        const [, flag = '', value] = /^ {2}(--[\w-]+)( \S)?/.exec(line) ?? []
        const taken = io()
        t.equal(
          await main([command, flag, ...(value === undefined ? [] : ['x']), '--help'], taken),
          0,
          `${command} takes ${flag}`,
        )
      }
    }
    const serve = io()
    await main(['serve', '--help'], serve)
    for (const s of SETTINGS) t.match(serve.out, `  --${s.flag} VALUE `, `serve --help names --${s.flag}`)
    t.equal(
      serve.out.split('\n').filter((line) => line.startsWith('  --')).length,
      SETTINGS.length + 2,
      'and --config and --help besides',
    )
    const check = io()
    await main(['check', '--help'], check)
    t.match(check.out, /\n {2}--header "NAME: VALUE" +any other request header \(repeatable\)\n/)
  },
)

t.test('validate: exit 0 when every file is valid, 1 otherwise, with pointers or line and column', async (t) => {
  const ok = io()
  t.equal(await main(['validate', file('valid.json')], ok), 0)
  t.match(
    ok.out,
    /valid\.json: valid \(1 warning\)\n {2}warning \/deliveryCriteria\/0\/region\/subnet: "10\.1\.0\.54\/18" has host bits set/,
  )
  const bad = io()
  t.equal(
    await main(
      ['validate', file('valid.json'), file('invalid.json'), file('seed-verbatim.json'), file('missing.json')],
      bad,
    ),
    1,
  )
  t.match(
    bad.out,
    /invalid\.json: invalid\n {2}error \/deliveryCriteria\/0\/region\/subnet: .*0–32.*\n {2}error \/deliveryCriteria\/0\/region\/country: "ZZ"/,
  )
  t.match(bad.out, /seed-verbatim\.json: invalid\n {2}error \(document\): invalid JSON at line 5, column 5/)
  t.match(bad.out, /missing\.json: invalid\n {2}error \(document\): cannot read/)
  const plural = io()
  t.equal(await main(['validate', file('two-warnings.json')], plural), 0)
  t.match(plural.out, /two-warnings\.json: valid \(2 warnings\)/)
  const warned = io()
  t.equal(await main(['validate', file('mobile.json')], warned), 0)
  t.match(warned.out, /mobile\.json: valid \(1 warning\)/)
  t.match(warned.out, /needs a trusted operator gateway/)
  const configured = io()
  t.equal(await main(['validate', '--config', file('gateway.json'), file('mobile.json')], configured), 0)
  t.match(configured.out, /mobile\.json: valid\n$/, 'no warning once the config names a gateway')
  const json = io()
  t.equal(await main(['validate', '--json', file('invalid.json')], json), 1)
  t.match(JSON.parse(json.out), [
    {
      ok: false,
      errors: [{ pointer: '/deliveryCriteria/0/region/subnet' }, { pointer: '/deliveryCriteria/0/region/country' }],
    },
  ])
  const nothing = io()
  t.equal(await main(['validate'], nothing), 2)
})

t.test('check: allow or deny, which rule decided, and every field', async (t) => {
  const allow = io()
  t.equal(await main(['check', '--metadata', file('valid.json'), '--peer', '10.1.2.3'], allow), 0)
  t.match(
    allow.out,
    /^ALLOW: decided by \/deliveryCriteria\nfacts: source 10\.1\.2\.3 \(direct\), handset none, msisdn none, protocol http/,
  )
  t.match(allow.out, /region \/deliveryCriteria\/0\/region: matches \(subnet yes\)/)
  const deny = io()
  t.equal(
    await main(
      [
        'check',
        '--metadata',
        file('valid.json'),
        '--peer',
        '10.2.0.1',
        '--protocol',
        'https',
        '--time',
        '2026-06-01T00:00:00Z',
      ],
      deny,
    ),
    1,
  )
  t.match(deny.out, /^DENY: no rule matched \(failed: region, protocol\)/)
  t.match(deny.out, /time 2026-06-01T00:00:00\.000Z/)
  const mobile = io()
  t.equal(
    await main(
      [
        'check',
        '--config',
        file('gateway.json'),
        '--metadata',
        file('mobile.json'),
        '--peer',
        '192.0.2.1',
        '--xff',
        '10.5.31.9, 203.0.113.1',
        '--msisdn',
        '8613503812345',
        '--header',
        'X-Forwarded-Proto: http',
      ],
      mobile,
    ),
    0,
  )
  t.match(mobile.out, /source 203\.0\.113\.1 \(op\), handset 10\.5\.31\.9, msisdn 8613503812345/)
  t.match(mobile.out, /\(subnet2 yes, msisdn yes\)/)
  const twoLines = io()
  t.equal(
    await main(
      [
        'check',
        '--config',
        file('gateway.json'),
        '--metadata',
        file('mobile.json'),
        '--peer',
        '192.0.2.1',
        '--xff',
        '10.5.31.9, 203.0.113.1',
        '--msisdn',
        '8613503812345',
        '--header',
        'X-Forwarded-Proto: http',
        '--header',
        'x-forwarded-proto: http',
      ],
      twoLines,
    ),
    0,
    'mobile.json names no protocol',
  )
  t.match(twoLines.out, /protocol unknown/, 'two X-Forwarded-Proto lines name no protocol, as they would in the server')
  const twin = io()
  t.equal(
    await main(
      [
        'check',
        '--config',
        file('gateway.json'),
        '--metadata',
        file('mobile.json'),
        '--peer',
        '192.0.2.1',
        '--xff',
        '10.5.31.9, 203.0.113.1',
        '--msisdn',
        '8613503812345',
        '--header',
        'X-Forwarded-Proto: http',
        '--header',
        'x_up_calling_line_id: 1',
      ],
      twin,
    ),
    1,
  )
  t.match(
    twin.out,
    /^DENY: unknowable: msisdn \(there, but not to be believed; denied before any rule\)/,
    'a twin of the MSISDN header: denied, and the CLI says why',
  )
  const json = io()
  t.equal(
    await main(
      [
        'check',
        '--json',
        '--gateways',
        '[{"name":"g","cidrs":["198.51.100.0/24"],"countryCode":"86"}]',
        '--metadata',
        file('mobile.json'),
        '--peer',
        '198.51.100.1',
        '--xff',
        '10.5.31.9',
        '--msisdn',
        '8613603812345',
      ],
      json,
    ),
    1,
  )
  t.match(JSON.parse(json.out), {
    facts: { via: 'g', handset: '10.5.31.9' },
    allowed: false,
    rules: [{ clauses: [{ regions: [{ fields: { subnet2: true, msisdn: false } }] }] }],
  })
})

t.test('check: deny rules, merged regions, and facts that could not be established', async (t) => {
  const embargo = io()
  t.equal(await main(['check', '--metadata', file('profiles.json'), '--peer', '10.9.1.1'], embargo), 1)
  t.match(embargo.out, /^DENY: decided by \/deliveryProfiles\/0\n/)
  t.match(embargo.out, /rule \/deliveryProfiles\/0 \(deny\): matches/)
  t.match(embargo.out, /region \/deliveryProfiles\/0\/deliveryCriteria\/0\/region and 1 more: matches \(subnet yes\)/)
  const unknown = io()
  t.equal(
    await main(
      ['check', '--config', file('gateway.json'), '--metadata', file('profiles.json'), '--peer', '192.0.2.1'],
      unknown,
    ),
    1,
  )
  t.match(unknown.out, /facts: source none \(direct\), handset none, msisdn none, protocol unknown/)
  const header = io()
  t.equal(
    await main(
      [
        'check',
        '--json',
        '--gateways',
        '[{"name":"g","cidrs":["198.51.100.0/24"],"countryCode":"86","msisdnHeaders":["X-MSISDN"]}]',
        '--metadata',
        file('mobile.json'),
        '--peer',
        '198.51.100.1',
        '--xff',
        '10.5.31.9',
        '--msisdn',
        '8613503812345',
      ],
      header,
    ),
    0,
    "the number goes in the gateway's own header",
  )
  const noGateway = io()
  t.equal(
    await main(
      ['check', '--json', '--metadata', file('mobile.json'), '--peer', '198.51.100.1', '--msisdn', '8613503812345'],
      noGateway,
    ),
    1,
  )
  t.match(
    JSON.parse(noGateway.out),
    { facts: { msisdn: null, via: 'direct' } },
    'no gateway: the header is not believed',
  )
})

t.test('check: wrong input exits 2 with the reason', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--peer', '10.0.0.1'], /--metadata and --peer are required/],
    [
      ['--metadata', file('valid.json'), '--peer', '10.0.0.1', '--protocol', 'gopher'],
      /--protocol must be http or https/,
    ],
    [['--metadata', file('valid.json'), '--peer', '10.0.0.1', '--time', 'yesterday'], /--time must be an RFC 3339/],
    [['--metadata', file('missing.json'), '--peer', '10.0.0.1'], /cannot read/],
    [['--metadata', file('invalid.json'), '--peer', '10.0.0.1'], /invalid\.json: invalid\n {2}error/],
    [['--metadata', file('valid.json'), '--peer', '10.0.0.1', '--header', 'no colon'], /must be "Name: value"/],
    [
      ['--metadata', file('valid.json'), '--peer', '10.0.0.1', '--trusted-proxies', '10.0.0.1/8'],
      /trustedProxies\[0\].*host bits/,
    ],
  ]
  for (const [args, message] of cases) {
    const run = io()
    const code = await main(['check', ...args], run)
    t.equal(code, 2, String(message))
    t.match(run.err, message)
  }
})

/** A config file for `serve` in a fresh workspace: listeners on any port, the test token, silent. */
function serveConfig(): { configFile: string; root: string } {
  const { root, stateDir } = workspace()
  const configFile = join(root, '..', 'config.json')
  writeFileSync(
    configFile,
    JSON.stringify({ port: 0, apiPort: 0, root, stateDir, apiToken: TOKEN, logLevel: 'silent' }),
  )
  return { configFile, root }
}

/** Runs `serve` with `args` until it says where it listens; `stop` sends it a signal. */
async function startServe(args: string[], prepare: (run: ReturnType<typeof io>) => void = () => {}) {
  let stop: (signal: string) => void = () => {}
  const run = io(new Promise((resolve) => (stop = resolve)))
  prepare(run)
  const finished = main(['serve', ...args], run)
  const deadline = Date.now() + 30_000
  while (!run.out.includes('push API')) {
    if (Date.now() > deadline) throw new Error(`serve did not start: ${run.err}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { run, finished, stop }
}

t.test('serve: --follow is repeatable on the command line, one source per flag', async (t) => {
  const { configFile } = serveConfig()
  // Nothing listens on the discard port: both sources fail, and their hosts stay denied.
  const sources = ['http://127.0.0.1:9/a/index', 'http://127.0.0.1:9/b/index'] as const
  const { run, finished, stop } = await startServe([
    '--config',
    configFile,
    '--follow',
    sources[0],
    '--follow',
    sources[1],
  ])
  const api = /push API on (\S+)\/cdni\/metadata/.exec(run.out)?.[1] as string
  const report = (await fetch(`${api}/cdni/status`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) =>
    r.json(),
  )) as { following: { url: string }[] }
  t.same(
    report.following.map((source) => source.url),
    sources,
  )
  stop('SIGTERM')
  t.equal(await finished, 0)
})

t.test('serve: prints where it listens, and stops cleanly on the signal', async (t) => {
  const { configFile, root } = serveConfig()
  const { run, finished, stop } = await startServe(['--config', configFile])
  const url = /serving content on (\S+)/.exec(run.out)?.[1] as string
  t.equal((await fetch(`${url}/hello.txt`)).status, 403, 'no metadata yet: denied')
  stop('SIGTERM')
  t.equal(await finished, 0)
  t.match(run.out, /SIGTERM received, finishing in-flight requests/)
  // SIGHUP (here, the registered handler) re-reads the databases; a broken file leaves them.
  const geo = join(root, '..', 'country.mmdb')
  writeFileSync(geo, buildMmdb([['10.0.0.0/8', { country_code: 'FR' }]], { databaseType: 'country-v1' }))
  let reload: () => void = () => {}
  const {
    run: geoRun,
    finished: serving,
    stop: stopGeo,
  } = await startServe(['--config', configFile, '--country-db', geo], (run) => {
    run.onReload = (handler) => (reload = handler)
  })
  writeFileSync(geo, buildMmdb([['10.0.0.0/8', { country_code: 'DE' }]], { databaseType: 'country-v2-longer-name' }))
  reload()
  t.match(geoRun.out, /databases reloaded: country .*country\.mmdb \(country-v2-longer-name\), AS none/)
  writeFileSync(geo, 'truncated')
  reload()
  t.match(geoRun.err, /database reload failed, the databases in use stay: .*country\.mmdb is not a MaxMind DB/)
  stopGeo('SIGTERM')
  t.equal(await serving, 0)
  const misconfigured = io()
  t.equal(await main(['serve', '--port', 'eighty'], misconfigured), 2)
  t.match(misconfigured.err, /setting "port"/)
  const noDatabase = io()
  t.equal(
    await main(['serve', '--config', configFile, '--asn-db', 'GeoLite2-ASN.mmdb'], noDatabase),
    2,
    'a database that is not there: a configuration error',
  )
  t.match(noDatabase.err, /cannot read the IP database: ENOENT.*GeoLite2-ASN\.mmdb/)
  // A port already taken is not the operator's typo but the machine's state: exit 1.
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const busy = io()
  t.equal(
    await main(['serve', '--config', configFile, '--port', String((taken.address() as AddressInfo).port)], busy),
    1,
  )
  t.match(busy.err, /EADDRINUSE/)
})

t.test(
  'the real program re-reads its databases on SIGHUP, drains an in-flight request on SIGTERM, then exits 0',
  async (t) => {
    const { default: Fastify } = await import('fastify')
    // A slow origin keeps a request in flight while the signal arrives.
    const origin = Fastify()
    origin.get('/*', async () => {
      await new Promise((resolve) => setTimeout(resolve, 700))
      return 'slow content'
    })
    const originUrl = await origin.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => origin.close())
    const { stateDir, base } = workspace()
    const metadata = join(base, 'allow.json')
    writeFileSync(metadata, JSON.stringify({ deliveryCriteria: [{ protocol: ['http', 'https'] }] }))
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        new URL('../src/surrogate/cli.ts', import.meta.url).pathname,
        'serve',
        '--port',
        '0',
        '--api-port',
        '0',
        '--origin',
        originUrl,
        '--state-dir',
        stateDir,
        '--metadata',
        metadata,
        '--log-level',
        'silent',
      ],
      {
        env: { ...process.env, CDNI_API_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const deadline = Date.now() + 30000
    while (!out.includes('push API') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    const url = /serving content on (\S+)/.exec(out)?.[1] as string
    t.ok(url, 'the server started')
    // SIGHUP re-reads the databases and leaves the process serving (its default would end it).
    child.kill('SIGHUP')
    while (!out.includes('databases reloaded') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.match(out, /databases reloaded: country .*iptoasn-country\.mmdb \(country ipvAll\), AS none/)
    const inFlight = fetch(`${url}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }))
    await new Promise((resolve) => setTimeout(resolve, 200))
    child.kill('SIGTERM')
    t.same(await inFlight, { status: 200, body: 'slow content' }, 'the in-flight request completes')
    t.equal(await exited, 0)
  },
)
