// RFC 8006 metadata through every entry point: the plugin's option and update(), the push API
// (both content types), validate and check in the CLI. Per host and path, on real requests.
import { buildApp, type LogLine } from './helpers/app.js'
import t from 'tap'
import Fastify from 'fastify'
import http from 'node:http'
import { Writable } from 'node:stream'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import cdniAuthz, { validateMetadata } from '../src/index.js'
import { compileMetadata } from '../src/load/prepare.js'
import type { CompiledSite } from '../src/policy/site.js'
import { transferList } from '../src/load/prepare.js'
import { main } from '../src/surrogate/cli.js'
import { AUTH, config, start } from './helpers/surrogate.js'

const acl = (type: string, value: unknown) => ({ 'generic-metadata-type': type, 'generic-metadata-value': value })
const allow = (...cidrs: string[]) =>
  acl('MI.LocationACL', {
    locations: [{ action: 'allow', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': cidrs }] }],
  })
const SITE = {
  hosts: [
    {
      host: 'video.example.com',
      'host-metadata': {
        metadata: [allow('10.0.0.0/8')],
        paths: [
          { 'path-pattern': { pattern: '/free/*' }, 'path-metadata': { metadata: [acl('MI.LocationACL', {})] } },
          {
            'path-pattern': { pattern: '/secret/*' },
            'path-metadata': { metadata: [acl('MI.Auth', { 'auth-type': 'MI.Auth.Token' })] },
          },
        ],
      },
    },
    {
      host: 'live.example.com:8080',
      'host-metadata': {
        metadata: [acl('MI.ProtocolACL', { 'protocol-acl': [{ action: 'allow', protocols: ['https/1.1'] }] })],
      },
    },
  ],
}

const build = (metadata: unknown, lines: LogLine[] = [], enforcedElsewhere?: string[]) =>
  buildApp(t, enforcedElsewhere ? { metadata, enforcedElsewhere } : { metadata }, lines)

t.test('the plugin enforces per host and path, and says why it denied', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(SITE, lines)
  const get = (host: string, url: string, remoteAddress = '10.1.1.1') =>
    app.inject({ url, remoteAddress, headers: { host } }).then((r) => r.statusCode)
  t.match(app.cdniAuthz.summary, { hosts: 2 })
  t.equal(await get('video.example.com', '/a.mp4'), 200)
  t.equal(await get('VIDEO.EXAMPLE.COM', '/a.mp4', '11.1.1.1'), 403, 'the host LocationACL')
  t.equal(await get('video.example.com', '/free/a.mp4?token=1', '11.1.1.1'), 200, 'the path replaces it')
  t.equal(await get('video.example.com', '/free/a.mp4?token=2', '11.1.1.1'), 200, 'again, from the selection cache')
  t.equal(
    await get('video.example.com', '/secret/a', '10.1.1.1'),
    403,
    'mandatory MI.Auth is not enforced here: denied',
  )
  t.equal(await get('live.example.com:8080', '/x', '11.1.1.1'), 403, 'https only')
  t.equal(await get('elsewhere.example.com', '/a.mp4'), 403, 'no HostMatch')
  const denials = lines.filter((line) => line.msg === 'cdni-authz: request denied')
  t.same(
    denials.map((line) => (line.cdniAuthz as { reason: string }).reason),
    ['no-rule-matched', 'unenforceable', 'no-rule-matched', 'no-host-matched'],
  )
  t.match(denials[1], {
    cdniAuthz: {
      node: '/hosts/0/host-metadata/paths/1',
      rule: '/hosts/0/host-metadata/paths/1/path-metadata/metadata/0',
      unenforceable: ['MI.Auth'],
    },
  })
  t.same(app.cdniAuthz.counts.denied, {
    'no-policy': 0,
    'no-rule-matched': 2,
    'deny-rule': 0,
    'no-host-matched': 1,
    'bad-request-target': 0,
    unenforceable: 1,
    'unknowable-source': 0,
    'unknowable-handset': 0,
    'unknowable-msisdn': 0,
    'unknowable-protocol': 0,
    'metadata-stale': 0,
  })
  t.match(
    lines.find((line) => line.msg === 'cdni-authz: metadata warning'),
    { cdniAuthz: { warning: { message: /MI.Auth is mandatory-to-enforce/ } } },
  )
  // A deny rule decides too, and explain() tells the node and the rule.
  app.cdniAuthz.update({
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [
            acl('MI.LocationACL', {
              locations: [
                { action: 'deny', footprints: [{ 'footprint-type': 'ipv4cidr', 'footprint-value': ['10.0.0.0/8'] }] },
              ],
            }),
          ],
        },
      },
    ],
  })
  t.equal(await get('video.example.com', '/a'), 403)
  t.equal(app.cdniAuthz.counts.denied['deny-rule'], 1)
  t.match(lines.filter((line) => line.msg === 'cdni-authz: request denied').at(-1), {
    cdniAuthz: { reason: 'deny-rule', rule: '/hosts/0/host-metadata/metadata/0/generic-metadata-value/locations/0' },
  })
})

t.test('explain() and a switch back to the seed format', async (t) => {
  const app = Fastify()
  await app.register(cdniAuthz, { metadata: SITE })
  app.get('/free/why', async (request) => app.cdniAuthz.explain(request))
  t.teardown(() => app.close())
  const why = await app.inject({ url: '/free/why', remoteAddress: '11.1.1.1', headers: { host: 'video.example.com' } })
  t.match(why.json(), { selected: '/hosts/0/host-metadata/paths/0', allowed: true })
  app.cdniAuthz.update({ deliveryCriteria: [{ region: { subnet: '11.0.0.0/8' } }] })
  t.match((await app.inject({ url: '/free/why', remoteAddress: '11.1.1.1' })).json(), {
    allowed: true,
    decidedBy: '/deliveryCriteria',
  })
  t.notOk('hosts' in (app.cdniAuthz.summary ?? {}), 'the seed format is live again')
})

t.test('a refused RFC 8006 update keeps the live policy', async (t) => {
  const app = await build(SITE)
  t.throws(() => app.cdniAuthz.update({ hosts: [{ host: 'x' }] }), {
    statusCode: 400,
    errors: [{ pointer: '/hosts/0/host-metadata' }],
  })
  t.match(app.cdniAuthz.summary, { hosts: 2 })
  t.equal(app.cdniAuthz.version, 1, 'the refused document is not counted')
  const get = (remoteAddress: string) =>
    app.inject({ url: '/a.mp4', remoteAddress, headers: { host: 'video.example.com' } }).then((r) => r.statusCode)
  t.equal(await get('10.1.1.1'), 200, "the live document's LocationACL still allows")
  t.equal(await get('11.1.1.1'), 403, 'and still denies')
})

t.test('a route that opted out is served on a host no HostMatch covers', async (t) => {
  const app = Fastify()
  await app.register(cdniAuthz, { metadata: SITE })
  app.get('/status', { config: { cdniAuthz: false } }, async () => 'up')
  t.teardown(() => app.close())
  t.equal(
    (await app.inject({ url: '/status', remoteAddress: '11.1.1.1', headers: { host: 'nowhere.example' } })).statusCode,
    200,
  )
})

t.test(
  'the tables of every distinct policy of a site are in its transfer list, so they cross to the worker',
  async (t) => {
    const compiled = compileMetadata(SITE, { gatewaysConfigured: false, countryDatabase: false, asnDatabase: false })
    if (!compiled.ok) throw new Error('SITE is valid')
    const site = compiled.compiled as CompiledSite
    const list = transferList(site)
    t.equal(site.policies.length, 2)
    t.ok(
      site.policies.every(
        (policy) =>
          list.includes(policy.subnetV4.table.entries.buffer as ArrayBuffer) &&
          list.includes(policy.subnetV4.bits.buffer as ArrayBuffer),
      ),
      'the tables of every distinct policy are transferred',
    )
  },
)

t.test('with several ACLs in force, the deny line names the one that denied', async (t) => {
  const lines: Record<string, unknown>[] = []
  const app = await build(
    {
      hosts: [
        {
          host: 'a.example',
          'host-metadata': {
            metadata: [
              allow('10.0.0.0/8'),
              acl('MI.TimeWindowACL', { times: [{ action: 'allow', windows: [{ start: 0, end: 4102444800 }] }] }),
              acl('MI.ProtocolACL', { 'protocol-acl': [{ protocols: ['http/1.1'] }] }),
            ],
          },
        },
      ],
    },
    lines,
  )
  t.equal((await app.inject({ url: '/', remoteAddress: '10.1.1.1', headers: { host: 'a.example' } })).statusCode, 403)
  t.match(
    lines.find((line) => line.msg === 'cdni-authz: request denied'),
    {
      cdniAuthz: {
        reason: 'deny-rule',
        rule: '/hosts/0/host-metadata/metadata/2/generic-metadata-value/protocol-acl/0',
      },
    },
  )
})

t.test('a TimeWindowACL reads the clock: a window around now allows, one that has ended denies', async (t) => {
  const lines: Record<string, unknown>[] = []
  const now = Math.floor(Date.now() / 1000)
  const window = (start: number, end: number) =>
    acl('MI.TimeWindowACL', { times: [{ action: 'allow', windows: [{ start, end }] }] })
  const app = await build(
    {
      hosts: [
        { host: 'open.example', 'host-metadata': { metadata: [window(now - 3600, now + 3600)] } },
        { host: 'ended.example', 'host-metadata': { metadata: [window(now - 7200, now - 3600)] } },
      ],
    },
    lines,
  )
  const get = (host: string) =>
    app.inject({ url: '/', remoteAddress: '10.1.1.1', headers: { host } }).then((r) => r.statusCode)
  t.equal(await get('open.example'), 200, 'inside the window')
  t.equal(await get('ended.example'), 403, 'after the window')
  t.match(
    lines.find((line) => line.msg === 'cdni-authz: request denied'),
    { cdniAuthz: { reason: 'no-rule-matched', node: '/hosts/1' } },
  )
})

t.test('a logger quieter than info gets no deny line, and the denial is still counted', async (t) => {
  const written: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      written.push(String(chunk))
      callback()
    },
  })
  const quiet = Fastify({ logger: { level: 'warn', stream } })
  await quiet.register(cdniAuthz, { metadata: SITE })
  quiet.get('/*', async () => 'ok')
  t.teardown(() => quiet.close())
  t.match(written.join(''), /cdni-authz: metadata warning/, 'the logger is captured: the load warnings are written')
  t.equal(
    (await quiet.inject({ url: '/', remoteAddress: '11.1.1.1', headers: { host: 'video.example.com' } })).statusCode,
    403,
  )
  t.equal(quiet.cdniAuthz.counts.denied['no-rule-matched'], 1)
  t.notMatch(written.join(''), /cdni-authz: request denied/, 'no deny line written')
})

t.test('enforcedElsewhere: types the edge enforces elsewhere do not deny', async (t) => {
  const app = await build(SITE, [], ['MI.Auth'])
  t.equal(
    (await app.inject({ url: '/secret/a', remoteAddress: '10.1.1.1', headers: { host: 'video.example.com' } }))
      .statusCode,
    200,
  )
})

t.test('validateMetadata takes both formats', async (t) => {
  t.match(validateMetadata(SITE), { ok: true, errors: [], warnings: [{ message: /MI.Auth is mandatory-to-enforce/ }] })
  t.match(validateMetadata({ hosts: [{ host: 'x' }] }), {
    ok: false,
    errors: [{ pointer: '/hosts/0/host-metadata', message: 'is required' }],
  })
  t.match(validateMetadata({ nothing: 1 }), { ok: false, errors: [{ message: /"hosts"/ }] })
})

t.test('the push API takes RFC 8006 as JSON or as application/cdni; ptype=MI.HostIndex', async (t) => {
  // SITE names two hosts: the folder must be per host for the surrogate to take it.
  const perHost = () => {
    const cfg = config({ rootLayout: 'per-host' })
    mkdirSync(join(cfg.root as string, 'video.example.com'))
    writeFileSync(join(cfg.root as string, 'video.example.com', 'hello.txt'), 'hello')
    return cfg
  }
  const s = await start(perHost())
  t.teardown(() => s.surrogate.close())
  const cdni = { 'content-type': 'application/cdni; ptype=MI.HostIndex' }
  const accepted = await s.push(SITE, cdni)
  t.equal(accepted.status, 200)
  t.match(await accepted.json(), { version: 1, summary: { hosts: 2 }, warnings: [{ message: /MI.Auth/ }] })
  const content = new URL(s.contentUrl)
  // fetch() sets Host itself: node:http sends the one a test names.
  const as = (host: string, path: string) =>
    new Promise<number>((resolve, reject) =>
      http
        .get(
          {
            hostname: content.hostname,
            port: content.port,
            path,
            headers: { host, 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'http' },
          },
          (r) => {
            r.resume()
            r.on('end', () => resolve(r.statusCode as number))
          },
        )
        .on('error', reject),
    )
  t.equal(await as('video.example.com', '/hello.txt'), 200)
  t.equal(await as('video.example.com', '/secret/hello.txt'), 403)
  t.equal(await as(content.host, '/hello.txt'), 403, 'the address the surrogate listens on is no HostMatch')
  t.equal((await s.push(SITE)).status, 200, 'application/json works too')
  const wrongType = await s.push(SITE, { 'content-type': 'application/cdni; ptype=MI.HostMetadata' })
  t.equal(wrongType.status, 415)
  t.match(await wrongType.json(), {
    message: 'application/cdni takes ptype=MI.HostIndex (the whole metadata tree), not ptype=MI.HostMetadata',
  })
  t.match(await (await s.push(SITE, { 'content-type': 'application/cdni' })).json(), {
    statusCode: 415,
    message: /not no ptype/,
  })
  const seedAsCdni = await s.push({ deliveryCriteria: [{ protocol: 'http' }] }, cdni)
  t.equal(seedAsCdni.status, 400)
  t.match(await seedAsCdni.json(), { errors: [{ message: /no HostIndex/ }] })
  const elsewhere = await start({ ...perHost(), enforcedElsewhere: ['MI.Auth'] })
  t.teardown(() => elsewhere.surrogate.close())
  t.match(
    await (await elsewhere.push(SITE)).json(),
    { version: 1, warnings: [] },
    'the surrogate setting enforcedElsewhere reaches the plugin',
  )
  t.equal(
    (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH }).then((r) => r.json() as Promise<{ hosts: unknown[] }>))
      .hosts.length,
    2,
    'the live document is the last accepted one',
  )
})

t.test('the CLI validates and checks RFC 8006 metadata', async (t) => {
  const dir = t.testdir({ 'site.json': JSON.stringify(SITE) })
  const file = join(dir, 'site.json')
  const run = async (argv: string[]) => {
    const io = {
      out: '',
      err: '',
      stdout: (s: string) => {
        io.out += s
      },
      stderr: (s: string) => {
        io.err += s
      },
      env: {},
      cwd: process.cwd(),
      stopSignal: () => new Promise<string>(() => {}),
    }
    return { code: await main(argv, io), ...io }
  }
  const valid = await run(['validate', file])
  t.equal(valid.code, 0)
  t.match(valid.out + valid.err, /MI\.Auth is mandatory-to-enforce/)
  const allowed = await run([
    'check',
    '--metadata',
    file,
    '--peer',
    '10.1.1.1',
    '--host',
    'video.example.com',
    '--url',
    '/a.mp4',
  ])
  t.equal(allowed.code, 0)
  t.match(allowed.out, /^ALLOW: decided by \/hosts\/0\n/)
  const denied = await run(['check', '--metadata', file, '--peer', '11.1.1.1', '--host', 'video.example.com'])
  t.equal(denied.code, 1)
  t.match(denied.out, /^DENY: no rule matched \(failed: region\)/)
  const noHost = await run(['check', '--metadata', file, '--peer', '10.1.1.1'])
  t.equal(noHost.code, 1)
  t.match(noHost.out, /^DENY: no HostMatch for host null/)
  const badTarget = await run([
    'check',
    '--metadata',
    file,
    '--peer',
    '10.1.1.1',
    '--host',
    'video.example.com',
    '--url',
    '/secret\\a.mp4',
  ])
  t.equal(badTarget.code, 1)
  t.match(
    badTarget.out,
    /^DENY: request target "\/secret\\\\a\.mp4" refused \(bad-request-target\)/,
    'not "no HostMatch": the host has one',
  )
  writeFileSync(file, JSON.stringify({ hosts: [{ host: 'a b', 'host-metadata': { metadata: [] } }] }))
  const invalid = await run(['validate', file])
  t.equal(invalid.code, 1)
  t.match(invalid.out + invalid.err, /\/hosts\/0\/host/)
})
