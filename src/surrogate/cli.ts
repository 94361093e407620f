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
import type { Explanation } from '../policy/explain.js'
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
import { runWorker } from './cluster-worker.js'
import cluster from 'node:cluster'

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

type Values = ReturnType<typeof parseArgs>['values']

/**
 * A command's flag. Its parseArgs option and its help line are both made from this, so no flag is
 * taken undocumented, nor documented and refused.
 */
type Flag = { flag: string; help: string } & (
  { type: 'boolean' } | { type: 'string'; placeholder: string; multiple?: true }
)

interface Command {
  /** The usage line, after "cdni-authz". */
  synopsis: string
  /** Its line in the list of commands. */
  summary: string
  /** What it does, before its options. */
  about: string
  flags: Flag[]
  /** After its options. */
  notes?: string
  run(values: Values, io: Io, positionals: string[]): Promise<number>
}

const HELP: Flag = { flag: 'help', type: 'boolean', help: 'this text' }
const COUNTRY_DB: Flag = {
  flag: 'country-db',
  type: 'string',
  placeholder: 'FILE',
  help: 'country database (.mmdb), "bundled" (default) or "none"',
}
const ASN_DB: Flag = {
  flag: 'asn-db',
  type: 'string',
  placeholder: 'FILE',
  help: 'AS-number database (.mmdb) or "none" (default)',
}

const SERVE: Command = {
  synopsis: 'serve [--config FILE] [options]',
  summary: 'run the surrogate (content behind the authorizer) and the metadata push API',
  about: `Serves content (a folder, or a proxied origin) behind CDNI authorization, and the push API on
its own listener. Settings come from built-in defaults, then the config file, then environment
variables, then flags.`,
  flags: [
    { flag: 'config', type: 'string', placeholder: 'FILE', help: 'JSON config file' },
    // Each setting is a flag, read by loadConfig under the setting's flag name.
    ...SETTINGS.map((s): Flag => ({
      flag: s.flag,
      type: 'string',
      placeholder: 'VALUE',
      help: `${s.help} (env ${s.env})`,
      ...(s.repeatable === true ? { multiple: true } : {}),
    })),
    HELP,
  ],
  notes: `Stops on SIGTERM or SIGINT after in-flight requests finish. SIGHUP re-reads the country and AS
databases (after geoipupdate, say); if one cannot be read, the ones in use stay.`,
  run: serve,
}

const VALIDATE: Command = {
  synopsis: 'validate [--config FILE] [--json] FILE...',
  summary: 'check metadata files: JSON syntax with line and column, every schema error by pointer',
  about: 'Checks each metadata file. Exit status 0 when all are valid, 1 otherwise.',
  flags: [
    {
      flag: 'config',
      type: 'string',
      placeholder: 'FILE',
      help: "the surrogate's config, so that warnings know its gateways and databases",
    },
    COUNTRY_DB,
    ASN_DB,
    { flag: 'json', type: 'boolean', help: 'print the reports as JSON' },
    HELP,
  ],
  run: validate,
}

const CHECK: Command = {
  synopsis: 'check --metadata FILE --peer ADDRESS [options]',
  summary: 'decide one request against a metadata file, and say which rule or criterion decided',
  about: `Decides one request and explains the decision field by field: the tool for "I get 403".
Exit status 0 when allowed, 1 when denied, 2 when the input is wrong.`,
  flags: [
    { flag: 'metadata', type: 'string', placeholder: 'FILE', help: 'the metadata document' },
    { flag: 'peer', type: 'string', placeholder: 'ADDRESS', help: 'the TCP peer address the surrogate would see' },
    { flag: 'xff', type: 'string', placeholder: 'LIST', help: 'X-Forwarded-For value' },
    {
      flag: 'msisdn',
      type: 'string',
      placeholder: 'NUMBER',
      help: "MSISDN header value (sent in the gateway's first MSISDN header)",
    },
    { flag: 'header', type: 'string', placeholder: '"NAME: VALUE"', multiple: true, help: 'any other request header' },
    {
      flag: 'protocol',
      type: 'string',
      placeholder: 'http|https',
      help: 'https means TLS ended on the socket (default http)',
    },
    { flag: 'time', type: 'string', placeholder: 'ISO', help: 'the time of the request (default now)' },
    {
      flag: 'host',
      type: 'string',
      placeholder: 'HOST',
      help: 'Host header, for RFC 8006 metadata (selects the HostMatch)',
    },
    {
      flag: 'url',
      type: 'string',
      placeholder: 'PATH',
      help: 'request path and query, for RFC 8006 metadata (default /)',
    },
    // From here to --asn-db, what loadConfig reads (see configFor): spelled as the settings' flags.
    {
      flag: 'config',
      type: 'string',
      placeholder: 'FILE',
      help: "the surrogate's config, for its trusted proxies and gateways",
    },
    {
      flag: 'trusted-proxies',
      type: 'string',
      placeholder: 'LIST',
      help: 'comma-separated CIDRs (overrides the config)',
    },
    { flag: 'gateways', type: 'string', placeholder: 'JSON', help: 'operator gateways (overrides the config)' },
    COUNTRY_DB,
    ASN_DB,
    { flag: 'json', type: 'boolean', help: 'print the explanation as JSON' },
    HELP,
  ],
  run: check,
}

const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ['serve', SERVE],
  ['validate', VALIDATE],
  ['check', CHECK],
])

/** Two columns, the second starting two spaces past the widest of the first. */
function columns(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}\n`).join('')
}

const USAGE = `Usage: cdni-authz <command> [options]

Commands:
${columns([...COMMANDS].map(([name, command]) => [name, command.summary]))}
Run "cdni-authz <command> --help" for the options of a command.
`

function helpOf(command: Command): string {
  const lines = columns(
    command.flags.map((f) =>
      f.type === 'string'
        ? [`--${f.flag} ${f.placeholder}`, f.multiple ? `${f.help} (repeatable)` : f.help]
        : [`--${f.flag}`, f.help],
    ),
  )
  return `Usage: cdni-authz ${command.synopsis}\n\n${command.about}\n\nOptions:\n${lines}${command.notes === undefined ? '' : `\n${command.notes}\n`}`
}

function parse(argv: string[], flags: Flag[]): { values: Values; positionals: string[] } {
  const options: ParseArgsConfig['options'] = {}
  for (const f of flags) {
    options[f.flag] = f.type === 'string' && f.multiple ? { type: 'string', multiple: true } : { type: f.type }
  }
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
}

function configFor(io: Io, flags: Record<string, unknown>, purpose: 'serve' | 'check'): ServerConfig {
  const textFlags: Record<string, string | string[] | undefined> = {}
  for (const [key, value] of Object.entries(flags)) {
    if (typeof value === 'string' || Array.isArray(value)) textFlags[key] = value as string | string[]
  }
  const file = typeof flags.config === 'string' ? flags.config : null
  return loadConfig({ file, env: io.env, flags: textFlags, cwd: io.cwd }, purpose)
}

function formatProblems(kind: string, problems: Problem[]): string {
  return problems.map((p) => `  ${kind} ${p.pointer || '(document)'}: ${p.message}\n`).join('')
}

/* c8 ignore start - runs only in a worker process of the cluster, which the tests start from the
   built program without coverage (test/workers-process.test.ts); runWorker, all it drives, is
   covered in-process by test/workers.test.ts */
/** A worker of `serve --workers N` (its primary is this program too): serves until drained. */
async function serveAsWorker(config: ServerConfig, io: Io): Promise<number> {
  const drained = new Promise<void>((resolve) => {
    void runWorker(config, {
      send: (message) => {
        // Gone when the primary is: the worker is on its way out, and the reply has nobody to read it.
        if (process.connected) process.send?.(message)
      },
      onMessage: (handler) => process.on('message', handler),
      done: resolve,
    }).then((worker) => {
      io.onReload?.(() => {
        try {
          io.stdout(`cdni-authz: worker ${process.pid}: databases reloaded: ${worker.reloadDatabases()}\n`)
        } catch (err) {
          io.stderr(`cdni-authz: worker ${process.pid}: database reload failed: ${(err as Error).message}\n`)
        }
      })
      // A stop signal sent to this worker alone (or to the group, with the primary's) drains it.
      void io.stopSignal().then(() => worker.drain())
    })
  })
  await drained
  return 0
}
/* c8 ignore stop */

async function serve(values: Values, io: Io): Promise<number> {
  const config = configFor(io, values, 'serve')
  /* c8 ignore next - true only in a forked worker process (see serveAsWorker) */
  if (config.workers > 1 && cluster.isWorker) return serveAsWorker(config, io)
  const surrogate = await createSurrogate(config)
  const { contentUrl, apiUrl } = await surrogate.listen()
  io.stdout(`cdni-authz: serving content on ${contentUrl}\ncdni-authz: push API on ${apiUrl}/cdni/metadata\n`)
  io.onReload?.(() => {
    try {
      const { country, asn } = surrogate.content.cdniAuthz.reloadDatabases()
      const name = (db: { path: string; type: string } | null): string =>
        db === null ? 'none' : `${db.path} (${db.type})`
      io.stdout(`cdni-authz: databases reloaded: country ${name(country)}, AS ${name(asn)}\n`)
    } catch (err) {
      io.stderr(`cdni-authz: database reload failed, the databases in use stay: ${(err as Error).message}\n`)
    }
    // Each worker reads its own copy; one that cannot keeps the databases it has.
    void surrogate.reloadWorkerDatabases().then((lines) => {
      /* c8 ignore next - workers exist only in the spawned program (test/workers-process.test.ts) */
      for (const line of lines) io.stdout(`cdni-authz: worker databases reloaded: ${line}\n`)
    })
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
  return {
    gatewaysConfigured: config.gateways.length > 0,
    ...geoContext(databases),
    enforcedElsewhere: config.enforcedElsewhere.map((type) => type.toLowerCase()),
  }
}

async function validate(values: Values, io: Io, positionals: string[]): Promise<number> {
  if (positionals.length === 0) {
    io.stderr(`cdni-authz validate: name at least one file\n\n${helpOf(VALIDATE)}`)
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
      reports.push({
        file,
        ok: false,
        errors: [{ pointer: '', message: `cannot read: ${(err as Error).message}` }],
        warnings: [],
      })
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
      io.stdout(
        `${r.file}: ${r.ok ? 'valid' : 'invalid'}${r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''})` : ''}\n`,
      )
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
        const where =
          region.pointers.length > 1
            ? `${region.pointers[0]} and ${region.pointers.length - 1} more`
            : region.pointers[0]
        const fields = Object.entries(region.fields)
          .map(([f, ok]) => `${f} ${ok ? 'yes' : 'no'}`)
          .join(', ')
        lines.push(`    region ${where}: ${region.matched ? 'matches' : 'no match'} (${fields})`)
      }
    }
  }
  return lines.join('\n')
}

async function check(values: Values, io: Io): Promise<number> {
  const usage = (message: string): number => {
    io.stderr(`cdni-authz check: ${message}\n\n${helpOf(CHECK)}`)
    return 2
  }
  if (typeof values.metadata !== 'string' || typeof values.peer !== 'string') {
    return usage('--metadata and --peer are required')
  }
  if (values.protocol !== undefined && values.protocol !== 'http' && values.protocol !== 'https') {
    return usage('--protocol must be http or https')
  }
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
  if (typeof values.msisdn === 'string') {
    lines.push(config.gateways[0]?.msisdnHeaders?.[0] ?? 'x-up-calling-line-id', values.msisdn)
  }
  const facts = createClientFacts()
  extractClientFacts(trust, values.peer, values.protocol === 'https', lines, now, facts)
  fillGeoFacts(databases, facts, true, true)
  const explanation = explainSite(
    prepared.compiled,
    values.host as string | undefined,
    (values.url as string | undefined) ?? '/',
    facts,
  )
  const factLine = {
    source: facts.sourceFamily === 0 ? null : formatAddress(facts.sourceFamily, facts.source),
    via: gatewayName(trust, facts.gateway) ?? 'direct',
    handset: facts.handsetFamily === 0 ? null : formatAddress(facts.handsetFamily, facts.handset),
    msisdn: facts.msisdn?.international ?? null,
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
    const why =
      explanation.unknowable.length > 0
        ? `unknowable: ${explanation.unknowable.join(', ')} (there, but not to be believed; denied before any rule)`
        : badTarget
          ? `request target ${JSON.stringify(url)} refused (bad-request-target)`
          : noHost
            ? `no HostMatch for host ${JSON.stringify(values.host ?? null)}`
            : explanation.decidedBy !== null
              ? `decided by ${explanation.decidedBy}`
              : `no rule matched (failed: ${explanation.failed.join(', ')})`
    io.stdout(`${verdict}: ${why}\n`)
    io.stdout(
      `facts: source ${factLine.source ?? 'none'} (${factLine.via}), handset ${factLine.handset ?? 'none'}, msisdn ${factLine.msisdn ?? 'none'}, protocol ${factLine.protocol ?? 'unknown'}, country ${[factLine.country ?? 'unknown', ...factLine.subdivisions].join(' ')}, AS ${factLine.asn ?? 'unknown'}, time ${factLine.time}\n`,
    )
    io.stdout(`${describeExplanation(explanation)}\n`)
  }
  return explanation.allowed ? 0 : 1
}

/** Runs the CLI; resolves with the exit status. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  try {
    if (name === undefined || name === '--help' || name === 'help') {
      io.stdout(USAGE)
      return name === undefined ? 2 : 0
    }
    const command = COMMANDS.get(name)
    if (command === undefined) {
      io.stderr(`cdni-authz: unknown command "${name}"\n\n${USAGE}`)
      return 2
    }
    const { values, positionals } = parse(rest, command.flags)
    if (values.help) {
      io.stdout(helpOf(command))
      return 0
    }
    return await command.run(values, io, positionals)
  } catch (err) {
    const error = err as Error & { code?: string }
    io.stderr(`cdni-authz ${name}: ${error.message}\n`)
    return error instanceof ConfigError ||
      error instanceof InvalidOptionError ||
      error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ||
      error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
      ? 2
      : 1
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
