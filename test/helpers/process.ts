// The surrogate as a real process: the built `cdni-authz serve` (npm test builds it first), run by
// plain Node. Kill and load tests need one: SIGKILL and resident memory are about a process, and
// the memory and start-up time of the TypeScript loader would measure the loader, not the server.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { client, TOKEN, workspace, type Client } from './surrogate.js'

export interface ServerProcess extends Client {
  child: ChildProcess
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resident set size, in bytes, read from /proc. */
  rss(): number
  /** SIGTERM, and the exit code once it drained. */
  stop(): Promise<number | null>
  /** The state directory it was started with. */
  stateDir: string
}

const SRC = new URL('../../src/', import.meta.url).pathname
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname

/** The build must be newer than every source file, or the process would run yesterday's code. */
function assertBuilt(): void {
  const built = statSync(CLI, { throwIfNoEntry: false })?.mtimeMs ?? 0
  const stale = readdirSync(SRC).filter((name) => statSync(SRC + name).mtimeMs > built)
  if (built === 0 || stale.length > 0) throw new Error(`dist/ is missing or older than src/${stale[0] ?? ''}: run \`npm run build\` (npm test does)`)
}

/**
 * Starts `serve` with `args` (flags), serving a fresh folder holding hello.txt, and resolves once
 * both listeners are up. `fileSizeLimitKb` runs it under `ulimit -f`: the kernel then refuses
 * (EFBIG) any write that would grow a file past the limit, as a full disk or a quota does.
 */
export async function spawnServer(args: string[], options: { fileSizeLimitKb?: number } = {}): Promise<ServerProcess> {
  assertBuilt()
  // tap puts its hooks into every spawn's NODE_OPTIONS; they trap signals (SIGXFSZ among them,
  // which plain Node ignores) and record coverage of dist/. The server runs without them.
  const limit = options.fileSizeLimitKb === undefined ? '' : `ulimit -f ${options.fileSizeLimitKb} && `
  // A state directory of its own unless the test names one: the default, ./state, is the one
  // `npm start` reads, and a test's documents left there would replace the demo's.
  const { root, stateDir } = workspace()
  const named = args.indexOf('--state-dir')
  const state = named < 0 ? stateDir : (args[named + 1] as string)
  const argv = [CLI, 'serve', '--port', '0', '--api-port', '0', '--log-level', 'error', '--root', root, ...(named < 0 ? ['--state-dir', stateDir] : []), ...args]
  const child = spawn('bash', ['-c', `${limit}unset NODE_OPTIONS NODE_V8_COVERAGE && exec "$@"`, process.execPath, process.execPath, ...argv], {
    env: { ...process.env, CDNI_API_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + 30_000
  let urls: RegExpExecArray | null = null
  while ((urls = /serving content on (\S+)\ncdni-authz: push API on (\S+)\/cdni\/metadata/.exec(out)) === null) {
    if (gone || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the server did not start (${String(child.exitCode ?? child.signalCode)}):\n${out}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return {
    ...client(urls[1] as string, urls[2] as string),
    child,
    stateDir: state,
    output: () => out,
    exited,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) * 1024,
    async stop() {
      child.kill('SIGTERM')
      return (await exited).code
    },
  }
}
