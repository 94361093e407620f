// The surrogate as a real process: the built `cdni-authz serve` (npm test builds it first), run by
// plain Node. Kill and load tests need one: SIGKILL and a server's memory are about a process,
// and the memory and start-up time of the TypeScript loader would measure the loader, not the
// server.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { client, TOKEN, workspace, type Client } from './surrogate.js'

export interface ServerProcess extends Client {
  child: ChildProcess
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Heap in use plus external memory, in bytes, of the main thread and the compile worker, each
   * right after two full collections. Only for a server started with `memoryProbe`. */
  liveBytes(): Promise<{ bytes: number; workers: number }>
  /** SIGTERM, and the exit code once it drained. */
  stop(): Promise<number | null>
  /** The state directory it was started with. */
  stateDir: string
}

/**
 * Preloaded into a server started with `memoryProbe`: on SIGUSR2, the main thread and the compile
 * worker each collect garbage, and what survived, summed, goes to stderr. Heap in use counts a kept
 * policy's objects and document text, external its typed arrays (most of its size). Two
 * collections: after one the sum swung by 5 MB between swaps, typed arrays found dead being freed
 * by a sweeper that can still be running when gc() returns. The worker is reached through the
 * inspector, which needs no hook in the server's own code; not the inspector's own
 * collectGarbage, which also drops compiled code and made the next pushes 2 to 3 times slower.
 *
 * Resident memory cannot tell a leak: it also holds the pages V8 keeps after collecting, and Node
 * 24 keeps far more than Node 20 (under load its young generation grows to 64 MB semi-spaces
 * instead of 16, and the worker's heap doubles) with nothing kept alive.
 */
const MEMORY_PROBE = `import { Session } from 'node:inspector'
const live = () => {
  gc()
  gc()
  const { heapUsed, external } = process.memoryUsage()
  return heapUsed + external
}
const LIVE = '(' + live + ')()'
let post = null
const workers = new Set()
const replies = new Map()
let id = 0
const inWorker = (sessionId, method, params) => new Promise((resolve) => {
  replies.set(++id, resolve)
  post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) })
})
process.on('SIGUSR2', async () => {
  if (post === null) {
    const session = new Session()
    session.connect()
    post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))))
    session.on('NodeWorker.attachedToWorker', ({ params }) => workers.add(params.sessionId))
    session.on('NodeWorker.detachedFromWorker', ({ params }) => workers.delete(params.sessionId))
    session.on('NodeWorker.receivedMessageFromWorker', ({ params }) => {
      const reply = JSON.parse(params.message)
      replies.get(reply.id)?.(reply.result)
      replies.delete(reply.id)
    })
    await post('NodeWorker.enable', { waitForDebuggerOnStart: false })
  }
  let bytes = live()
  for (const worker of workers) bytes += (await inWorker(worker, 'Runtime.evaluate', { expression: LIVE, returnByValue: true })).result.value
  process.stderr.write('memory-probe: ' + bytes + ' (' + workers.size + ' workers)\\n')
})`
const PROBED = /^memory-probe: (\d+) \((\d+) workers\)$/gm

const SRC = new URL('../../src/', import.meta.url).pathname
const CLI = new URL('../../dist/surrogate/cli.js', import.meta.url).pathname

/** The build must be newer than every source file, or the process would run yesterday's code. */
function assertBuilt(): void {
  const built = statSync(CLI, { throwIfNoEntry: false })?.mtimeMs ?? 0
  const stale = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter(
    (name) => statSync(SRC + name).mtimeMs > built,
  )
  if (built === 0 || stale.length > 0) {
    throw new Error(`dist/ is missing or older than src/${stale[0] ?? ''}: run \`npm run build\` (npm test does)`)
  }
}

/**
 * Starts `serve` with `args` (flags), serving a fresh folder holding hello.txt, and resolves once
 * both listeners are up. `fileSizeLimitKb` runs it under `ulimit -f`: the kernel then refuses
 * (EFBIG) any write that would grow a file past the limit, as a full disk or a quota does.
 */
export async function spawnServer(
  args: string[],
  options: { fileSizeLimitKb?: number; memoryProbe?: boolean } = {},
): Promise<ServerProcess> {
  assertBuilt()
  // tap puts its hooks into every spawn's NODE_OPTIONS; they trap signals (SIGXFSZ among them,
  // which plain Node ignores) and record coverage of dist/. The server runs without them.
  const limit = options.fileSizeLimitKb === undefined ? '' : `ulimit -f ${options.fileSizeLimitKb} && `
  // A state directory of its own unless the test names one: the default, ./state, is the one
  // `npm start` reads, and a test's documents left there would replace the demo's.
  const { root, stateDir } = workspace()
  const named = args.indexOf('--state-dir')
  const state = named < 0 ? stateDir : (args[named + 1] as string)
  const probe = options.memoryProbe
    ? ['--expose-gc', '--import', `data:text/javascript,${encodeURIComponent(MEMORY_PROBE)}`]
    : []
  const argv = [
    ...probe,
    CLI,
    'serve',
    '--port',
    '0',
    '--api-port',
    '0',
    '--log-level',
    'error',
    '--root',
    root,
    ...(named < 0 ? ['--state-dir', stateDir] : []),
    ...args,
  ]
  const child = spawn(
    'bash',
    ['-c', `${limit}unset NODE_OPTIONS NODE_V8_COVERAGE && exec "$@"`, process.execPath, process.execPath, ...argv],
    {
      env: { ...process.env, CDNI_API_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
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
    async liveBytes() {
      const before = [...out.matchAll(PROBED)].length
      child.kill('SIGUSR2')
      for (;;) {
        const probes = [...out.matchAll(PROBED)]
        const last = probes[probes.length - 1]
        if (probes.length > before && last) return { bytes: Number(last[1]), workers: Number(last[2]) }
        if (gone) throw new Error(`the server exited before it reported its memory:\n${out}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    },
    async stop() {
      child.kill('SIGTERM')
      return (await exited).code
    },
  }
}
