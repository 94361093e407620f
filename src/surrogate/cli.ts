#!/usr/bin/env node
/**
 * cdni-authz: serve, validate, check. `main` takes its arguments and streams so the tests drive
 * it in-process; the last lines run it when this file is the program.
 */
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { compileTrust, extractClientFacts, gatewayName } from '../facts/trust-walk.js'
import { createClientFacts } from '../facts/facts.js'
import { explain, type Explanation } from '../policy/explain.js'
import { ConfigError, databaseOptions, loadConfig, SETTINGS, type ServerConfig } from './config.js'
import { InvalidOptionError } from '../errors.js'
import { fillGeoFacts, geoContext, openGeoDatabases, type GeoDatabases } from '../facts/ip-database.js'
import { formatAddress } from '../facts/address.js'
import { parseTimestamp, type LoadContext } from '../load/translate.js'
import { parseMetadataText } from '../load/parse-text.js'
import type { Problem } from '../policy/model.js'
import { preparePolicy, validateMetadata } from '../load/prepare.js'
import { canonicalPath } from '../policy/request-target.js'
import { explainSite } from '../policy/site.js'
import { createSurrogate } from './server.js'

export interface Io {
  stdout: (text: string) => void
  stderr: (text: string) => void
  env: Record<string, string | undefined>
  cwd: string
  /** Resolves when serving should stop (SIGTERM / SIGINT in the real program). */
  stopSignal: () => Promise<string>
  /** Registers what to do when asked to re-read the IP databases (SIGHUP in the real program). */
  onReload?: (handler: () => void) => void
}

const USAGE = `Usage: cdni-authz <command> [options]

Commands:
  serve       run the surrogate (content behind the authorizer) and the metadata push API
  validate    check metadata files: JSON syntax with line and column, every schema error by pointer
  check       decide one request against a metadata file, and say which rule or criterion decided

Run "cdni-authz <command> --help" for the options of a command.
`

const SERVE_HELP = `Usage: cdni-authz serve [--config FILE] [options]

Serves content (a folder, or a proxied origin) behind CDNI authorization, and the push API on
its own listener. Settings come from built-in defaults, then the config file, then environment
variables, then flags.

Options:
  --config FILE            JSON config file
${SETTINGS.map((s) => `  --${(s.flag + ' VALUE').padEnd(23)}${s.help} (env ${s.env})`).join('\n')}
  --help                   this text

Stops on SIGTERM or SIGINT after in-flight requests finish. SIGHUP re-reads the country and AS
databases (after geoipupdate, say); if one cannot be read, the ones in use stay.
`

const VALIDATE_HELP = `Usage: cdni-authz validate [--config FILE] [--json] FILE...

Checks each metadata file. Exit status 0 when all are valid, 1 otherwise.
  --config FILE      the surrogate's config, so that warnings know its gateways and databases
  --country-db FILE  country database (.mmdb), "bundled" (default) or "none"
  --asn-db FILE      AS-number database (.mmdb) or "none" (default)
  --json             print the reports as JSON
  --help             this text
`

const CHECK_HELP = `Usage: cdni-authz check --metadata FILE --peer ADDRESS [options]

Decides one request and explains the decision field by field: the tool for "I get 403".
Exit status 0 when allowed, 1 when denied, 2 when the input is wrong.
  --metadata FILE         the metadata document
  --peer ADDRESS          the TCP peer address the surrogate would see
  --xff LIST              X-Forwarded-For value
  --msisdn NUMBER         MSISDN header value (sent in the gateway's first MSISDN header)
  --header "NAME: VALUE"  any other request header (repeatable)
  --protocol http|https   https means TLS ended on the socket (default http)
  --time ISO              the time of the request (default now)
  --host HOST             Host header, for RFC 8006 metadata (selects the HostMatch)
  --url PATH              request path and query, for RFC 8006 metadata (default /)
  --config FILE           the surrogate's config, for its trusted proxies and gateways
  --trusted-proxies LIST  comma-separated CIDRs (overrides the config)
  --gateways JSON         operator gateways (overrides the config)
  --country-db FILE       country database (.mmdb), "bundled" (default) or "none"
  --asn-db FILE           AS-number database (.mmdb) or "none" (default)
  --json                  print the explanation as JSON
  --help                  this text
`

function parse(argv: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
}

function configFor(io: Io, flags: Record<string, unknown>, purpose: 'serve' | 'check'): ServerConfig {
  const textFlags: Record<string, string | undefined> = {}
  for (const [key, value] of Object.entries(flags)) if (typeof value === 'string') textFlags[key] = value
  const file = typeof flags.config === 'string' ? flags.config : null
  return loadConfig({ file, env: io.env, flags: textFlags, cwd: io.cwd }, purpose)
}

function formatProblems(kind: string, problems: Problem[]): string {
  return problems.map((p) => `  ${kind} ${p.pointer || '(document)'}: ${p.message}\n`).join('')
}

async function serve(argv: string[], io: Io): Promise<number> {
  const options: ParseArgsConfig['options'] = { config: { type: 'string' }, help: { type: 'boolean' } }
  for (const s of SETTINGS) options[s.flag] = { type: 'string' }
  const { values } = parse(argv, options)
  if (values.help) {
    io.stdout(SERVE_HELP)
    return 0
  }
  const config = configFor(io, values, 'serve')
  const surrogate = await createSurrogate(config)
  const { contentUrl, apiUrl } = await surrogate.listen()
  io.stdout(`cdni-authz: serving content on ${contentUrl}\ncdni-authz: push API on ${apiUrl}/cdni/metadata\n`)
  io.onReload?.(() => {
    try {
      const { country, asn } = surrogate.content.cdniAuthz.reloadDatabases()
      const name = (db: { path: string; type: string } | null): string => (db === null ? 'none' : `${db.path} (${db.type})`)
      io.stdout(`cdni-authz: databases reloaded: country ${name(country)}, AS ${name(asn)}\n`)
    } catch (err) {
      io.stderr(`cdni-authz: database reload failed, the databases in use stay: ${(err as Error).message}\n`)
    }
  })
  const signal = await io.stopSignal()
  io.stdout(`cdni-authz: ${signal} received, finishing in-flight requests\n`)
  await surrogate.close()
  return 0
}

function databasesOf(config: ServerConfig): GeoDatabases {
  const { countryDb, asnDb } = databaseOptions(config)
  return openGeoDatabases(countryDb, asnDb)
}

function contextFrom(config: ServerConfig, databases: GeoDatabases): LoadContext {
  return { gatewaysConfigured: config.gateways.length > 0, ...geoContext(databases), enforcedElsewhere: config.enforcedElsewhere.map((type) => type.toLowerCase()) }
}

async function validate(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: 'string' }, 'country-db': { type: 'string' }, 'asn-db': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } })
  if (values.help) {
    io.stdout(VALIDATE_HELP)
    return 0
  }
  if (positionals.length === 0) {
    io.stderr(`cdni-authz validate: name at least one file\n\n${VALIDATE_HELP}`)
    return 2
  }
  const config = configFor(io, values, 'check')
  const context = contextFrom(config, databasesOf(config))
  const reports: { file: string; ok: boolean; errors: Problem[]; warnings: Problem[] }[] = []
  for (const file of positionals) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      reports.push({ file, ok: false, errors: [{ pointer: '', message: `cannot read: ${(err as Error).message}` }], warnings: [] })
      continue
    }
    const parsed = parseMetadataText(text)
    if (!parsed.ok) {
      reports.push({ file, ok: false, errors: [parsed.error], warnings: [] })
      continue
    }
    reports.push({ file, ...validateMetadata(parsed.value, context) })
  }
  if (values.json) {
    io.stdout(`${JSON.stringify(reports, null, 2)}\n`)
  } else {
    for (const r of reports) {
      io.stdout(`${r.file}: ${r.ok ? 'valid' : 'invalid'}${r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''})` : ''}\n`)
      io.stdout(formatProblems('error', r.errors) + formatProblems('warning', r.warnings))
    }
  }
  return reports.every((r) => r.ok) ? 0 : 1
}

function describeExplanation(explanation: Explanation): string {
  const lines: string[] = []
  for (const rule of explanation.rules) {
    lines.push(`rule ${rule.pointer} (${rule.allow ? 'allow' : 'deny'}): ${rule.matched ? 'matches' : 'no match'}`)
    for (const clause of rule.clauses) {
      lines.push(`  ${clause.kind} ${clause.pointer}: ${clause.matched ? 'matches' : 'no match'}`)
      for (const region of clause.regions ?? []) {
        const where = region.pointers.length > 1 ? `${region.pointers[0]} and ${region.pointers.length - 1} more` : region.pointers[0]
        const fields = Object.entries(region.fields).map(([f, ok]) => `${f} ${ok ? 'yes' : 'no'}`).join(', ')
        lines.push(`    region ${where}: ${region.matched ? 'matches' : 'no match'} (${fields})`)
      }
    }
  }
  return lines.join('\n')
}

async function check(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    metadata: { type: 'string' },
    peer: { type: 'string' },
    xff: { type: 'string' },
    msisdn: { type: 'string' },
    header: { type: 'string', multiple: true },
    protocol: { type: 'string' },
    time: { type: 'string' },
    host: { type: 'string' },
    url: { type: 'string' },
    config: { type: 'string' },
    'trusted-proxies': { type: 'string' },
    gateways: { type: 'string' },
    'country-db': { type: 'string' },
    'asn-db': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
  })
  if (values.help) {
    io.stdout(CHECK_HELP)
    return 0
  }
  const usage = (message: string): number => {
    io.stderr(`cdni-authz check: ${message}\n\n${CHECK_HELP}`)
    return 2
  }
  if (typeof values.metadata !== 'string' || typeof values.peer !== 'string') return usage('--metadata and --peer are required')
  if (values.protocol !== undefined && values.protocol !== 'http' && values.protocol !== 'https') return usage('--protocol must be http or https')
  const now = values.time === undefined ? Date.now() : parseTimestamp(values.time as string)
  if (Number.isNaN(now)) return usage('--time must be an RFC 3339 date-time such as 2026-06-01T12:00:00Z')
  const config = configFor(io, values, 'check')
  const trust = compileTrust(config)
  let text: string
  try {
    text = readFileSync(values.metadata, 'utf8')
  } catch (err) {
    return usage(`cannot read ${values.metadata}: ${(err as Error).message}`)
  }
  const databases = databasesOf(config)
  const prepared = preparePolicy(text, contextFrom(config, databases))
  if (!prepared.ok) {
    io.stderr(`${values.metadata}: invalid\n${formatProblems('error', prepared.errors)}`)
    return 2
  }
  // Header lines in the order given, as Node's rawHeaders holds them: a repeated --header is two
  // lines, which the walk reads as the server would (two X-Forwarded-Proto lines name no protocol).
  const lines: string[] = []
  for (const line of (values.header as string[] | undefined) ?? []) {
    const colon = line.indexOf(':')
    if (colon <= 0) return usage(`--header "${line}" must be "Name: value"`)
    lines.push(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }
  if (typeof values.xff === 'string') lines.push('x-forwarded-for', values.xff)
  if (typeof values.msisdn === 'string') lines.push(config.gateways[0]?.msisdnHeaders?.[0] ?? 'x-up-calling-line-id', values.msisdn)
  const facts = createClientFacts()
  extractClientFacts(trust, values.peer, values.protocol === 'https', lines, now, facts)
  fillGeoFacts(databases, facts, true, true)
  const explanation = explainSite(prepared.compiled, values.host as string | undefined, (values.url as string | undefined) ?? '/', facts)
  const factLine = {
    source: facts.sourceFamily === 0 ? null : formatAddress(facts.sourceFamily, facts.source),
    via: gatewayName(trust, facts.gateway) ?? 'direct',
    handset: facts.handsetFamily === 0 ? null : formatAddress(facts.handsetFamily, facts.handset),
    msisdn: facts.msisdn,
    protocol: facts.protocol === 2 ? 'https' : facts.protocol === 1 ? 'http' : null,
    country: facts.country,
    subdivisions: facts.subdivisions,
    asn: facts.asn < 0 ? null : facts.asn,
    time: new Date(now).toISOString(),
  }
  if (values.json) {
    io.stdout(`${JSON.stringify({ facts: factLine, ...explanation }, null, 2)}\n`)
  } else {
    const verdict = explanation.allowed ? 'ALLOW' : 'DENY'
    const noHost = 'selected' in explanation && explanation.selected === null
    const url = (values.url as string | undefined) ?? '/'
    const badTarget = noHost && canonicalPath(url, values.host as string | undefined) === null
    const why = explanation.unknowable.length > 0
      ? `unknowable: ${explanation.unknowable.join(', ')} (there, but not to be believed; denied before any rule)`
      : badTarget
        ? `request target ${JSON.stringify(url)} refused (bad-request-target)`
        : noHost
          ? `no HostMatch for host ${JSON.stringify(values.host ?? null)}`
          : explanation.decidedBy !== null ? `decided by ${explanation.decidedBy}` : `no rule matched (failed: ${explanation.failed.join(', ')})`
    io.stdout(`${verdict}: ${why}\n`)
    io.stdout(`facts: source ${factLine.source ?? 'none'} (${factLine.via}), handset ${factLine.handset ?? 'none'}, msisdn ${factLine.msisdn?.international ?? 'none'}, protocol ${factLine.protocol ?? 'unknown'}, country ${[factLine.country ?? 'unknown', ...factLine.subdivisions].join(' ')}, AS ${factLine.asn ?? 'unknown'}, time ${factLine.time}\n`)
    io.stdout(`${describeExplanation(explanation)}\n`)
  }
  return explanation.allowed ? 0 : 1
}

/** Runs the CLI; resolves with the exit status. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'serve':
        return await serve(rest, io)
      case 'validate':
        return await validate(rest, io)
      case 'check':
        return await check(rest, io)
      case undefined:
      case '--help':
      case 'help':
        io.stdout(USAGE)
        return command === undefined ? 2 : 0
      default:
        io.stderr(`cdni-authz: unknown command "${command}"\n\n${USAGE}`)
        return 2
    }
  } catch (err) {
    const error = err as Error & { code?: string }
    io.stderr(`cdni-authz ${command}: ${error.message}\n`)
    return error instanceof ConfigError || error instanceof InvalidOptionError || error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? 2 : 1
  }
}

/* c8 ignore start - the program entry; the tests call main() directly and spawn the built file */
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const stopSignal = (): Promise<string> =>
    new Promise((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'))
      process.once('SIGINT', () => resolve('SIGINT'))
    })
  main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    stopSignal,
    onReload: (handler) => process.on('SIGHUP', handler),
  }).then((code) => {
    process.exitCode = code
    // Everything is drained by now; an upstream keep-alive socket must not hold the exit.
    setTimeout(() => process.exit(code), 1000).unref()
  })
}
/* c8 ignore stop */
