import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULTS, type ServerConfig } from '../../src/surrogate/config.js'
import { createSurrogate, type Surrogate } from '../../src/surrogate/server.js'

export const TOKEN = 'test-token-0123456789abcdef'
export const AUTH = { authorization: `Bearer ${TOKEN}` }

/** A folder with one file to serve, and a state directory, both fresh. */
export function workspace(): { root: string; stateDir: string; base: string } {
  const base = mkdtempSync(join(tmpdir(), 'cdni-authz-'))
  const root = join(base, 'content')
  mkdirSync(root)
  writeFileSync(join(root, 'hello.txt'), 'hello')
  return { root, stateDir: join(base, 'state'), base }
}

export function config(patch: Partial<ServerConfig> = {}): ServerConfig {
  const { root, stateDir } = workspace()
  return {
    ...DEFAULTS,
    port: 0,
    apiPort: 0,
    root,
    stateDir,
    apiToken: TOKEN,
    logLevel: 'silent',
    trustedProxies: ['127.0.0.1/32'],
    ...patch,
  }
}

/** What a test does to a running surrogate, in this process or another. */
export interface Client {
  contentUrl: string
  apiUrl: string
  /** GET /hello.txt as if our load balancer forwarded a client at `source`. */
  fetchAs(source: string, headers?: Record<string, string>): Promise<number>
  push(body: unknown, headers?: Record<string, string>): Promise<Response>
}

export interface Running extends Client {
  surrogate: Surrogate
}

export function client(contentUrl: string, apiUrl: string): Client {
  return {
    contentUrl,
    apiUrl,
    fetchAs: (source, headers = {}) =>
      fetch(`${contentUrl}/hello.txt`, { headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http', ...headers } }).then(async (r) => {
        await r.arrayBuffer()
        return r.status
      }),
    push: (body, headers = {}) =>
      fetch(`${apiUrl}/cdni/metadata`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...AUTH, ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
  }
}

export async function start(cfg: ServerConfig): Promise<Running> {
  const surrogate = await createSurrogate(cfg)
  const { contentUrl, apiUrl } = await surrogate.listen()
  return { surrogate, ...client(contentUrl, apiUrl) }
}

export const allowing = (cidr: string) => ({ deliveryCriteria: [{ region: { subnet: cidr } }] })
