// A surrogate for the benchmarks: the defaults, ephemeral ports, a scratch state directory and a
// one-file content root (hello.txt), silent logs, and the suite's own settings on top.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSurrogate } from '../../dist/surrogate/server.js'
import { DEFAULTS } from '../../dist/surrogate/config.js'

/** The API token of every benchmark surrogate. */
export const BENCH_TOKEN = 'bench-token-0123456789abcdef'

export function benchSurrogate(settings) {
  const base = mkdtempSync(join(tmpdir(), 'cdni-bench-'))
  mkdirSync(join(base, 'content'))
  writeFileSync(join(base, 'content', 'hello.txt'), 'hello')
  return createSurrogate({
    ...DEFAULTS,
    port: 0,
    apiPort: 0,
    root: join(base, 'content'),
    stateDir: join(base, 'state'),
    apiToken: BENCH_TOKEN,
    logLevel: 'silent',
    ...settings,
  })
}
