import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULTS, type ServerConfig } from '../../src/surrogate/config.js'
import { createSurrogate, type Surrogate, type SurrogateOptions } from '../../src/surrogate/server.js'

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
      fetch(`${contentUrl}/hello.txt`, {
        headers: { 'x-forwarded-for': source, 'x-forwarded-proto': 'http', ...headers },
      }).then(async (r) => {
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

export async function start(cfg: ServerConfig, options: SurrogateOptions = {}): Promise<Running> {
  const surrogate = await createSurrogate(cfg, options)
  const { contentUrl, apiUrl } = await surrogate.listen()
  return { surrogate, ...client(contentUrl, apiUrl) }
}

export const allowing = (cidr: string) => ({ deliveryCriteria: [{ region: { subnet: cidr } }] })

/** An origin that answers every request with the Host and path it received. */
export async function echoOrigin(t: { teardown: (fn: () => unknown) => void }) {
  const seen: { host: string; url: string }[] = []
  const server = http.createServer((request, response) => {
    seen.push({ host: request.headers.host as string, url: request.url as string })
    response.end(JSON.stringify(seen.at(-1)))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** Sends a request target as given, with the Host given; resolves status and body. */
export function rawGet(contentUrl: string, target: string, host: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(contentUrl)
  return new Promise((resolve, reject) => {
    // As the trusted proxy the test servers take 127.0.0.1 for: it names the client and the protocol.
    const head = `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n`
    const socket = net.connect(Number(port), hostname, () => socket.write(Buffer.from(head, 'latin1')))
    let data = ''
    const done = () => {
      socket.destroy()
      resolve({ status: Number(data.slice(9, 12)), body: data.slice(data.indexOf('\r\n\r\n') + 4) })
    }
    socket.on('data', (chunk) => {
      data += String(chunk)
      // A proxied answer may keep the connection open whatever the request said: read its length.
      const head = data.indexOf('\r\n\r\n')
      const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, head))?.[1]
      if (head >= 0 && length !== undefined && data.length - head - 4 >= Number(length)) done()
    })
    socket.on('error', reject)
    socket.on('end', done)
  })
}
