// Starts bench/lib/load.js in a child process pinned to core 1 (if taskset is there) and pins
// this process to core 0, so server and load generator do not share a core.
import { spawn, spawnSync } from 'node:child_process'

const hasTaskset = spawnSync('taskset', ['-V']).status === 0
export const pinned = hasTaskset

export function pinSelf(core = 0) {
  if (hasTaskset) spawnSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' })
}

/** Spawns Node with `args`, pinned to `core` when taskset is there. */
export function spawnNode(core, args, options) {
  return hasTaskset
    ? spawn('taskset', ['-c', String(core), process.execPath, ...args], options)
    : spawn(process.execPath, args, options)
}

/**
 * Starts load against `url` for at most `seconds`; `stop()` ends it early; `result` resolves with
 * autocannon's figures. `env` overrides load.js settings (LOAD_PIPELINING, LOAD_MIX, ...).
 */
export function startLoad(url, seconds, env = {}) {
  const script = new URL('./load.js', import.meta.url).pathname
  const child = spawnNode(1, [script, url, String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  })
  let out = ''
  child.stdout.on('data', (chunk) => (out += chunk))
  const result = new Promise((resolve, reject) => {
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)))
        : reject(new Error(`load generator exited ${code}`)),
    )
  })
  return { stop: () => child.kill('SIGINT'), result }
}
